"""manifest.json: what a run started from, what it measured, where, and the sha256 of every
artifact. The report is rendered from the same summary, so the two never disagree."""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from shrink.candidates import Candidate
from shrink import __version__
from shrink.bench.caveats import candidate_caveats, pair_caveats, with_caveats
from shrink.bench.process_stats import hierarchical_speedup
from shrink.data.preprocessing import from_metadata
from shrink.fileio import sha256_file
from shrink.quantize.portability import runtime_specific
from shrink.run.gate import GateConfig, gate_warnings
from shrink.run.rundir import RunPaths, StepRecord
from shrink.run.summary import CandidateRow, GateSummary, Int8Speedup, RunSummary, Shipped, StageTime



def _latency(bench: dict[str, Any], name: str) -> tuple[dict | None, dict | None]:
    for c in bench.get("candidates", []):
        if c["label"] == name:
            lat = c["latency"]
            latency = {k: lat[k] for k in ("p50_ms", "p90_ms", "p99_ms", "median_ci_low_ms", "median_ci_high_ms",
                                          "runs", "cv", "noisy")}
            return latency, c.get("speedup")
    return None, None


def _verified(verify: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((f for f in verify["files"] if f["candidate"] == name), None)


def _candidate(name: Candidate, records: dict[str, StepRecord], paths: RunPaths) -> CandidateRow:
    model, plan = records["model"].result, records["prune"].result["plan"]
    dense = name is Candidate.DENSE_FP32
    verified = _verified(records["verify"].result, name)
    if verified is None:  # only the int8 file can be missing: not made, or measured not worth shipping
        return CandidateRow(name.value, None, note=_int8_note(records["quantize"].result))
    latency, speedup = _latency(records["bench"].result, name)
    torch_accuracy = ((model["accuracy_torch"] or {}).get("accuracy") if dense
                      else records["recover"].result["accuracy_after"] if name is Candidate.PRUNED_FP32 else None)
    checked_on = verified.get("checked_on")
    return CandidateRow(
        name=name.value,
        file=_relative(paths.dense_onnx if dense else paths.root / verified["file"], paths.root),
        params=plan["before"]["params"] if dense else plan["after"]["params"],
        macs=plan["before"]["macs"] if dense else plan["after"]["macs"],
        size_bytes=verified["size_bytes"],
        accuracy_torch=torch_accuracy,
        accuracy_onnx=verified["accuracy"],
        latency=latency,
        speedup=speedup,
        caveats=tuple(candidate_caveats(records["bench"].result, name) if latency else ()),
        domains=verified.get("domains"),
        runtime_specific_ops=runtime_specific(verified["domains"]) if verified.get("domains") else None,
        checked_on=None if checked_on is None else tuple(checked_on),
    )


def _int8_note(quantize: dict[str, Any]) -> str:
    if quantize.get("skipped"):
        return "not made: quantize is null in the recipe"
    return f"not shipped: {quantize['reason']}"


def _relative(path: Path, root: Path) -> str:
    return os.path.relpath(path, root)


def _quantization(q: dict[str, Any]) -> dict[str, Any]:
    if q.get("skipped"):
        return {"skipped": True, "reason": q["reason"]}
    candidates = [{k: c.get(k) for k in ("name", "latency_ms", "speedup", "speedup_ci_low", "speedup_ci_high",
                                        "accuracy", "top1_agreement", "logits_sqnr_db", "error")}
                  for c in q["candidates"]]
    return {"skipped": False, "mode": q["mode"], "int8": q["int8"], "shipped": q["shipped"], "reason": q["reason"],
            "fp32": {k: q["fp32"].get(k) for k in ("latency_ms", "accuracy")}, "candidates": candidates,
            "calibration": q["calibration"], "evaluation": q["evaluation"], "flags": q["flags"],
            "threads": q["bench"]["threads"]}


def _pruning(prune: dict[str, Any]) -> dict[str, Any]:
    plan = prune["plan"]
    return {
        "config": plan["config"],
        "plan_hash": prune["plan_hash"],
        "mac_reduction": plan["before"]["macs"] / plan["after"]["macs"],
        "param_reduction": plan["before"]["params"] / plan["after"]["params"],
        "groups": sum(len(s["groups"]) for s in plan["steps"]),
        "left_whole": plan["left_whole"],
        "latency": plan.get("latency"),
        "exactness": {k: prune["exactness"][k] for k in ("kind", "passed", "max_abs_diff", "tolerance",
                                                          "exact_groups", "structural_groups")},
    }


def _recovery(recover: dict[str, Any]) -> dict[str, Any]:
    keys = ("recovered", "accuracy_before", "accuracy_bn_recal", "accuracy_reconstructed", "accuracy_after",
            "bn_recal_images", "epochs_run", "distilled", "train_images", "train_seconds", "config", "selection",
            "selection_images", "shipped_step")
    return {**{k: recover.get(k) for k in keys},
            "reconstruction_images": (recover.get("reconstruction") or {}).get("images")}


def _gate(recovery: dict[str, Any], dense: CandidateRow, shipped: CandidateRow, config: GateConfig,
          synthetic: bool, metric: str) -> GateSummary:
    warnings = gate_warnings(recovery, dense.accuracy_onnx, shipped.accuracy_onnx, shipped.file, config, synthetic,
                             metric)
    return GateSummary(config.max_drop_pt, config.step_tolerance_pt, tuple(warnings))


def _meta_json(meta: dict[str, str], key: str) -> Any:
    """A JSON-valued metadata entry of an exported file (lists and shapes), or None."""
    return json.loads(meta[key]) if key in meta else None


def _preprocessing(export: dict[str, Any]) -> dict[str, Any]:
    """The deployment contract, as the shipped files carry it in their metadata: the record every
    accuracy figure used, and its steps in words (none for synthetic data, which has no images)."""
    meta = export["metadata"]
    record = from_metadata(meta)
    return {"input_name": meta.get("input_name"), "input_shape": _meta_json(meta, "input_shape"),
            "layout": meta.get("input_layout"), "dtype": "float32",
            "record": record.to_dict() if record else None, "steps": record.steps() if record else None}


def _measurement(records: dict[str, StepRecord], data: dict[str, Any]) -> dict[str, Any]:
    bench = records["bench"].result
    verify = records["verify"].result
    providers = sorted({p for f in verify["files"] for p in f["providers"]})
    return {
        "machine": bench["machine"],
        "accuracy": {**data, "torch_device": "cpu", "onnxruntime_providers": providers},
        "latency": {"threads": bench["threads"], "batch": bench["batch"], "provider": bench["config"]["provider"],
                    "inputs": bench["inputs"], "rounds": bench["rounds"], "load_average_1m": bench["load_average_1m"],
                    "warmup_runs": bench["config"]["warmup_runs"], "min_seconds": bench["config"]["min_seconds"],
                    "notes": bench["notes"], "created_utc": bench["created_utc"],
                    "method": bench.get("method", "interleaved"), "processes": bench.get("processes", 1),
                    "spinning": bench["config"].get("spinning", True), "load": bench.get("load"),
                    "caveats": list(bench.get("caveats") or [])},
    }


def _per_process_ms(candidate: dict[str, Any]) -> list[list[float]]:
    """A bench record's samples of one candidate, split back into its worker processes."""
    samples, runs = list(candidate["samples_ms"]), list(candidate.get("process_runs") or [len(candidate["samples_ms"])])
    out, start = [], 0
    for count in runs:
        out.append(samples[start:start + count])
        start += count
    return out


def int8_figures(quantize: dict[str, Any], bench: dict[str, Any]) -> list[dict[str, Any]]:
    """The one pair, pruned fp32 -> shipped int8, as each stage measured it, with its method: the
    quantize search, its confirmation and the bench stage. They should agree within their
    intervals; the report says whether they do."""
    if quantize.get("skipped") or not quantize.get("int8"):
        return []
    config = quantize.get("config", {})
    method = f"worker processes, {config.get('bench_processes', 1)} round(s), {config.get('bench_seconds')} s per file"
    chosen = next((c for c in quantize["candidates"] if c["name"] == quantize["shipped"]), None)
    figures = []
    if chosen and chosen.get("speedup") is not None:
        figures.append({"figure": "quantize search", "method": f"{method}, {len(quantize['candidates']) + 1} files",
                        "ratio": chosen["speedup"], "ci_low": chosen["speedup_ci_low"],
                        "ci_high": chosen["speedup_ci_high"]})
    alone = quantize.get("confirmation")
    if alone and alone.get("speedup") is not None:
        figures.append({"figure": "quantize confirmation", "method": f"{method}, 2 files",
                        "ratio": alone["speedup"], "ci_low": alone["speedup_ci_low"], "ci_high": alone["speedup_ci_high"]})
    by_label = {c["label"]: c for c in bench.get("candidates", [])}
    if Candidate.PRUNED_FP32 in by_label and Candidate.PRUNED_INT8 in by_label:
        s = hierarchical_speedup(_per_process_ms(by_label[Candidate.PRUNED_FP32]),
                                 _per_process_ms(by_label[Candidate.PRUNED_INT8]), Candidate.PRUNED_FP32.value,
                                 seed=bench["config"].get("seed", 0))
        figures.append({"figure": "bench stage", "method": f"worker processes, {bench.get('processes', 1)} round(s), "
                                                           f"{bench['config']['min_seconds']} s per file, 3 files"
                        if bench.get("method") == "processes" else "interleaved in one process, 3 files",
                        "ratio": s.ratio, "ci_low": s.ci_low, "ci_high": s.ci_high})
    return figures


def figures_agree(figures: list[dict[str, Any]]) -> bool | None:
    """Whether every interval overlaps every other (None with fewer than two figures)."""
    if len(figures) < 2:
        return None
    return max(f["ci_low"] for f in figures) <= min(f["ci_high"] for f in figures)


def build_summary(recipe_name: str, records: dict[str, StepRecord], paths: RunPaths, data: dict[str, Any],
                  notes: tuple[str, ...], gate: GateConfig = GateConfig()) -> RunSummary:
    """Everything the report shows, from the step records (no artifact hashes yet)."""
    model = records["model"].result
    shipped_file = records["quantize"].result.get("shipped_file", "model.onnx")
    candidates = tuple(replace(row, shipped=row.file == shipped_file)
                       for row in (_candidate(name, records, paths) for name in Candidate))
    quantize = records["quantize"].result
    recovery = _recovery(records["recover"].result)
    figures = int8_figures(quantize, records["bench"].result)
    summary = RunSummary(
        run={"name": recipe_name, "torch-shrink": __version__, "recipe": "recipe.yaml",
             "created_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")},
        inputs={"model": {"source": model["source"], "files_sha256": model.get("files", {}), "spec": model["spec"],
                          "card_test_accuracy": (model["card"] or {}).get("test_accuracy"),
                          "untrained": bool(model.get("untrained")),
                          "weights": "untrained weights (random init)" if model.get("untrained") else "trained"},
                "data": data},
        preprocessing=_preprocessing(records["export"].result),
        labels=(model["card"] or {}).get("classes") or _meta_json(records["export"].result["metadata"], "classes"),
        shipped=Shipped(shipped_file, bool(quantize.get("int8")), quantize["reason"]),
        candidates=candidates,
        pruning=_pruning(records["prune"].result),
        recovery=recovery,
        quantization=_quantization(quantize),
        int8_speedup=Int8Speedup(tuple(figures), figures_agree(figures)),
        measurement=_measurement(records, data),
        stages=tuple(StageTime(r.step, round(r.seconds, 2), r.finished_utc,
                               None if r.cpu_seconds is None else round(r.cpu_seconds, 2)) for r in records.values()),
        notes=tuple(notes) + tuple(quantize.get("flags") or ()),
    )
    return replace(summary, gate=_gate(recovery, summary.dense, summary.shipped_row, gate, summary.synthetic,
                                       summary.metric))


