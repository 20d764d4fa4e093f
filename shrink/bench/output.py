"""Bench results as JSON, CSV, Markdown and a latency-distribution plot.

Everything renders from the plain dict form (`BenchResult.to_dict()` or a loaded JSON file), so a
saved result can be re-rendered without re-running it.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Mapping

from shrink.bench.machine import format_machine
from shrink.fileio import atomic_path, check_not_inputs, check_writable, write_json_atomic, write_text_atomic

OUTPUT_NAMES = {"json": "bench.json", "csv": "bench.csv", "markdown": "bench.md", "plot": "latency.png"}
CSV_COLUMNS = (
    "label", "kind", "engine", "source", "file_mb", "batch", "threads", "runs", "mean_ms", "std_ms",
    "p50_ms", "p90_ms", "p99_ms", "min_ms", "max_ms", "median_ci_low_ms", "median_ci_high_ms",
    "throughput_per_s", "cv", "noisy", "speedup", "speedup_ci_low", "speedup_ci_high",
    "peak_rss_mb", "candidate_rss_mb", "device_mb",
)  # fmt: skip


def _mb(num_bytes: int | None) -> float | None:
    return None if num_bytes is None else num_bytes / 2**20


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _memory_mb(memory: Mapping[str, Any] | None) -> float | None:
    """The per-candidate figure the table shows: device memory on GPU, else the RSS delta."""
    if not memory:
        return None
    return memory.get("device_mb") if memory.get("device_mb") is not None else memory.get("candidate_rss_mb")


def csv_rows(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for cand in result["candidates"]:
        lat, spd, mem = cand["latency"], cand.get("speedup") or {}, cand.get("memory") or {}
        rows.append(
            {
                "label": cand["label"], "kind": cand["kind"], "engine": cand["engine"], "source": cand["source"],
                "file_mb": _mb(cand.get("file_bytes")), "batch": result["batch"], "threads": result["threads"],
                **{k: lat[k] for k in ("runs", "mean_ms", "std_ms", "p50_ms", "p90_ms", "p99_ms", "min_ms",
                                       "max_ms", "median_ci_low_ms", "median_ci_high_ms", "throughput_per_s",
                                       "cv", "noisy")},
                "speedup": spd.get("ratio"), "speedup_ci_low": spd.get("ci_low"),
                "speedup_ci_high": spd.get("ci_high"), "peak_rss_mb": mem.get("peak_rss_mb"),
                "candidate_rss_mb": mem.get("candidate_rss_mb"), "device_mb": mem.get("device_mb"),
            }
        )  # fmt: skip
    return rows


def format_csv(result: Mapping[str, Any]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(csv_rows(result))
    return buffer.getvalue()


def _speedup_cell(speedup: Mapping[str, Any] | None) -> str:
    if not speedup:
        return "1.00× (baseline)"
    return f"{speedup['ratio']:.2f}× [{speedup['ci_low']:.2f}, {speedup['ci_high']:.2f}]"


def _noisy_cell(latency: Mapping[str, Any]) -> str:
    return f"**yes** (CV {latency['cv']:.1%})" if latency["noisy"] else "no"


def format_table(result: Mapping[str, Any]) -> str:
    """The Markdown latency table, one row per candidate."""
    lines = [
        "| candidate | engine | file MB | p50 ms [95% CI] | mean ± std ms | p90 ms | p99 ms | min ms "
        "| items/s | speedup [95% CI] | memory MB | noisy | spread within / between processes |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for cand in result["candidates"]:
        lat = cand["latency"]
        lines.append(
            f"| {cand['label']} | {cand['engine']} | {_fmt(_mb(cand.get('file_bytes')))} "
            f"| {lat['p50_ms']:.3f} [{lat['median_ci_low_ms']:.3f}, {lat['median_ci_high_ms']:.3f}] "
            f"| {lat['mean_ms']:.3f} ± {lat['std_ms']:.3f} | {lat['p90_ms']:.3f} | {lat['p99_ms']:.3f} "
            f"| {lat['min_ms']:.3f} | {lat['throughput_per_s']:.1f} | {_speedup_cell(cand.get('speedup'))} "
            f"| {_fmt(_memory_mb(cand.get('memory')), 1)} | {_noisy_cell(lat)} | {_spread_cell(cand.get('spread'))} |"
        )
    return "\n".join(lines)


def _spread_cell(spread: Mapping[str, Any] | None) -> str:
    if not spread:
        return "-"
    text = f"{spread['within_cv']:.1%} / {spread['between_cv']:.1%} ({spread['processes']} processes)"
    return text + (" **bimodal**" if spread.get("bimodal") else "")


def method_text(result: Mapping[str, Any]) -> str:
    """One sentence: how the figures were timed."""
    config = result["config"]
    spin = "on (onnxruntime's default)" if config.get("spinning", True) else "off"
    blocks = f"round-robin blocks of {_blocks_text(result)} runs ({result['rounds']} rounds{_capped_text(result)})"
    if result.get("method") == "processes":
        return (f"Each candidate ran alone in a worker process of its own, as in a deployment, taking turns in "
                f"{blocks}; each block started only once the previous worker's threads were quiet. This was "
                f"repeated over {result['processes']} rounds of fresh worker processes, and the intervals include "
                f"the spread between them. Intra-op spinning {spin}.")
    return f"Candidates ran interleaved in one process, in {blocks}. Intra-op spinning {spin}."


def format_profile(profile: Mapping[str, Any]) -> str:
    """Per-operator-type time diff and the flags of each profiled candidate, in Markdown."""
    labels = list(profile["labels"])
    if not labels:
        return "\n".join(f"- {note}" for note in profile["notes"])
    head = "| op type | " + " | ".join(f"{label} ms/run (nodes)" for label in labels)
    head += " | " + " | ".join(f"Δ {label}" for label in labels[1:]) + " |" if len(labels) > 1 else " |"
    lines = [head, "|---|" + "---:|" * (len(labels) + max(len(labels) - 1, 0))]
    for row in profile["diff"]:
        cells = [f"{ms:.3f} ({n})" for ms, n in zip(row["ms_per_run"], row["nodes"])]
        cells += [f"{d:+.3f}" for d in row["delta_ms"][1:]]
        lines.append(f"| {row['op_type']} | " + " | ".join(cells) + " |")
    for cand in profile["candidates"]:
        lines.append("")
        lines.append(f"**{cand['label']}** ({cand['kernel_ms_per_run']:.3f} ms/run in kernels, {cand['runs']} runs):")
        lines.extend(f"- {flag}" for flag in cand["flags"] or ["no flags"])
        for conv in cand["misaligned_convs"][:20]:
            lines.append(f"  - {conv['node']}: in {conv['in_channels']}, out {conv['out_channels']}, group {conv['group']}")
        if len(cand["misaligned_convs"]) > 20:
            lines.append(f"  - ... {len(cand['misaligned_convs']) - 20} more in bench.json")
    lines.append("")
    lines.extend(f"- {note}" for note in profile["notes"])
    return "\n".join(lines)


def _steal_text(load: Mapping[str, Any] | None) -> str:
    if not load or load.get("steal_share") is None:
        return "CPU steal and other processes' CPU use not measured (no /proc/stat)"
    return (f"CPU stolen by the hypervisor {load['steal_share']:.1%}, used by other processes "
            f"{load['foreign_share']:.1%} of the machine's CPU time during the timing")


def _load_text(load) -> str:
    return " / ".join(_fmt(x) for x in load) if load else "-"


def _blocks_text(result: Mapping[str, Any]) -> str:
    blocks = result.get("block_runs") or [result["config"]["block_runs"]]
    return "/".join(str(b) for b in blocks)


def _capped_text(result: Mapping[str, Any]) -> str:
    return f", stopped by the {result['config']['max_seconds']:g} s cap" if result.get("capped") else ""


def format_markdown(result: Mapping[str, Any]) -> str:
    config = result["config"]
    parts = [
        f"## shrink bench: provider {config['provider']}, {result['threads']} threads, batch {result['batch']}",
        "",
        f"Measured {result['created_utc']}. {method_text(result)} Warmup at least "
        f"{config['warmup_runs']} runs and {config['warmup_seconds']:g} s per process; at least {config['min_runs']} "
        f"runs and {config['min_seconds']:g} s measured per candidate in all. Speedup is the ratio of medians against "
        "the first candidate. Intervals are 95% bootstrap intervals. Memory is measured in a fresh process per "
        "candidate: the RSS peak minus the RSS before loading on CPU, the device memory taken on GPU.",
        "",
        f"Inputs: {result['inputs']}.",
        "",
        f"1-minute load average before / after timing: {_load_text(result.get('load_average_1m'))}; "
        f"{_steal_text(result.get('load'))}.",
        "",
        format_table(result),
    ]
    if result.get("caveats"):
        parts += ["", "**Caveat: " + "; ".join(result["caveats"]) + ".**"]
    if result["notes"]:
        parts += ["", "Notes:"] + [f"- {note}" for note in result["notes"]]
    if result.get("profile"):
        parts += ["", "### Profile", "", format_profile(result["profile"])]
    parts += ["", "Machine:", "", "```", format_machine(result["machine"]), "```", ""]
    return "\n".join(parts)


def plot_latency(result: Mapping[str, Any], dest: str | Path) -> Path:
    """Box-and-strip plot of every run's latency per candidate (Agg backend: no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    candidates = result["candidates"]
    labels = [c["label"] for c in candidates]
    samples = [c["samples_ms"] for c in candidates]
    figure = Figure(figsize=(1.6 + 1.4 * len(candidates), 4.5))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.boxplot(samples, showfliers=False, widths=0.5)  # vertical: the default in every version
    for column, values in enumerate(samples, start=1):
        jitter = [column + 0.18 * ((i * 0.618) % 1.0 - 0.5) for i in range(len(values))]  # deterministic
        axes.scatter(jitter, values, s=4, alpha=0.35)
    axes.set_xticks(range(1, len(labels) + 1), labels, rotation=15, ha="right")
    axes.set_ylabel("latency per run (ms)")
    config = result["config"]
    axes.set_title(f"shrink bench: {config['provider']}, {result['threads']} threads, batch {result['batch']}")
    figure.tight_layout()
    with atomic_path(dest) as tmp:
        figure.savefig(tmp, format="png", dpi=110)
    return Path(dest)


def check_output_dir(out_dir: str | Path, inputs: tuple[str | Path, ...] = ()) -> None:
    """Refuse, before any timing, an output directory that is a file or cannot be written, or whose
    files would overwrite an input."""
    out_dir = Path(out_dir)
    check_writable(out_dir, directory=True)
    check_not_inputs([out_dir / name for name in OUTPUT_NAMES.values()], inputs)


def write_outputs(result: Mapping[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """bench.json, bench.csv, bench.md and latency.png in `out_dir`; returns their paths."""
    out_dir = Path(out_dir)
    paths = {kind: out_dir / name for kind, name in OUTPUT_NAMES.items()}
    write_json_atomic(paths["json"], result)
    write_text_atomic(paths["csv"], format_csv(result))
    write_text_atomic(paths["markdown"], format_markdown(result))
    try:
        plot_latency(result, paths["plot"])
    except ImportError:  # matplotlib is a dependency, but a bare GPU machine may lack it
        del paths["plot"]
    return paths
