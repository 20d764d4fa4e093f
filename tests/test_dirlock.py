"""One writer per directory: two real processes, a refusal naming the holder, a stale lock taken over."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from shrink.dirlock import LOCK_FILE, directory_lock
from shrink.errors import ShrinkError

HOLD = """
import sys, time
from shrink.dirlock import directory_lock
with directory_lock(sys.argv[1], "test"):
    print("locked", flush=True)
    time.sleep(120)
"""


def _holder(directory) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(directory)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "locked"
    return process


def test_a_second_process_is_refused_with_the_holders_pid(tmp_path):
    holder = _holder(tmp_path / "out")
    try:
        with pytest.raises(ShrinkError, match=rf"in use by PID {holder.pid} on .*`shrink test`"):
            with directory_lock(tmp_path / "out", "run"):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()


def test_the_lock_of_a_killed_process_is_taken_over_and_said_so(tmp_path):
    holder = _holder(tmp_path / "out")
    holder.send_signal(signal.SIGKILL)  # no cleanup runs: the lock file stays
    holder.wait()
    assert (tmp_path / "out" / LOCK_FILE).is_file()
    said = []
    with directory_lock(tmp_path / "out", "run", on_stale=said.append) as stale:
        assert stale is not None and stale.pid == holder.pid
    assert said and f"PID {holder.pid}" in said[0] and "no longer running" in said[0]
    assert not (tmp_path / "out" / LOCK_FILE).exists()  # released: the file goes with the lock


def test_a_directory_the_lock_created_goes_when_left_empty(tmp_path):
    with directory_lock(tmp_path / "new", "run"):
        assert (tmp_path / "new" / LOCK_FILE).is_file()
    assert not (tmp_path / "new").exists()
    (tmp_path / "kept").mkdir()
    with directory_lock(tmp_path / "kept", "run"):
        (tmp_path / "kept" / "result.json").write_text("{}")
    assert os.listdir(tmp_path / "kept") == ["result.json"]


def test_the_lock_is_released_for_the_next_process(tmp_path):
    with directory_lock(tmp_path, "run"):
        pass
    holder = _holder(tmp_path)  # asserts that it got the lock
    holder.send_signal(signal.SIGKILL)
    holder.wait()
