"""The report of a sweep: the Pareto table and plot of accuracy, latency and size."""

from __future__ import annotations

from typing import Any, Sequence

from shrink.report import plots
from shrink.report.document import Block, Bullets, Heading, Image, Paragraph, Table
from shrink.report.run_report import count, mb, pct, sentence_case


def _row(p) -> tuple[str, ...]:
    name = f"**{p.name}** ★" if p.frontier else p.name
    if p.file is None:
        return (name, "—" if p.ratio is None else f"{p.ratio:.2f}", p.precision, "—", count(p.macs), "—", "—", "—",
                "—", p.note or "")
    latency = f"{p.p50_ms:.2f} [{p.ci_low_ms:.2f}, {p.ci_high_ms:.2f}]"
    return (name, "—" if p.ratio is None else f"{p.ratio:.2f}", p.precision, f"`{p.file}`", count(p.macs),
            mb(p.size_bytes), pct(p.accuracy), latency, f"{p.speedup:.2f}×", "Pareto frontier" if p.frontier else "")


def pareto_table(points: Sequence, metric: str = "top-1") -> Table:
    header = ("point", "ratio", "precision", "file", "MACs", "file size", f"{metric} onnxruntime", "p50 ms [95% CI]",
              "speedup vs dense", "")
    return Table(header, tuple(_row(p) for p in points), (False, True, False, False, True, True, True, True, True, False))


def pareto_figure(points: Sequence, synthetic: bool, metric: str = "top-1") -> Image | None:
    measured = [p for p in points if p.file]
    if not measured or synthetic:
        return None
    dots = [plots.Point(p.name, p.p50_ms, p.accuracy, p.size_bytes / 2**20, frontier=p.frontier) for p in measured]
    return Image("pareto.png", f"{sentence_case(metric)} (onnxruntime) against median latency; marker area grows "
                               "with file size. Filled markers are on the Pareto frontier of accuracy, latency and "
                               "size; hollow ones are dominated.",
                 plots.accuracy_latency_plot(dots, "sweep: accuracy, latency, size", pareto=True,
                                             ylabel=plots.accuracy_label(metric)))


def where_measured(bench: dict[str, Any], data: dict[str, Any], precisions: Sequence[str],
                   metric: str = "top-1") -> Bullets:
    machine = bench["machine"]
    composed = f"; the data is {data['note']}" if data.get("note") else ""
    accuracy = ("not measured: SYNTHETIC data" if data["synthetic"] else
                f"{metric} through onnxruntime on {data['eval_images']} of the {data['test_images_available']} "
                f"{data['dataset']} test images (a random subset, seed {data['seed']}), the same images for every point"
                f"{composed}")
    items = [
        f"**Accuracy**: {accuracy}.",
        f"**Latency**: every file timed in one interleaved onnxruntime run ({bench['config']['provider']}, "
        f"{bench['threads']} thread(s), batch {bench['batch']}, {bench['rounds']} rounds); {bench['inputs']}.",
        f"**Machine**: {machine['cpu_model']}, {machine['physical_cores']} physical cores; onnxruntime "
        f"{machine['onnxruntime_version']}.",
        "**Reused across points**: the dense model was evaluated and exported once (`dense/`); every point "
        "recovered and calibrated on the same training images. Each point's full record is in its `ratio-*/` "
        "directory.",
    ]
    if "int8" in precisions:
        items.append("int8 points exist only where the quantize stage measured int8 faster than fp32 within the "
                     "accuracy budget; otherwise the table says why.")
    return Bullets(tuple(items) + tuple(bench["notes"]))


def build(name: str, points: Sequence, bench: dict[str, Any], data: dict[str, Any],
          precisions: Sequence[str], metric: str = "top-1") -> tuple[str, list[Block]]:
    frontier = [p.name for p in points if p.frontier]
    blocks: list[Block] = [
        Paragraph(f"{len([p for p in points if p.file])} files measured. **Pareto frontier** (nothing else is at "
                  f"least as accurate, as fast and as small): {', '.join(frontier) or 'none'}."),
        Heading("Pareto table"), pareto_table(points, metric),
    ]
    figure = pareto_figure(points, data["synthetic"], metric)
    if figure is not None:
        blocks += [Heading("Pareto plot"), figure]
    blocks += [Heading("Where these numbers come from"), where_measured(bench, data, precisions, metric)]
    return f"shrink sweep: {name}", blocks