def artifact_hashes(root: Path, names: list[str]) -> dict[str, dict[str, Any]]:
    """sha256 and size of each artifact that exists, by its path relative to the run directory."""
    out = {}
    for name in names:
        path = root / name
        if path.is_file():
            out[name] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    return out


def summary_lines(summary: RunSummary) -> list[str]:
    """At most four lines for the end of a run, then every warning of the gate (the caller adds the
    report path)."""
    dense, shipped, data = summary.dense, summary.shipped_row, summary.data
    lines = [f"shipped {shipped.file} ({shipped.name}): {summary.pruning['mac_reduction']:.2f}x fewer MACs, "
             f"{dense.size_bytes / 2**20:.1f} MB -> {shipped.size_bytes / 2**20:.1f} MB"]
    if shipped.speedup and dense.latency:
        s = shipped.speedup
        lines.append(with_caveats(
            f"latency p50 {dense.latency['p50_ms']:.2f} ms -> {shipped.latency['p50_ms']:.2f} ms: "
            f"{s['ratio']:.2f}x faster [95% CI {s['ci_low']:.2f}-{s['ci_high']:.2f}] "
            f"({summary.measurement['latency']['threads']} thread(s), batch "
            f"{summary.measurement['latency']['batch']})", pair_caveats(dense.caveats, shipped.caveats)))
    if summary.synthetic:
        lines.append("accuracy not measured: SYNTHETIC data (latency-only run)")
    else:
        drop = shipped.accuracy_onnx - dense.accuracy_onnx
        lines.append(f"{summary.metric} {shipped.accuracy_onnx:.2f}% vs dense {dense.accuracy_onnx:.2f}% ({drop:+.2f} pt) "
                     f"on {data['eval_images']} {data['dataset']} test images (onnxruntime)")
    if not summary.shipped.int8:  # the first clause; the report has the whole reason
        lines.append(f"int8 not shipped: {summary.shipped.reason.split(';')[0]}")
    # The gate's warnings are never cut: they are what must not be missed.
    return lines[:4] + [f"WARNING: {w}" for w in summary.warnings]


