"""Compare two saved bench results, and say so plainly when they come from different machines.

The same file's latency varies from host to host of the same kind, so a ratio across machines mixes
the model's change with the machine's. The comparison is still computed (it can be useful), but it
is labelled as cross-machine and lists what differs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from shrink.bench.machine import machine_differences
from shrink.bench.stats import speedup

SETTING_KEYS = ("provider", "graph_optimization", "cuda_graphs", "torch_dtype", "channels_last", "trt_fp16")


@dataclass(frozen=True)
class CandidateComparison:
    label: str
    before_p50_ms: float
    after_p50_ms: float
    speedup: float  # before / after, ratio of medians
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class ResultComparison:
    same_machine: bool
    machine_differences: tuple[str, ...]
    setting_differences: tuple[str, ...]  # threads, batch, provider ... that differ
    candidates: tuple[CandidateComparison, ...]  # labels present in both results
    warning: str | None


def _setting_differences(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    diffs = [f"{key}: {before[key]!r} vs {after[key]!r}" for key in ("threads", "batch") if before[key] != after[key]]
    for key in SETTING_KEYS:
        if before["config"].get(key) != after["config"].get(key):
            diffs.append(f"{key}: {before['config'].get(key)!r} vs {after['config'].get(key)!r}")
    return diffs


def compare_results(before: Mapping[str, Any], after: Mapping[str, Any]) -> ResultComparison:
    """Per-candidate speedup of `after` over `before` (two result dicts), with a machine check."""
    machine_diffs = machine_differences(before["machine"], after["machine"])
    setting_diffs = _setting_differences(before, after)
    after_by_label = {c["label"]: c for c in after["candidates"]}
    rows = []
    for cand in before["candidates"]:
        other = after_by_label.get(cand["label"])
        if other is None:
            continue
        ratio = speedup(cand["samples_ms"], other["samples_ms"], cand["label"])
        rows.append(
            CandidateComparison(
                cand["label"], cand["latency"]["p50_ms"], other["latency"]["p50_ms"], ratio.ratio, ratio.ci_low, ratio.ci_high
            )
        )
    warning = None
    if machine_diffs:
        warning = (
            "these results come from different machines (" + "; ".join(machine_diffs) + "): "
            "differences mix the model's change with the machine's"
        )
    return ResultComparison(not machine_diffs, tuple(machine_diffs), tuple(setting_diffs), tuple(rows), warning)


def format_comparison(comparison: ResultComparison, before_name: str, after_name: str) -> str:
    lines = [f"## shrink bench-compare: {before_name} → {after_name}", ""]
    if comparison.warning:
        lines += [f"**Warning: {comparison.warning}.**", ""]
    else:
        lines += ["Both results come from the same machine.", ""]
    if comparison.setting_differences:
        lines += ["Settings that differ: " + "; ".join(comparison.setting_differences) + ".", ""]
    lines += ["| candidate | before p50 ms | after p50 ms | speedup [95% CI] |", "|---|---:|---:|---:|"]
    for row in comparison.candidates:
        lines.append(
            f"| {row.label} | {row.before_p50_ms:.3f} | {row.after_p50_ms:.3f} "
            f"| {row.speedup:.2f}× [{row.ci_low:.2f}, {row.ci_high:.2f}] |"
        )
    if not comparison.candidates:
        lines.append("| (no candidate label appears in both results) | | | |")
    return "\n".join(lines) + "\n"
