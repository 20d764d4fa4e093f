"""Command-line flags made from config fields, so that each default lives in one place: the
dataclass. The flag's type comes from the field's annotation, its default from the field, and its
help ends with that default."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any

SCALARS = (int, float, str)


def config_default(cls: type, name: str) -> Any:
    """The default of field `name` of dataclass `cls`."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
            raise TypeError(f"{cls.__name__}.{name} has no default")
    raise TypeError(f"{cls.__name__} has no field {name!r}")


def _scalar_type(annotation: Any) -> type | None:
    """int, float or str inside `X` or `X | None`; None for anything else."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation = inner[0] if len(inner) == 1 else None
    return annotation if annotation in SCALARS or annotation is bool else None


def add_config_flag(parser, cls: type, name: str, help: str | None = None, *, flag: str | None = None,
                    **kwargs: Any) -> argparse.Action:
    """`--field-name` (or `flag`, whose name is then the attribute) for field `name` of `cls`: its
    default, a type from its annotation (a bool field is --name/--no-name), and "(default X)" after
    `help`. `kwargs` go to add_argument."""
    default = config_default(cls, name)
    kind = _scalar_type(typing.get_type_hints(cls)[name])
    if kind is bool:
        kwargs.setdefault("action", argparse.BooleanOptionalAction)
    elif kind is not None and "choices" not in kwargs:
        kwargs.setdefault("type", kind)
    said = f"(default {default})"
    text = f"{help} {said}" if help else said
    if flag is None:
        return parser.add_argument("--" + name.replace("_", "-"), dest=name, default=default, help=text, **kwargs)
    return parser.add_argument(flag, default=default, help=text, **kwargs)
