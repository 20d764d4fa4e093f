"""The report of one run, built from its summary (the manifest without artifact hashes) and the
prune plan's per-layer widths. Every number says where it was measured."""

from __future__ import annotations

import math
from typing import Any, Sequence

from shrink.run.summary import RunSummary
from shrink.bench.caveats import pair_caveats
from shrink.report import plots
from shrink.report.deploy import deploy_section
from shrink.report.document import Block, Bullets, Callout, Heading, Image, Paragraph, Table
from shrink.tasks import Task

WIDTH_KINDS = ("Conv1d", "Conv2d", "Conv3d", "Linear")
SYNTHETIC_BANNER = ("SYNTHETIC DATA: this is a latency-only run. The inputs were random, so no accuracy was "
                    "measured and any int8 calibration reflects no real input distribution.")


# ----------------------------------------------------------------------------- formatting


def pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}%"


def mb(size: int | None) -> str:
    return "—" if size is None else f"{size / 2**20:.2f} MB"


def count(value: int | None, unit: str = "") -> str:
    if value is None:
        return "—"
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.2f} {suffix}{unit}"
    return f"{value} {unit}".strip()


def latency_cell(latency: dict | None) -> str:
    if not latency:
        return "—"
    return f"{latency['p50_ms']:.2f} [{latency['median_ci_low_ms']:.2f}, {latency['median_ci_high_ms']:.2f}]"


def speedup_cell(speedup: dict | None, latency: dict | None) -> str:
    if not latency:
        return "—"
    if not speedup:
        return "1.00× (baseline)"
    return f"{speedup['ratio']:.2f}× [{speedup['ci_low']:.2f}, {speedup['ci_high']:.2f}]"


def sentence_case(metric: str) -> str:
    """'Top-1' at the start of a sentence; mIoU and mAP keep their case."""
    return metric[:1].upper() + metric[1:] if metric == Task.CLASSIFICATION.metric else metric


def margin_pt(accuracy: float | None, images: int) -> float | None:
    """Half-width of the 95% normal interval of a top-1 measured on `images` images, in points."""
    if accuracy is None or images < 1:
        return None
    p = accuracy / 100.0
    return 196.0 * math.sqrt(max(p * (1 - p), 1e-4) / images)


# ----------------------------------------------------------------------------- sections


def headline(summary: RunSummary) -> Paragraph:
    shipped, dense, data = summary.shipped_row, summary.dense, summary.data
    parts = [f"**Shipped: `{shipped.file}`** ({shipped.name})."]
    if shipped.speedup:
        caveats = pair_caveats(dense.caveats, shipped.caveats)
        parts.append(f"Median latency {shipped.latency['p50_ms']:.2f} ms vs {dense.latency['p50_ms']:.2f} ms "
                     f"dense: {shipped.speedup['ratio']:.2f}× faster"
                     + (f" (**caveat: {'; '.join(caveats)}**)." if caveats else "."))
    parts.append(f"{summary.pruning['mac_reduction']:.2f}× fewer MACs, {mb(dense.size_bytes)} → "
                 f"{mb(shipped.size_bytes)}.")
    if not summary.synthetic:
        drop = shipped.accuracy_onnx - dense.accuracy_onnx
        composed = f" ({data['note']})" if data.get("note") else ""
        parts.append(f"{sentence_case(summary.metric)} {pct(shipped.accuracy_onnx)} vs {pct(dense.accuracy_onnx)} dense "
                     f"({drop:+.2f} pt), on {data['eval_images']} of the {data['test_images_available']} "
                     f"{data['dataset']} test images{composed}.")
    return Paragraph(" ".join(parts))


def candidates_table(summary: RunSummary) -> Table:
    rows = []
    for c in summary.candidates:
        name = f"**{c.name}** (shipped)" if c.shipped else c.name
        if c.file is None:  # the note under the table says why
            rows.append((name, "not shipped", "—", "—", "—", "—", "—", "—", "—", "—"))
            continue
        rows.append((name, f"`{c.file}`", count(c.params), count(c.macs), mb(c.size_bytes),
                     pct(c.accuracy_torch), pct(c.accuracy_onnx), latency_cell(c.latency),
                     f"{c.latency['p90_ms']:.2f}" if c.latency else "—", speedup_cell(c.speedup, c.latency)))
    header = ("candidate", "file", "params", "MACs", "file size", f"{summary.metric} PyTorch", f"{summary.metric} onnxruntime",
              "p50 ms [95% CI]", "p90 ms", "speedup vs dense [95% CI]")
    return Table(header, tuple(rows), (False, False) + (True,) * 8)


