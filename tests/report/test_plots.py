"""Plots are PNG bytes, the same bytes for the same data (no timestamps), drawn without pyplot."""

from __future__ import annotations

from shrink.report import plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def bars():
    return [plots.LatencyBar("dense fp32", 10.0, 12.0, 9.5, 10.5), plots.LatencyBar("pruned int8", 2.0, 2.5, 1.9, 2.1)]


def test_latency_plot_is_a_deterministic_png():
    first = plots.latency_plot(bars(), "latency")
    assert first.startswith(PNG_MAGIC)
    assert plots.latency_plot(bars(), "latency") == first


def test_accuracy_plot_with_and_without_frontier():
    points = [plots.Point("dense fp32", 10.0, 94.0, 44.0, frontier=True),
              plots.Point("r0.50 int8", 2.0, 93.0, 3.0, frontier=True, shipped=True),
              plots.Point("r0.50 fp32", 3.0, 92.0, 11.0)]
    assert plots.accuracy_latency_plot(points, "a").startswith(PNG_MAGIC)
    assert plots.accuracy_latency_plot(points, "a", pareto=True).startswith(PNG_MAGIC)


def test_widths_plot_keeps_changed_layers_when_there_are_many():
    layers = [plots.LayerWidth(f"l{i}", 64, 32 if i % 3 else 64) for i in range(plots.MAX_WIDTH_LAYERS + 6)]
    assert plots.widths_plot(layers, "w").startswith(PNG_MAGIC)


def test_plots_do_not_use_pyplot():
    import shrink.report.plots as module

    assert "pyplot" not in module.__dict__ and "plt" not in module.__dict__  # no global figure state