def _latency_numbers(row: CandidateRow) -> dict[str, Any] | None:
    lat = row.latency
    return None if not lat else {"p50_ms": lat["p50_ms"], "ci_low_ms": lat["median_ci_low_ms"],
                                 "ci_high_ms": lat["median_ci_high_ms"], "noisy": lat["noisy"]}


def summary_numbers(summary: RunSummary) -> dict[str, Any]:
    """The closing lines as numbers, for `shrink run --json`: the shipped file, its accuracy
    against dense, its latency and speedup with their 95% intervals, and every caveat and warning."""
    dense, shipped, data = summary.dense, summary.shipped_row, summary.data
    speedup = shipped.speedup
    accuracy = None if summary.synthetic else {
        "shipped": shipped.accuracy_onnx, "dense": dense.accuracy_onnx,
        "change_pt": shipped.accuracy_onnx - dense.accuracy_onnx, "images": data["eval_images"],
        "split": data["eval_split"], "runtime": "onnxruntime"}
    dense_latency, shipped_latency = _latency_numbers(dense), _latency_numbers(shipped)
    return {
        "shipped": {"file": shipped.file, "candidate": shipped.name, "int8": summary.shipped.int8,
                    "size_bytes": shipped.size_bytes, "dense_size_bytes": dense.size_bytes},
        "mac_reduction": summary.pruning["mac_reduction"],
        "accuracy": accuracy,
        "latency": {"dense": dense_latency, "shipped": shipped_latency,
                    "threads": summary.measurement["latency"]["threads"],
                    "batch": summary.measurement["latency"]["batch"]},
        "speedup": None if not speedup else {"ratio": speedup["ratio"], "ci_low": speedup["ci_low"],
                                             "ci_high": speedup["ci_high"]},
        "caveats": pair_caveats(dense.caveats, shipped.caveats) if speedup and dense.latency else [],
        "noisy": bool((dense_latency or {}).get("noisy") or (shipped_latency or {}).get("noisy")),
        "synthetic": summary.synthetic,
        "untrained": summary.inputs["model"].get("untrained", False),
        "warnings": list(summary.warnings),
    }
