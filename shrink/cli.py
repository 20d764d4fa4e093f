"""The one `shrink` entry point.

Each stage owns its subcommand in its own `commands.py`, exposing `register(subparsers)`. This file
only lists those modules, parses, and turns a ShrinkError into one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Callable, Sequence

from shrink import __version__
from shrink.errors import ShrinkError

# Order here is the order in `shrink --help`.
COMMAND_MODULES: tuple[str, ...] = (
    "shrink.models.commands",  # models
    "shrink.prune.commands",  # prune
    "shrink.recover.commands",  # train, finetune
    "shrink.evaluate",  # eval
    "shrink.export.commands",  # export
    "shrink.quantize.commands",  # quantize
    "shrink.bench.commands",  # bench, bench-compare
    "shrink.run.commands",  # run, sweep
)


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shrink",
        description="Prune, recover, export, quantize and benchmark PyTorch vision models.",
        epilog="example:\n  shrink eval models/fmnist_resnet18.safetensors --data fmnist",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"torch-shrink {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        result = args.func(args)
    except ShrinkError as exc:
        if args.debug:
            raise
        print(f"shrink {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"shrink {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    raise SystemExit(main())
