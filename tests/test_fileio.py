"""Output checks before any work, and the temporaries a killed process leaves behind."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from shrink.errors import ShrinkError
from shrink.fileio import (
    atomic_path,
    check_not_inputs,
    check_writable,
    insert_after,
    is_temporary_name,
    json_safe,
    scratch_dir,
    sweep_stale_temporaries,
    temp_prefix,
)


def _dead_pid() -> int:
    """The PID of a process that has exited (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_an_output_that_is_an_input_is_refused_through_links_and_dots(tmp_path):
    src = tmp_path / "w.safetensors"
    src.write_bytes(b"weights")
    (tmp_path / "link").symlink_to(src)
    for out in (src, tmp_path / "." / "w.safetensors", tmp_path / "link"):
        with pytest.raises(ShrinkError, match="is an input of this command"):
            check_not_inputs([out], [src])
    check_not_inputs([tmp_path / "other"], [src])  # a different path is fine


def test_check_writable_refuses_files_for_directories_and_the_reverse(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ShrinkError, match="is a file, not a directory"):
        check_writable(tmp_path / "f", directory=True)
    with pytest.raises(ShrinkError, match="is a directory"):
        check_writable(tmp_path)
    with pytest.raises(ShrinkError, match="is a file"):
        check_writable(tmp_path / "f" / "below" / "out.onnx")
    check_writable(tmp_path / "new" / "deeper", directory=True)
    assert not (tmp_path / "new").exists()  # the check creates nothing
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]  # and its probe is gone


def test_stale_temporaries_are_swept_and_live_ones_kept(tmp_path):
    dead = tmp_path / f".model.onnx.{_dead_pid()}.abc123.staging"
    dead.mkdir()
    (dead / "model.onnx").write_bytes(b"half")
    stale_file = tmp_path / f".plan.json.{_dead_pid()}.x_y.tmp"
    stale_file.write_text("{")
    live = tmp_path / f"{temp_prefix('quantize')}q1w2.scratch"
    live.mkdir()
    user = tmp_path / ".my.notes.123.tmp.txt"  # not our pattern: never touched
    user.write_text("mine")
    removed = sweep_stale_temporaries(tmp_path)
    assert sorted(p.name for p in removed) == sorted([dead.name, stale_file.name])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, user.name])


def test_scratch_and_atomic_temporaries_carry_the_pid_and_are_removed(tmp_path):
    with scratch_dir(tmp_path, "quantize") as work:
        assert work.parent == tmp_path and is_temporary_name(work.name) and f".{os.getpid()}." in work.name
        (work / "candidate.onnx").write_bytes(b"x")
        with pytest.raises(RuntimeError):
            with atomic_path(tmp_path / "out.json") as tmp:
                assert is_temporary_name(tmp.name)
                raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_json_safe_turns_tuples_into_lists_and_non_finite_floats_into_strings():
    assert json_safe({"a": (1, float("inf")), "b": [float("nan"), {"c": float("-inf")}], "d": 1.5}) == \
        {"a": [1, "inf"], "b": ["nan", {"c": "-inf"}], "d": 1.5}


def test_insert_after_keeps_the_key_order_of_a_record():
    record = insert_after({"a": 1, "b": 2, "c": 3}, "b", {"x": 9, "y": 8})
    assert list(record.items()) == [("a", 1), ("b", 2), ("x", 9), ("y", 8), ("c", 3)]
