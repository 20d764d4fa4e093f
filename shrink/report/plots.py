"""The report's plots, drawn with matplotlib's Agg canvas (no display, no pyplot global state) and
returned as PNG bytes, so the same bytes go to a file and into the HTML."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Sequence

from matplotlib.figure import Figure

from shrink.candidates import Candidate

COLORS = {Candidate.DENSE_FP32: "#8c959f", Candidate.PRUNED_FP32: "#0969da", Candidate.PRUNED_INT8: "#1a7f37"}
OTHER_COLOR = "#8250df"
DPI = 110
MAX_WIDTH_LAYERS = 60  # beyond this many layers the widths plot shows the ones that changed


def png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    return buffer.getvalue()


def color(name: str) -> str:
    return COLORS.get(name, OTHER_COLOR)


@dataclass(frozen=True)
class LatencyBar:
    name: str
    p50_ms: float
    p90_ms: float
    ci_low_ms: float
    ci_high_ms: float


def latency_plot(bars: Sequence[LatencyBar], title: str) -> bytes:
    """Median latency per candidate with its 95% interval, and the p90 as a tick."""
    fig = Figure(figsize=(8, 0.7 * len(bars) + 1.4))
    ax = fig.add_subplot()
    ys = list(range(len(bars)))[::-1]
    for y, bar in zip(ys, bars):
        err = [[bar.p50_ms - bar.ci_low_ms], [bar.ci_high_ms - bar.p50_ms]]
        ax.barh(y, bar.p50_ms, color=color(bar.name), height=0.55, xerr=err, capsize=4)
        ax.plot([bar.p90_ms], [y], marker="|", markersize=22, color="#1f2328", mew=2)
        right = max(bar.p90_ms, bar.ci_high_ms)
        ax.text(right, y, f"   p50 {bar.p50_ms:.2f} ms, p90 {bar.p90_ms:.2f} ms", va="center", fontsize=9)
    ax.set_yticks(ys, [b.name for b in bars])
    ax.set_xlabel("latency per batch (ms): bar = median with its 95% CI, tick = p90")
    ax.set_xlim(0, max(max(b.p90_ms, b.ci_high_ms) for b in bars) * 1.6)  # room for the labels
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return png(fig)


@dataclass(frozen=True)
class Point:
    name: str
    latency_ms: float
    accuracy: float
    size_mb: float
    frontier: bool = False
    shipped: bool = False


def accuracy_label(metric: str) -> str:
    """The accuracy axis: a classifier's as it always was, another task's metric by name."""
    return "top-1 accuracy (%), onnxruntime" if metric == "top-1" else f"{metric} (%), onnxruntime"


def accuracy_latency_plot(points: Sequence[Point], title: str, *, pareto: bool = False,
                          ylabel: str = accuracy_label("top-1")) -> bytes:
    """Top-1 against median latency; marker area grows with file size. With `pareto`, frontier
    points are filled and joined, the others hollow."""
    fig = Figure(figsize=(8, 5))
    ax = fig.add_subplot()
    biggest = max(p.size_mb for p in points) or 1.0
    for i, p in enumerate(sorted(points, key=lambda p: p.latency_ms)):
        area = 60 + 500 * p.size_mb / biggest
        hollow = pareto and not p.frontier
        ax.scatter([p.latency_ms], [p.accuracy], s=area, color="white" if hollow else color(_family(p.name)),
                   edgecolors=color(_family(p.name)), linewidths=2, zorder=3,
                   marker="*" if p.shipped else "o")
        # Labels alternate above and below, so neighbours in latency do not print over each other.
        ax.annotate(f"{p.name}\n{p.size_mb:.1f} MB", (p.latency_ms, p.accuracy), textcoords="offset points",
                    xytext=(10, 8 if i % 2 == 0 else -26), fontsize=8)
    if pareto:
        frontier = sorted((p for p in points if p.frontier), key=lambda p: p.latency_ms)
        ax.plot([p.latency_ms for p in frontier], [p.accuracy for p in frontier], "--", color="#1f2328",
                alpha=0.5, zorder=2, label="Pareto frontier (accuracy, latency, size)")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xlabel("median latency (ms)")
    ax.set_ylabel(ylabel)
    ax.set_xlim(0, max(p.latency_ms for p in points) * 1.35)
    _pad_y(ax, [p.accuracy for p in points])
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    return png(fig)


def _family(name: str) -> str:
    """'r0.50 int8' -> 'pruned int8', so sweep points share the run's colors."""
    if name in COLORS:
        return name
    return Candidate.PRUNED_INT8 if name.endswith("int8") else Candidate.PRUNED_FP32


def _pad_y(ax, values: Sequence[float]) -> None:
    low, high = min(values), max(values)
    pad = max(1.0, (high - low) * 0.15)
    ax.set_ylim(low - pad, min(100.0, high + pad))


@dataclass(frozen=True)
class LayerWidth:
    name: str
    before: int
    after: int


def widths_plot(layers: Sequence[LayerWidth], title: str) -> bytes:
    """Output channels of each conv/linear layer, dense (grey) and after pruning (blue)."""
    if len(layers) > MAX_WIDTH_LAYERS:
        layers = [w for w in layers if w.before != w.after][:MAX_WIDTH_LAYERS]
    fig = Figure(figsize=(max(8, 0.28 * len(layers) + 2), 4.8))
    ax = fig.add_subplot()
    xs = range(len(layers))
    ax.bar(xs, [w.before for w in layers], color="#d0d7de", label="dense", width=0.8)
    ax.bar(xs, [w.after for w in layers], color=COLORS[Candidate.PRUNED_FP32], label="pruned", width=0.5)
    ax.set_xticks(list(xs), [w.name for w in layers], rotation=75, ha="right", fontsize=7)
    ax.set_ylabel("output channels")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return png(fig)


def budget_plot(rounds: Sequence[dict], requested: float | str) -> bytes:
    """Predicted against measured share of the dense latency, one point per closed-loop round."""
    fig = Figure(figsize=(5.5, 4.2))
    ax = fig.add_subplot()
    for r in rounds:
        low, high = r["ratio_ci"]
        ax.errorbar(r["predicted_ratio"], r["ratio"], yerr=[[r["ratio"] - low], [high - r["ratio"]]],
                    marker="*" if r["shipped"] else "o", markersize=12 if r["shipped"] else 6, capsize=3,
                    color=color(Candidate.PRUNED_FP32))
        ax.annotate(f"  round {r['index']}", (r["predicted_ratio"], r["ratio"]), fontsize=8)
    values = [r["predicted_ratio"] for r in rounds] + [r["ratio"] for r in rounds]
    top = max(values) * 1.15
    ax.plot([0, top], [0, top], color="#8c959f", linestyle="--", linewidth=1, label="measured = predicted")
    if not isinstance(requested, str):
        ax.axhspan(requested * 0.95, requested * 1.02, color="#1a7f37", alpha=0.15, label="accepted window")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("predicted latency / dense (latency table)")
    ax.set_ylabel("measured latency / dense")
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    return png(fig)
