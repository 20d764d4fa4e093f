"""One line of an exception, for the one-line errors every command prints."""

from __future__ import annotations

from shrink.errors import first_line


def test_first_line_keeps_the_first_line_of_the_message():
    assert first_line(ValueError("  bad graph\n  at node 3\n")) == "bad graph"
    assert first_line(RuntimeError("")) == "RuntimeError"


def test_first_line_with_type_names_the_exception():
    assert first_line(ValueError("bad graph\nat node 3"), with_type=True) == "ValueError: bad graph"
    assert first_line(RuntimeError(""), with_type=True) == "RuntimeError"
