"""Running the real `shrink` command in a subprocess, where exit codes, stderr and files on disk are
what a user sees, and in a private mount namespace where a read-only or full file system is real."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 300


def shrink(*argv, cwd: Path | None = None, timeout: float = TIMEOUT_S) -> subprocess.CompletedProcess:
    """`python -m shrink ARGV` as the user would run it; never raises on a non-zero exit."""
    env = {**os.environ, "SHRINK_NO_DOWNLOAD": "1"}
    return subprocess.run([sys.executable, "-m", "shrink", *map(str, argv)], capture_output=True, text=True,
                          cwd=cwd or REPO, env=env, timeout=timeout)


def one_error_line(result: subprocess.CompletedProcess, pattern: str) -> str:
    """The command failed with exit 2 and exactly one stderr line, no traceback, matching `pattern`."""
    import re

    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert len(lines) == 1, lines
    assert "Traceback" not in lines[0]
    assert re.search(pattern, lines[0]), lines[0]
    return lines[0]


def mount_namespace_available() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    return probe.returncode == 0


needs_mount_namespace = pytest.mark.skipif(
    not mount_namespace_available(), reason="needs `unshare -rm` (user + mount namespaces) for a real read-only "
    "or full file system")


LISTING_MARKER = "--- files left on the tmpfs:"


def shrink_on_tmpfs(mountpoint: Path, options: str, *argv, timeout: float = TIMEOUT_S) -> subprocess.CompletedProcess:
    """`shrink ARGV` with a fresh tmpfs mounted at `mountpoint` (e.g. options "ro" or "size=1m"), in a
    private mount namespace: the file system is really read-only or really full, for this command only.
    What the command left on the tmpfs is listed after it (tmpfs_listing), before the namespace ends."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    where = shlex.quote(str(mountpoint))
    command = (f"mount -t tmpfs -o {shlex.quote(options)} none {where} || exit 99; "
               + shlex.join([sys.executable, "-m", "shrink", *map(str, argv)])
               + f"; rc=$?; echo {shlex.quote(LISTING_MARKER)}; (cd {where} && find . -mindepth 1); exit $rc")
    env = {**os.environ, "SHRINK_NO_DOWNLOAD": "1"}
    return subprocess.run(["unshare", "-rm", "sh", "-c", command], capture_output=True, text=True, cwd=REPO,
                          env=env, timeout=timeout)


def tmpfs_listing(result: subprocess.CompletedProcess) -> list[str]:
    """The paths (relative to the mount point) the command left on its tmpfs."""
    return result.stdout.split(LISTING_MARKER, 1)[1].split()
