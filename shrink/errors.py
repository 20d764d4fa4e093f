"""User-facing errors.

A ShrinkError carries one line meant for the user. The CLI prints it without a traceback (unless
--debug) and exits non-zero. Library callers can catch it like any exception.
"""

import re


class ShrinkError(Exception):
    """Bad input or an environment problem the user can fix; the message says how."""


class ShrinkValueError(ShrinkError, ValueError):
    """Invalid configuration value (also a ValueError, as configs promise)."""


class Terminated(BaseException):
    """SIGTERM arrived (`timeout`, a scheduler, `kill`). A BaseException, like KeyboardInterrupt, so
    no `except Exception` swallows it, while every `with` and `finally` on the way out still runs:
    temporary files are removed and locks released."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"terminated by signal {signum}")
        self.signum = signum


ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


def first_line(exc: BaseException, *, with_type: bool = False) -> str:
    """The first line of an exception's message, for a one-line error: libraries (onnx, torch,
    onnxruntime) raise messages of many lines. An empty message gives the exception's type name;
    `with_type` puts the type name in front, for exceptions whose type says what went wrong."""
    text = ANSI_ESCAPE.sub("", str(exc)).strip()  # torch.export colours its messages
    line = text.splitlines()[0] if text else ""
    if with_type:
        return f"{type(exc).__name__}: {line}".rstrip(": ")
    return line or type(exc).__name__
