"""`shrink models [PATTERN]`: list the names the registry resolves."""

from __future__ import annotations

import argparse

from shrink.errors import ShrinkError
from shrink.models.registry import list_models


def run(args: argparse.Namespace) -> int:
    names = list_models(args.pattern)
    if not names:
        raise ShrinkError(f"no model matches {args.pattern!r} (`shrink models` lists them all)")
    for name in names:
        print(name)
    return 0


def register(subparsers) -> None:
    from shrink.subcommand import add_command

    parser = add_command(
        subparsers,
        "models",
        help="list model names: built-in references, tv:NAME (torchvision), timm:NAME, or path/file.py:factory",
        example="shrink models resnet",
        func=run,
    )
    parser.add_argument("pattern", nargs="?", help="substring or glob to filter names")
