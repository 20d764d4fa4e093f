"""What a latency or speedup printed on one line must say beside it.

A headline ("9.3x faster") gets read without the notes at the bottom of a report. So whatever
makes it doubtful travels with it, on the same line: the machine was busy or had its CPU stolen,
the null test failed, the timing was cut short, the candidate was noisy or bimodal.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from shrink.bench.load import LoadReport, caveats as load_caveats
from shrink.bench.stats import NOISY_CV_THRESHOLD


def machine_caveats(load: LoadReport | None, self_check, capped: bool) -> list[str]:
    """Caveats of the whole measurement (typed form, as run_bench builds them)."""
    out = load_caveats(load)
    if self_check is not None and not self_check.passed:
        out.append(f"this machine failed the null test (a file against itself: {self_check.ratio:.3f}x "
                   f"[{self_check.ci_low:.3f}, {self_check.ci_high:.3f}])")
    if capped:
        out.append("timing was cut short by the max_seconds cap")
    return out


def candidate_caveats(result: Mapping[str, Any], label: str) -> list[str]:
    """The caveats of one candidate's figures in a saved result (dict form), the machine's first."""
    out = list(result.get("caveats") or [])
    candidate = next((c for c in result.get("candidates", []) if c.get("label") == label), None)
    if candidate is None:
        return out
    spread = candidate.get("spread") or {}
    # The bulk of the runs, not a few slow ones: the robust CV inside a process where there is one
    # (a handful of 10x outliers makes the plain CV large while the median stays put).
    cv = spread.get("within_cv", candidate.get("latency", {}).get("cv", 0.0))
    if cv > NOISY_CV_THRESHOLD:
        out.append(f"{label} was noisy (CV {cv:.0%} of its runs)")
    if spread.get("bimodal"):
        out.append(f"{label} is bimodal across processes")
    return out


def pair_caveats(first: Sequence[str], second: Sequence[str]) -> list[str]:
    """What a speedup between two candidates must carry: the caveats of each, once each."""
    return list(dict.fromkeys([*first, *second]))


def with_caveats(line: str, caveats: list[str]) -> str:
    """`line`, then its caveats on the same line."""
    return f"{line} (CAVEAT: {'; '.join(caveats)})" if caveats else line