def candidate_notes(summary: RunSummary) -> list[Block]:
    notes = [f"**{c.name}**: {c.note}" for c in summary.candidates if c.note]
    notes.append("int8 files hold the same channels as pruned fp32: params and MACs are the same, stored in 8 bits. "
                 "PyTorch accuracy is not defined for them (they exist only as ONNX).")
    return [Bullets(tuple(notes))]


def where_measured(summary: RunSummary) -> list[Block]:
    m = summary.measurement
    data, lat, machine = summary.data, m["latency"], m["machine"]
    recovery, quant = summary.recovery, summary.quantization
    items = [_accuracy_source(summary), _latency_source(lat, m["accuracy"]["onnxruntime_providers"]),
             f"**Machine**: {machine['cpu_model']}, {machine['physical_cores']} physical cores / "
             f"{machine['logical_cpus']} logical CPUs, flags {' '.join(machine['cpu_flags']) or '—'}; {machine['os']}; "
             f"Python {machine['python_version']}, torch {machine['torch_version']}, onnxruntime "
             f"{machine['onnxruntime_version']} ({machine['onnxruntime_package']})."]
    if recovery["recovered"]:
        items.append(_recovery_source(recovery, data))
    if not quant["skipped"]:
        cal = quant["calibration"]
        items.append(f"**int8 calibration**: {cal.get('images', 0)} {cal.get('dataset') or ''} training images "
                     f"(seed {cal.get('seed', '—')}){' — SYNTHETIC' if cal.get('synthetic') else ''}; the int8 "
                     f"decision timed every recipe interleaved with fp32 on {quant['threads']} thread(s).")
    return [Heading("Where these numbers come from"), Bullets(tuple(items))]


def _accuracy_source(summary: RunSummary) -> str:
    data = summary.data
    if summary.synthetic:
        return "**Accuracy**: not measured — the data is synthetic (random inputs)."
    dense = summary.dense.accuracy_onnx
    subset = ("the whole test set" if data["eval_images"] == data["test_images_available"] else
              f"a random subset (seed {data['seed']}) of {data['eval_images']} of the {data['test_images_available']} "
              f"test images, not the whole test set")
    card = summary.inputs["model"].get("card_test_accuracy")
    card_note = f" The model card reports {card:.2f}% on the whole test set." if card else ""
    if summary.task is Task.CLASSIFICATION:
        error = (f"at this size a top-1 near {pct(dense)} carries about ±{margin_pt(dense, data['eval_images']):.1f} pt "
                 f"of sampling error (95%), while differences between candidates on the same images are tighter")
    else:  # no binomial interval for a mean over classes or IoU thresholds
        error = (f"{summary.metric} is scored over all {data['eval_images']} images at once, so its sampling error is "
                 f"not estimated here; candidates are compared on the same images")
    composed = f" The data is {data['note']}." if data.get("note") else ""
    return (f"**Accuracy**: {summary.metric} on {data['dataset']}, {subset}; {error}. PyTorch ran on the CPU; "
            f"onnxruntime on {', '.join(summary.measurement['accuracy']['onnxruntime_providers'])}.{card_note}"
            f"{composed}")


def _latency_source(lat: dict[str, Any], providers: list[str]) -> str:
    load = [x for x in lat["load_average_1m"] if x is not None]
    load_text = f"; 1-minute load average {' → '.join(f'{x:.1f}' for x in load)}" if load else ""
    shares = lat.get("load") or {}
    if shares.get("steal_share") is not None:
        load_text += (f"; CPU stolen {shares['steal_share']:.1%}, used by other processes {shares['foreign_share']:.1%} "
                      "during the timing")
    spin = "on (onnxruntime's default)" if lat.get("spinning", True) else "off"
    if lat.get("method") == "processes":
        how = (f"Each candidate ran alone in a worker process of its own, as in a deployment, taking turns "
               f"({lat['rounds']} rounds of blocks, each started once the previous worker's threads were quiet), over "
               f"{lat['processes']} rounds of fresh processes, after {lat['warmup_runs']} warmup runs per process, at "
               f"least {lat['min_seconds']:g} s each in all; the interval is a bootstrap 95% CI of the median over "
               f"processes and runs")
    else:
        how = (f"Candidates were timed interleaved in one process in {lat['rounds']} rounds after "
               f"{lat['warmup_runs']} warmup runs, at least {lat['min_seconds']:g} s each; the interval is a bootstrap "
               "95% CI of the median")
    return (f"**Latency**: onnxruntime, provider {lat['provider']} ({', '.join(providers)}), {lat['threads']} intra-op "
            f"thread(s), batch {lat['batch']}, intra-op spinning {spin}; {lat['inputs']}. {how}{load_text}."
            + (f" **Caveat: {'; '.join(lat['caveats'])}.**" if lat.get("caveats") else ""))


