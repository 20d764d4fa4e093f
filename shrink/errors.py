"""User-facing errors.

A ShrinkError carries one line meant for the user. The CLI prints it without a traceback (unless
--debug) and exits non-zero. Library callers can catch it like any exception.
"""


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
