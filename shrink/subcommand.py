"""How a stage adds its subcommand to `shrink`: a leaf module that cli.py and every commands.py
import, so no commands.py imports the entry point back."""

from __future__ import annotations

import argparse
from typing import Callable


def add_command(
    subparsers: argparse._SubParsersAction,
    name: str,
    *,
    help: str,
    example: str,
    func: Callable[[argparse.Namespace], int | None],
) -> argparse.ArgumentParser:
    """Add a subcommand whose --help ends with an example, as every subcommand's must."""
    parser = subparsers.add_parser(
        name,
        help=help,
        description=help,
        epilog=f"example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(func=func)
    return parser