def _recovery_source(recovery: dict[str, Any], data: dict[str, Any]) -> str:
    train = recovery["config"].get("train") or {}
    how = "distillation from the dense model" if recovery["distilled"] else "fine-tuning on labels"
    # The images reconstruction really used (fewer than asked for when the training subset is smaller).
    refit = recovery.get("reconstruction_images") or (recovery["config"] or {}).get("reconstruct_images")
    text = (f"**Recovery**: layer-wise reconstruction (each pruned layer re-fitted to the dense model's outputs, "
            f"no labels) on {refit} training images" if refit
            else f"**Recovery**: BN recalibration on {recovery['bn_recal_images']} training images")
    if recovery["epochs_run"]:
        text += (f", then {how} for {recovery['epochs_run']} epoch(s) on {recovery['train_images']} of the "
                 f"{data['train_images_available']} training images (batch {train.get('batch_size')}, lr "
                 f"{train.get('lr')}, {recovery['train_seconds']:.0f} s)")
    return text + ". A longer schedule recovers more accuracy; this one is bounded to keep the run short."


def accuracy_steps(summary: RunSummary) -> list[Block]:
    if summary.synthetic:
        return []
    rec = summary.recovery
    steps = [("dense (PyTorch)", summary.dense.accuracy_torch),
             ("pruned, before any recovery (PyTorch)", rec["accuracy_before"])]
    if rec.get("accuracy_bn_recal") is not None:
        steps.append(("after BN recalibration (PyTorch)", rec["accuracy_bn_recal"]))
    if rec.get("accuracy_reconstructed") is not None:
        steps.append(("after layer-wise reconstruction (PyTorch)", rec["accuracy_reconstructed"]))
    if rec.get("epochs_run"):
        steps.append((f"after {'distillation' if rec['distilled'] else 'fine-tuning'} (PyTorch)", rec["accuracy_after"]))
    steps += [(f"{c.name}, `{c.file}` (onnxruntime)", c.accuracy_onnx) for c in summary.candidates if c.file]
    return [Heading("Accuracy through the pipeline"),
            Table(("step", summary.metric), tuple((name, pct(acc)) for name, acc in steps), (False, True))]


def pruning_section(summary: RunSummary) -> list[Block]:
    p = summary.pruning
    cfg, ex = p["config"], p["exactness"]
    target = f"ratio {cfg['ratio']}" if cfg.get("ratio") is not None else \
        f"target MACs {cfg['target_macs']}" if cfg.get("target_macs") else \
        f"target params {cfg['target_params']}" if cfg.get("target_params") else f"latency budget {cfg['target_latency']}"
    items = [f"{target}, {cfg['importance']} importance, {cfg['scope']} scope, widths rounded to {cfg['round_to']}; "
             f"{p['groups']} coupled groups pruned; plan hash `{p['plan_hash'][:16]}`.",
             f"{p['mac_reduction']:.2f}× fewer MACs, {p['param_reduction']:.2f}× fewer parameters.",
             f"Exactness check: **{'PASS' if ex['passed'] else 'FAIL'}** ({ex['kind']}; {ex['exact_groups']} groups "
             f"exact" + (f", max |y0 − y1| = {ex['max_abs_diff']:.1e}" if ex.get("max_abs_diff") is not None else "")
             + f", {ex['structural_groups']} structural)."]
    items += [f"left whole: `{n['root']}` — {n['reason']}" for n in p["left_whole"]]
    return [Heading("Pruning"), Bullets(tuple(items))] + latency_budget_section(p.get("latency"))


