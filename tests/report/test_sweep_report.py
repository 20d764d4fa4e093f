"""Pareto frontier over accuracy, latency and size, and the sweep report."""

from __future__ import annotations

from shrink.report import sweep_report
from shrink.report.document import Image, render_markdown
from shrink.sweep import SweepPoint, mark_frontier

from report_fixtures import MACHINE


def point(name, acc, ms, mb, file="x.onnx"):
    return SweepPoint(name, 0.5, "fp32", file, 100, size_bytes=int(mb * 2**20), accuracy=acc, p50_ms=ms,
                      ci_low_ms=ms * 0.9, ci_high_ms=ms * 1.1, speedup=10.0 / ms)


def test_frontier_keeps_only_undominated_points():
    points = mark_frontier([
        point("dense", 94.0, 10.0, 44.0),      # most accurate
        point("fast", 91.0, 1.5, 3.0),         # fastest and smallest
        point("dominated", 90.0, 2.0, 3.5),    # worse than "fast" on all three
        point("tie-size", 92.0, 3.0, 3.0),     # more accurate than fast, slower: on the frontier
        SweepPoint("missing", 0.5, "int8", None, 100, note="not shipped"),
    ])
    assert {p.name for p in points if p.frontier} == {"dense", "fast", "tie-size"}


def test_synthetic_points_compete_on_latency_and_size_only():
    points = mark_frontier([point("a", None, 1.0, 5.0), point("b", None, 2.0, 6.0)])
    assert [p.frontier for p in points] == [True, False]


def test_sweep_report_marks_the_frontier_and_embeds_the_plot():
    points = mark_frontier([point("dense fp32", 94.0, 10.0, 44.0), point("r0.50 fp32", 92.0, 3.0, 11.0),
                            SweepPoint("r0.50 int8", 0.5, "int8", None, 100, note="int8 not shipped: slower")])
    bench = {"machine": MACHINE, "config": {"provider": "cpu"}, "threads": 2, "batch": 1, "rounds": 10,
             "inputs": "synthetic inputs", "notes": []}
    data = {"synthetic": False, "eval_images": 1000, "test_images_available": 10000, "dataset": "fmnist", "seed": 0}
    title, blocks = sweep_report.build("demo", points, bench, data, ("fp32", "int8"))
    text = render_markdown(title, blocks)
    assert "**dense fp32** ★" in text and "int8 not shipped: slower" in text
    assert [b.file for b in blocks if isinstance(b, Image)] == ["pareto.png"]
