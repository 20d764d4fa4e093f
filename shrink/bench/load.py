"""What else the machine was doing while it was timed: CPU steal time and other processes' CPU use,
from /proc/stat, and the load average.

On a VM the hypervisor can take the CPU away (steal); on any machine another process can compete.
Either makes a latency wrong in a way its own spread may not show, so every measurement records
both, and a headline measured under them says so on the same line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

# A measurement where more than this share of the machine's CPU time was stolen, or used by
# processes other than the bench's, carries a caveat.
STEAL_CAVEAT_SHARE = 0.02
FOREIGN_CAVEAT_SHARE = 0.10
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class CpuTimes:
    """The machine-wide CPU counters of /proc/stat's first line, in seconds."""

    busy_s: float  # user + nice + system + irq + softirq (guest time is inside user)
    idle_s: float  # idle + iowait
    steal_s: float

    @property
    def total_s(self) -> float:
        return self.busy_s + self.idle_s + self.steal_s


def read_cpu_times(text: str | None = None) -> CpuTimes | None:
    """Parse /proc/stat (or `text`); None where there is none."""
    if text is None:
        try:
            with open("/proc/stat", encoding="ascii") as f:
                text = f.readline()
        except OSError:
            return None
    fields = text.split()
    if not fields or fields[0] != "cpu" or len(fields) < 8:
        return None
    values = [int(v) / CLOCK_TICKS for v in fields[1:9]] + [0.0] * (8 - len(fields[1:9]))
    user, nice, system, idle, iowait, irq, softirq, steal = values
    return CpuTimes(busy_s=user + nice + system + irq + softirq, idle_s=idle + iowait, steal_s=steal)


@dataclass(frozen=True)
class LoadReport:
    """The machine during one measurement."""

    seconds: float | None  # machine CPU seconds elapsed (all CPUs), None without /proc/stat
    steal_share: float | None  # stolen / elapsed CPU time
    foreign_share: float | None  # CPU time used by other processes / elapsed CPU time
    load_average_1m: tuple[float | None, float | None]  # before and after


def load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def load_report(before: CpuTimes | None, after: CpuTimes | None, own_cpu_s: float,
                load: tuple[float | None, float | None]) -> LoadReport:
    """Shares of the CPU time between two snapshots; `own_cpu_s` is what the bench itself used
    (this process and its workers), so the rest of the busy time was someone else's."""
    if before is None or after is None or after.total_s <= before.total_s:
        return LoadReport(None, None, None, load)
    total = after.total_s - before.total_s
    steal = max(0.0, after.steal_s - before.steal_s) / total
    foreign = max(0.0, after.busy_s - before.busy_s - own_cpu_s) / total
    return LoadReport(round(total, 3), round(steal, 4), round(foreign, 4), load)


def caveats(report: LoadReport | None) -> list[str]:
    """What a headline measured under this load must say on its own line."""
    if report is None:
        return []
    out = []
    if report.steal_share is not None and report.steal_share > STEAL_CAVEAT_SHARE:
        out.append(f"{report.steal_share:.0%} of the CPU time was stolen by the hypervisor")
    if report.foreign_share is not None and report.foreign_share > FOREIGN_CAVEAT_SHARE:
        out.append(f"other processes used {report.foreign_share:.0%} of the CPU")
    return out