def latency_budget_section(latency: dict[str, Any] | None) -> list[Block]:
    """Requested against measured latency, round by round of the closed loop."""
    if not latency:
        return []
    key = latency["table_key"]
    requested = latency["requested"]
    asked = f"{requested} ms" if isinstance(requested, str) else f"{requested:g} of the dense latency"
    rows = tuple((str(m["index"]) + (" (shipped)" if m["shipped"] else ""),
                  m["asked"] if isinstance(m["asked"], str) else f"{m['asked']:.3f}",
                  f"{m['predicted_ratio']:.3f}", f"{m['ratio']:.3f} [{m['ratio_ci'][0]:.3f}, {m['ratio_ci'][1]:.3f}]",
                  f"{m['pruned_ms']:.3g} / {m['dense_ms']:.3g}", "yes" if m["within"] else "no")
                 for m in latency["measured"])
    blocks: list[Block] = [Paragraph(
        f"**Latency budget**: requested {asked}, on {key['runtime']} {key['precision']}, {key['threads']} thread(s), "
        f"batch {key['batch']}. Widths were chosen against a latency table measured on this machine, then each plan was "
        "exported and timed against dense (the bench's method); a miss outside [-5%, +2%] rescales the table and plans "
        "again (docs/latency.md in the torch-shrink source).")]
    if rows:
        blocks.append(Table(("round", "asked of the table", "predicted share", "measured share [95% CI]",
                             "pruned / dense ms", "within"), rows, (False, True, True, True, True, False)))
    return blocks


def quantization_section(summary: RunSummary) -> list[Block]:
    q = summary.quantization
    blocks: list[Block] = [Heading("Quantization")]
    if q["skipped"]:
        return blocks + [Paragraph(q["reason"])]
    blocks.append(Paragraph(f"Mode {q['mode']}. Decision: {q['reason']}."))
    rows = [("fp32 (model.onnx)", _ms(q["fp32"]["latency_ms"]), "1.00×", pct(q["fp32"]["accuracy"]), "—", "—", "")]
    for c in q["candidates"]:
        speed = "—" if c["speedup"] is None else \
            f"{c['speedup']:.2f}× [{c['speedup_ci_low']:.2f}, {c['speedup_ci_high']:.2f}]"
        name = f"**{c['name']}**" if c["name"] == q["shipped"] else c["name"]
        rows.append((name, _ms(c["latency_ms"]), speed, pct(c["accuracy"]),
                     "—" if c["top1_agreement"] is None else f"{100 * c['top1_agreement']:.1f}%",
                     "—" if c["logits_sqnr_db"] is None else f"{c['logits_sqnr_db']:.1f}", c["error"] or ""))
    header = ("recipe", "p50 ms", "speedup vs fp32 [95% CI]", summary.metric, "top-1 agreement", "output SQNR dB"
              if summary.task is not Task.CLASSIFICATION else "logits SQNR dB", "error")
    blocks.append(Table(header, tuple(rows), (False, True, True, True, True, True, False)))
    blocks.append(Paragraph("The quantize stage measures fidelity to fp32 and accuracy only where its decision needs "
                            "them (measurably faster recipes, until one is within the accuracy budget; see "
                            "docs/quantize.md in the torch-shrink source); '—' means not measured. Its timings are its own, by the bench's "
                            "method (below)."))
    return blocks + int8_speedup_section(summary)


def int8_speedup_section(summary: RunSummary) -> list[Block]:
    """The one pair, pruned fp32 -> shipped int8, as each stage measured it."""
    figures = summary.int8_speedup.figures if summary.int8_speedup else ()
    if not figures:
        return []
    rows = tuple((f["figure"], f["method"], f"{f['ratio']:.2f}× [{f['ci_low']:.2f}, {f['ci_high']:.2f}]")
                 for f in figures)
    agree = summary.int8_speedup.agree
    verdict = ("Their intervals overlap: one int8 speedup, measured three times." if agree
               else "Their intervals do NOT all overlap: the machine changed between the measurements, or one of them "
                    "is disturbed; trust the bench stage's figure, which is the last and the longest." if agree is False
               else "")
    return [Heading("The int8 speedup, each time it was measured", 3),
            Table(("figure", "method", "int8 vs pruned fp32 [95% CI]"), rows, (False, False, True)),
            Paragraph("The search picks the recipe; the confirmation times the pick against fp32 alone; the bench stage "
                      f"times every shipped file. {verdict}".rstrip())]


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _cpu(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds:.1f}"


