"""Memory of this process and of this machine, read from /proc (None where there is no /proc).

Shared by the guards that stop a runaway (shrink.prune.guards) and the checks that refuse work too
big for the machine before it starts (shrink.bench)."""

from __future__ import annotations

import os


def resident_mb() -> float | None:
    """This process's resident memory."""
    try:
        with open("/proc/self/statm", "rb") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def available_mb() -> float | None:
    """Memory the kernel can give out without swapping (MemAvailable)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        return None
    return None
