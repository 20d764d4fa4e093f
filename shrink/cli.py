"""The one `shrink` entry point.

Each stage owns its subcommand in its own `commands.py`, exposing `register(subparsers)`. This file
only lists those modules, parses, and turns a ShrinkError into one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import signal
import sys
import threading
from typing import Iterator, Sequence

from shrink import __version__
from shrink.errors import ShrinkError, Terminated

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shrink",
        description="Prune, recover, export, quantize and benchmark PyTorch vision models.",
        epilog="example:\n  shrink eval fmnist_resnet18 --data fmnist",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"torch-shrink {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def _raise_terminated(signum: int, frame) -> None:
    raise Terminated(signum)


@contextlib.contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """While a command runs, SIGTERM unwinds it like Ctrl-C does (cleanup runs); the previous
    handler comes back afterwards, so calling main() from Python leaves no trace."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _os_error_line(exc: OSError) -> str:
    where = f": {exc.filename}" if exc.filename else ""
    return f"{exc.strerror or exc}{where}"


# Two-word commands: `shrink bench layers` is the subcommand `bench-layers` (`shrink bench` itself
# takes ONNX files as positionals, so a nested subparser would swallow them).
TWO_WORD_COMMANDS = {("bench", "layers"): "bench-layers"}


def _join_two_word_command(argv: list[str]) -> list[str]:
    words = [i for i, a in enumerate(argv) if not a.startswith("-")][:2]
    if len(words) == 2 and words[1] == words[0] + 1 and (argv[words[0]], argv[words[1]]) in TWO_WORD_COMMANDS:
        i = words[0]
        return argv[:i] + [TWO_WORD_COMMANDS[(argv[i], argv[i + 1])]] + argv[i + 2:]
    return argv


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_join_two_word_command(list(sys.argv[1:] if argv is None else argv)))
    if args.command is None:
        parser.print_help()
        return 2
    try:
        with sigterm_unwinds():
            result = args.func(args)
    except (ShrinkError, OSError, MemoryError) as exc:
        if args.debug:
            raise
        # OSError and MemoryError are the environment's (disk, permissions, memory): one line too.
        line = str(exc) if isinstance(exc, ShrinkError) else (
            _os_error_line(exc) if isinstance(exc, OSError) else "out of memory (MemoryError)")
        print(f"shrink {args.command}: error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"shrink {args.command}: interrupted; temporary files removed", file=sys.stderr)
        return 130
    except Terminated as exc:
        print(f"shrink {args.command}: {exc}; temporary files removed", file=sys.stderr)
        return 128 + exc.signum
    return int(result or 0)


if __name__ == "__main__":
    raise SystemExit(main())