def stages_table(summary: RunSummary) -> list[Block]:
    stages = summary.stages
    rows = [(s.name, f"{s.seconds:.1f}", _cpu(s.cpu_seconds), s.finished_utc) for s in stages]
    cpu = [s.cpu_seconds for s in stages]
    rows.append(("total", f"{sum(s.seconds for s in stages):.1f}", _cpu(None if None in cpu else sum(cpu)), ""))
    cores = summary.measurement["machine"]["logical_cpus"]
    return [Heading("Stages"),
            Paragraph(f"How long each stage took when it last ran (a rerun reuses unchanged stages and keeps their "
                      f"times); loading the inputs and writing this report are not included. CPU seconds count every "
                      f"thread of this process: wall time far above CPU seconds / {cores} means other processes "
                      f"were competing for the CPU."),
            Table(("stage", "wall seconds", "CPU seconds", "finished (UTC)"), tuple(rows), (False, True, True, False))]


def notes_section(summary: RunSummary) -> list[Block]:
    notes = list(summary.notes) + list(summary.measurement["latency"]["notes"])
    return [Heading("Notes"), Bullets(tuple(notes))] if notes else []


# ----------------------------------------------------------------------------- plots


def figures(summary: RunSummary, layers: Sequence[dict[str, Any]]) -> list[Image]:
    rows = [c for c in summary.candidates if c.file and c.latency]
    lat = summary.measurement["latency"]
    where = f"{lat['threads']} thread(s), batch {lat['batch']}, {summary.measurement['machine']['cpu_model']}"
    bars = [plots.LatencyBar(c.name, c.latency["p50_ms"], c.latency["p90_ms"],
                             c.latency["median_ci_low_ms"], c.latency["median_ci_high_ms"]) for c in rows]
    out = [Image("latency.png", f"Latency per candidate (onnxruntime, {where}).",
                 plots.latency_plot(bars, f"latency per candidate — {where}"))]
    if not summary.synthetic:
        points = [plots.Point(c.name, c.latency["p50_ms"], c.accuracy_onnx, c.size_bytes / 2**20,
                              shipped=c.shipped) for c in rows]
        what = "Top-1 accuracy" if summary.task is Task.CLASSIFICATION else summary.metric
        out.append(Image("accuracy_latency.png", f"{what} (onnxruntime) against median latency; marker area "
                                                 "grows with file size; the star is the shipped file.",
                         plots.accuracy_latency_plot(points, "accuracy against latency",
                                                     ylabel=plots.accuracy_label(summary.metric))))
    measured = (summary.pruning.get("latency") or {}).get("measured")
    if measured:
        out.append(Image("latency_budget.png", "Latency budget: each closed-loop round's predicted share of dense "
                                               "against the measured one (95% CI); the band is the accepted window.",
                         plots.budget_plot(measured, summary.pruning["latency"]["requested"])))
    widths = [plots.LayerWidth(w["name"], w["before"][1], w["after"][1]) for w in layers if w["kind"] in WIDTH_KINDS]
    if widths:
        out.append(Image("widths.png", "Output channels of every convolution and linear layer, before (grey) and "
                                       "after (blue) pruning.", plots.widths_plot(widths, "per-layer widths")))
    return out


# ----------------------------------------------------------------------------- the document


def build(summary: RunSummary, layers: Sequence[dict[str, Any]], *, draw: bool = True) -> tuple[str, list[Block]]:
    """The title and blocks of the run report (`draw=False` leaves the plots out: text only)."""
    blocks: list[Block] = []
    if summary.synthetic:
        blocks.append(Callout(SYNTHETIC_BANNER))
    for warning in summary.warnings:  # the ship gate: first, not in the notes
        blocks.append(Callout(f"Warning: {warning}."))
    blocks += [headline(summary), Heading("Candidates"), candidates_table(summary), *candidate_notes(summary)]
    blocks += where_measured(summary)
    blocks += accuracy_steps(summary)
    if draw:
        blocks += [Heading("Plots"), *figures(summary, layers)]
    blocks += pruning_section(summary) + quantization_section(summary) + deploy_section(summary)
    blocks += stages_table(summary) + notes_section(summary)
    return f"shrink report: {summary.run['name']}", blocks
