"""One codec for every config and record dataclass: to and from the plain mappings that JSON and YAML
hold.

- Unknown keys are an error that names them and suggests the closest known key.
- Lists become the tuples a field is declared with; nested dataclasses are built from their mappings.
- A field marked `omit_if_none` is left out of the mapping while it is None, so that files written
  before the field existed stay byte-identical.
- A file that carries a format and a version is checked with `check_format` before it is read.

A dataclass takes the codec by inheriting `Record` and naming itself in `LABEL` (used in errors).
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import types
import typing
from typing import Any, Mapping, Sequence

from shrink.errors import ShrinkValueError

OMIT_IF_NONE = {"omit_if_none": True}  # field(metadata=OMIT_IF_NONE)


def plain(value: Any) -> Any:
    """A value as JSON/YAML holds it: dataclasses as mappings, tuples as lists, enums as values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return value.to_dict() if isinstance(value, Record) else to_dict(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def to_dict(record: Any) -> dict[str, Any]:
    """The fields of a dataclass, in declaration order, as plain values."""
    out = {}
    for f in dataclasses.fields(record):
        value = getattr(record, f.name)
        if value is None and f.metadata.get("omit_if_none"):
            continue
        out[f.name] = plain(value)
    return out


def close_match(key: str, known: Sequence[str]) -> str | None:
    found = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return found[0] if found else None


def unknown_keys_message(label: str, unknown: Sequence[str], known: Sequence[str]) -> str:
    close = close_match(unknown[0], known)
    hint = f"; did you mean {close}?" if close else ""
    return f"unknown {label}: {', '.join(unknown)}{hint}; known: {', '.join(known)}"


def from_dict(cls: type, data: Mapping[str, Any], label: str) -> Any:
    """An instance of dataclass `cls` from a mapping of its fields (the constructor validates)."""
    if not isinstance(data, Mapping):
        raise ShrinkValueError(f"expected a mapping of {label}, got {type(data).__name__}")
    known = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = [str(k) for k in data if k not in known]
    if unknown:
        raise ShrinkValueError(unknown_keys_message(label, unknown, known))
    hints = typing.get_type_hints(cls)
    return cls(**{key: _decode(hints[key], value) for key, value in data.items()})


def _decode(annotation: Any, value: Any) -> Any:
    """`value` read from JSON/YAML as the declared type: tuples, nested dataclasses, enums."""
    if value is None:
        return None
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _decode(inner[0], value) if len(inner) == 1 else value
    if dataclasses.is_dataclass(annotation) and isinstance(value, Mapping):
        return annotation.from_dict(value) if issubclass(annotation, Record) else from_dict(annotation, value, f"{annotation.__name__} keys")
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return annotation(value)
    if origin is tuple and isinstance(value, (list, tuple)):
        args = typing.get_args(annotation)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], v) for v in value)
        if len(args) == len(value):
            return tuple(_decode(a, v) for a, v in zip(args, value))
        return tuple(value)  # a wrong length is the constructor's to report
    if origin is dict and isinstance(value, Mapping):
        return dict(value)
    return value


class Record:
    """Mixin for a dataclass that reads and writes itself through this codec."""

    LABEL = "record keys"  # how errors name its keys: "unknown prune config keys: bogus; ..."

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]):
        return from_dict(cls, data, cls.LABEL)


def check_format(data: Mapping[str, Any], fmt: str, version: int, what: str) -> None:
    """A stamped file is the kind expected, in a version this code reads."""
    found_format = data.get("format") if isinstance(data, Mapping) else None
    if found_format != fmt:
        raise ShrinkValueError(f"not a torch-shrink {what} (format {found_format!r}, expected {fmt!r})")
    if data.get("version") != version:
        raise ShrinkValueError(f"{what} version {data.get('version')} is not supported (this torch-shrink reads "
                               f"version {version})")


# ----------------------------------------------------------------------------- nested key checking


def _dataclass_of(annotation: Any) -> type | None:
    """The dataclass inside `X`, `X | None` or `Optional[X]`, else None."""
    if dataclasses.is_dataclass(annotation):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(inner) == 1 and dataclasses.is_dataclass(inner[0]):
            return inner[0]
    return None


def known_keys(cls: type) -> dict[str, type | None]:
    """Field name -> the dataclass it holds (None for a plain value)."""
    hints = typing.get_type_hints(cls)
    return {f.name: _dataclass_of(hints[f.name]) for f in dataclasses.fields(cls)}


def unknown_key_message(key: str, known: Sequence[str], where: str, origin: str) -> str:
    """One unknown key at a dotted path of a nested mapping (a recipe), with the closest known key."""
    path = f"{where}.{key}" if where else key
    close = close_match(key, known)
    hint = f"; did you mean {where + '.' if where else ''}{close}?" if close else ""
    return f"{origin}: unknown key {path!r}{hint} (known{' in ' + where if where else ''}: {', '.join(known)})"


def check_keys(data: Mapping[str, Any], cls: type, origin: str, where: str = "") -> None:
    """Every key of `data` is a field of `cls`, recursively, or a ShrinkValueError with a suggestion;
    for a partial mapping (a recipe layer) that is not built yet."""
    known = known_keys(cls)
    for key, value in data.items():
        if key not in known:
            raise ShrinkValueError(unknown_key_message(str(key), list(known), where, origin))
        inner = known[key]
        path = f"{where}.{key}" if where else key
        if inner is not None and value is not None:
            if not isinstance(value, Mapping):
                raise ShrinkValueError(f"{origin}: {path} must be a mapping of keys (or null), got {value!r}")
            check_keys(value, inner, origin, path)
