"""User-facing errors.

A ShrinkError carries one line meant for the user. The CLI prints it without a traceback (unless
--debug) and exits non-zero. Library callers can catch it like any exception.
"""


class ShrinkError(Exception):
    """Bad input or an environment problem the user can fix; the message says how."""


class ShrinkValueError(ShrinkError, ValueError):
    """Invalid configuration value (also a ValueError, as configs promise)."""
