"""The steps of `shrink run`, one function each. A step builder says what the step depends on
(its cache key material), which files it writes, and how to compute it; the computation is a plain
call into a stage package. No step knows about the CLI; the pipeline runs them in order.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from shrink.candidates import Candidate
from shrink.errors import ShrinkError
from shrink.fileio import scratch_dir, sha256_file
from shrink.pruned_files import PLAN_FILE, WEIGHTS_FILE
from shrink.recipe import Recipe
from shrink.run.inputs import RunInputs
from shrink.run.progress import ProgressSplit, Reporter
from shrink.run.rundir import RunPaths, StepRecord
from shrink.tasks import Task

CHECK_BATCH = 2  # example batch for pruning: BN statistics need more than one value per channel
# What a deployer needs from a shipped file's metadata; preprocessing is only known for real data.
REQUIRED_METADATA = ("input_name", "input_shape", "input_layout", "precision")
PREPROCESSING_METADATA = ("preprocessing", "mean", "std", "classes")


@dataclass(frozen=True)
class StepContext:
    recipe: Recipe
    paths: RunPaths
    inputs: RunInputs
    reporter: Reporter

    @property
    def synthetic(self) -> bool:
        return bool(self.inputs.data["synthetic"])

    @property
    def task(self) -> Task:
        return self.inputs.dense.spec.predicts

    @property
    def metric(self) -> str:
        """The name every accuracy figure of this run is printed under: top-1, mIoU or mAP."""
        return self.task.metric

    def eval_split(self, desc: str):
        return ProgressSplit(self.inputs.eval, desc, self.reporter.bars)

    def data_material(self, *uses: str) -> dict[str, Any]:
        """The data settings a step's result depends on: `uses` is "eval" and/or "train", so a
        change to the training subset does not redo the dense baseline, for example."""
        keep = {"name", "dir", "seed", "folder"} | {f"{use}_images" for use in uses}
        if "train" in uses:  # the training subset is drawn from what the selection images leave
            keep.add("select_images")
        return {"data": {k: v for k, v in self.recipe.to_dict()["data"].items() if k in keep}}


@dataclass(frozen=True)
class Step:
    name: str
    what: str  # shown when the step starts
    material: dict[str, Any]  # everything the result depends on (hashed into the cache key)
    outputs: tuple[str, ...]  # files written, relative to the step's directory
    compute: Callable[[], dict[str, Any]]  # does the work, writes the outputs, returns the JSON result
    summary: Callable[[dict[str, Any]], str]  # one line about the result


Done = dict[str, StepRecord]


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}%"


def _measured(evaluation: dict[str, Any] | None, metric: str) -> str:
    if evaluation is None:
        return "accuracy not measured (synthetic data)"
    return f"{metric} {_pct(evaluation['accuracy'])} (PyTorch, {evaluation['total']} images)"


# ----------------------------------------------------------------------------- 1. model


def model_step(ctx: StepContext, done: Done) -> Step:
    from shrink.evaluate import evaluate_torch
    from shrink.export import export

    dense = ctx.inputs.dense

    def compute() -> dict[str, Any]:
        accuracy = None
        if not ctx.synthetic:
            accuracy = evaluate_torch(dense.model, ctx.eval_split("dense, PyTorch"), source=dense.source,
                                      task=ctx.task).to_dict()
            ctx.reporter.say(f"dense fp32 {_measured(accuracy, ctx.metric)}")
        exported = export(dense, ctx.recipe.export, ctx.paths.dense_onnx, eval_split=ctx.eval_split("dense, export check"))
        macs = exported.metadata.get("macs")
        return {
            "source": dense.source,
            "files": ctx.inputs.model_identity["files"],
            "spec": dense.spec.to_dict(),
            "card": dense.card.to_dict() if dense.card else None,
            "untrained": dense.untrained,
            "params": int(exported.metadata["params"]),
            "macs": int(macs) if macs else None,
            "accuracy_torch": accuracy,
            "export": exported.to_dict(),
        }

    return Step(
        name="model",
        what=(f"export the dense baseline {ctx.recipe.model.source} (no accuracy: synthetic data)" if ctx.synthetic
              else f"evaluate {ctx.recipe.model.source} and export the dense baseline"),
        material={"model": ctx.inputs.model_identity, "export": ctx.recipe.export.to_dict(), **ctx.data_material("eval")},
        outputs=("dense.onnx",),
        compute=compute,
        summary=lambda r: f"{r['params'] / 1e6:.2f} M params, {_measured(r['accuracy_torch'], ctx.metric)}; "
                          "dense.onnx verified",
    )


# ----------------------------------------------------------------------------- 2. prune


def prune_step(ctx: StepContext, done: Done) -> Step:
    from shrink.data import BatchOptions
    from shrink.prune.stage import run as prune_stage

    config = ctx.recipe.prune
    dense = ctx.inputs.dense

    def compute() -> dict[str, Any]:
        example = (torch.randn(CHECK_BATCH, *dense.input_shape, generator=torch.Generator().manual_seed(config.seed)),)
        batches = None
        if config.needs_batches:
            batches = ctx.inputs.train.batches(BatchOptions(batch_size=64, shuffle=True, seed=config.seed))
        planner = None
        if config.target_kind == "latency":
            planner = lambda model, example, config: _plan_for_latency(ctx, model, example[0], config, batches)  # noqa: E731
        return prune_stage(dense, config, example=example, batches=batches, planner=planner).to_dict()

    def summary(r: dict[str, Any]) -> str:
        before, after = r["plan"]["before"], r["plan"]["after"]
        verdict = "PASS" if r["exactness"]["passed"] else "FAIL"
        return (f"{before['macs'] / after['macs']:.2f}x fewer MACs, {before['params'] / after['params']:.2f}x fewer "
                f"params; exactness {verdict} ({r['exactness']['kind']})")

    material = {"model": ctx.inputs.model_identity, "prune": config.to_dict()}
    if config.needs_batches:
        material.update(ctx.data_material("train"))
    return Step("prune", f"plan and check the removal of channels ({_target(config)})", material, (), compute, summary)


def _plan_for_latency(ctx, model, example, config, batches):
    """A latency budget: the table on the bench section's runtime and threads (fp32; built once
    and cached), then the closed loop that times each plan against dense."""
    from shrink.bench.layers import TableTarget, build_table
    from shrink.bench.machine import physical_cores
    from shrink.latency_budget import prune_to_latency

    bench = ctx.recipe.bench
    target = TableTarget(runtime=bench.provider, precision="fp32", threads=bench.threads or physical_cores(), batch=bench.batch)
    table = build_table(model, example[:1], target, config, progress=ctx.reporter.say)
    plan, _ = prune_to_latency(model, example, config, table, batches=batches, progress=ctx.reporter.say)
    return plan


def _target(config) -> str:
    if config.target_kind == "latency":
        fraction, ms = config.latency_budget
        budget = f"{fraction:g} of the dense latency" if fraction is not None else f"{ms:g} ms"
        return f"latency budget {budget}, measured; {config.importance} importance"
    if config.target_kind == "ratio":
        return f"{config.ratio:.0%} of the channels, {config.importance} importance"
    return f"target {config.target_kind} {config.target_macs or config.target_params:,.0f}, {config.importance} importance"


# ----------------------------------------------------------------------------- 3. recover


def recover_step(ctx: StepContext, done: Done) -> Step:
    from shrink import prune
    from shrink.evaluate import evaluate_torch
    from shrink.prune.plan import PrunePlan
    from shrink.prune.saving import save_pruned
    from shrink.recover import recover

    config = ctx.recipe.recover
    dense = ctx.inputs.dense
    pruned_record = done["prune"].result

    def compute() -> dict[str, Any]:
        plan = PrunePlan.from_dict(pruned_record["plan"])
        model = prune.apply(dense.model, plan)
        if config is None:
            accuracy = None if ctx.synthetic else evaluate_torch(model, ctx.eval_split("pruned, PyTorch"),
                                                                 task=ctx.task).accuracy
            result = {"recovered": False, "accuracy_before": accuracy, "accuracy_bn_recal": None,
                      "accuracy_after": accuracy}
        else:
            # The training loop draws its own progress bar; the eval split gets ours.
            recovered = recover(model, dense.model, ctx.inputs.train, config,
                                eval_split=ctx.eval_split("pruned, PyTorch"), progress=not ctx.reporter.quiet,
                                plan=plan, dense=dense.model, select_split=ctx.inputs.select,
                                select_tolerance_pt=ctx.recipe.gate.step_tolerance_pt, task=ctx.task)
            model = recovered.model
            result = {"recovered": True, **recovered.to_dict()}
        save_pruned(ctx.paths.root, model, plan, dense.spec, card=dense.card, source=dense.source,
                    source_weights=ctx.recipe.model.weights, verification=pruned_record["exactness"], force=True,
                    inputs=dense.files)
        return {**result, "params": sum(p.numel() for p in model.parameters()),
                "train_images": len(ctx.inputs.train), "eval_images": len(ctx.inputs.eval)}

    def summary(r: dict[str, Any]) -> str:
        if not r["recovered"]:
            accuracy = "accuracy not measured (synthetic data)" if ctx.synthetic else \
                f"{ctx.metric} {_pct(r['accuracy_after'])}"
            return f"no recovery (recover: null); pruned {accuracy}"
        steps = [f"pruned {_pct(r['accuracy_before'])}"]
        if r.get("accuracy_bn_recal") is not None:
            steps.append(f"BN recalibrated {_pct(r['accuracy_bn_recal'])}")
        if r.get("accuracy_reconstructed") is not None:
            steps.append(f"reconstructed {_pct(r['accuracy_reconstructed'])}")
        if r["epochs_run"]:
            how = "distilled" if r["distilled"] else "fine-tuned"
            trained = r.get("accuracy_trained", r["accuracy_after"])
            steps.append(f"{how} {_pct(trained)} ({r['epochs_run']} epoch(s), {r['train_images']} images)")
        line = f"{ctx.metric} " + " -> ".join(steps)
        selection = r.get("selection") or []
        if selection and r.get("shipped_step") != selection[-1]["step"]:
            line += (f"; ships the {r['shipped_step']} weights, the best on {r['selection_images']} held-out "
                     f"training images (test {ctx.metric} {_pct(r['accuracy_after'])})")
        return line

    what = "no recovery (recover: null)" if config is None else _recovery_what(config)
    material = {"model": ctx.inputs.model_identity, "plan_hash": pruned_record["plan_hash"],
                "recover": config.to_dict() if config else None, "select_tolerance_pt": ctx.recipe.gate.step_tolerance_pt,
                **ctx.data_material("train", "eval")}
    return Step("recover", what, material, (PLAN_FILE, WEIGHTS_FILE), compute, summary)


def _recovery_what(config) -> str:
    if config.reconstruct_images:
        parts = [f"layer-wise reconstruction ({config.reconstruct_images} images)"]
    else:
        parts = ["BN recalibration"] if config.bn_recal else []
    if config.train is not None:
        parts.append(f"{'distillation' if config.distill else 'fine-tuning'} for {config.train.epochs} epoch(s)")
    return " + ".join(parts) or "nothing to do"


# ----------------------------------------------------------------------------- 4. export


def export_step(ctx: StepContext, done: Done) -> Step:
    from shrink.export import export
    from shrink.prune.saving import load_pruned

    def compute() -> dict[str, Any]:
        loaded = load_pruned(ctx.paths.root, code=ctx.inputs.dense.code)
        return export(loaded, ctx.recipe.export, ctx.paths.onnx, eval_split=ctx.eval_split("pruned, export check")).to_dict()

    def summary(r: dict[str, Any]) -> str:
        parity = r["parity"]
        agree = ""
        if parity["eval_images"]:
            agree = (f"; top-1 agreement {parity['top1_agree']}/{parity['eval_images']}" if ctx.task is Task.CLASSIFICATION
                     else f"; every output matches on {parity['eval_images']} images")
        return f"model.onnx verified ({r['exporter']}, opset {r['opset']}, {len(r['checks'])} checks{agree})"

    material = {"bundle": done["recover"].outputs, "export": ctx.recipe.export.to_dict(), **ctx.data_material("eval")}
    return Step("export", "export the pruned model to ONNX and check it against PyTorch", material,
                ("model.onnx",), compute, summary)


# ----------------------------------------------------------------------------- 5. quantize


def quantize_step(ctx: StepContext, done: Done) -> Step:
    from shrink.quantize import quantize

    config = ctx.recipe.quantize
    paths = ctx.paths

    def compute() -> dict[str, Any]:
        if config is None:
            paths.int8.unlink(missing_ok=True)  # a stale int8 file from an earlier recipe is not this run's
            return {"skipped": True, "int8": False, "reason": "quantize: null in the recipe; fp32 ships"}
        with scratch_dir(paths.root, "quantize") as work:  # removed however the step ends
            result = quantize(paths.onnx, config, work / paths.int8.name, calibration_split=ctx.inputs.train,
                              eval_split=ctx.eval_split("quantize, accuracy"), progress=ctx.reporter.detail)
            if result.int8:
                os.replace(work / paths.int8.name, paths.int8)
            else:
                paths.int8.unlink(missing_ok=True)
        return {"skipped": False, **result.to_dict(), "shipped_file": paths.int8.name if result.int8 else paths.onnx.name}

    def summary(r: dict[str, Any]) -> str:
        return r["reason"] if r.get("skipped") else f"ships {r['shipped_file']}: {r['reason']}"

    material = {"model.onnx": done["export"].outputs["model.onnx"],
                "quantize": config.to_dict() if config else None, **ctx.data_material("train", "eval")}
    what = "no int8 (quantize: null)" if config is None else f"int8 post-training quantization ({config.mode} mode)"
    return Step("quantize", what, material, ("model.int8.onnx",), compute, summary)


# ----------------------------------------------------------------------------- 6. verify


def shipped_files(ctx: StepContext, done: Done) -> list[tuple[str, Path, str]]:
    """(candidate name, path, sha256 recorded by the step that wrote it) for every ONNX file."""
    files = [(Candidate.DENSE_FP32.value, ctx.paths.dense_onnx, done["model"].outputs["dense.onnx"]),
             (Candidate.PRUNED_FP32.value, ctx.paths.onnx, done["export"].outputs["model.onnx"])]
    if "model.int8.onnx" in done["quantize"].outputs:
        files.append((Candidate.PRUNED_INT8.value, ctx.paths.int8, done["quantize"].outputs["model.int8.onnx"]))
    return files


def verify_step(ctx: StepContext, done: Done) -> Step:
    files = shipped_files(ctx, done)

    def compute() -> dict[str, Any]:
        return {"files": [_verify_file(ctx, name, path, digest) for name, path, digest in files],
                "synthetic": ctx.synthetic}

    def summary(r: dict[str, Any]) -> str:
        parts = [f"{f['candidate']} {_pct(f['accuracy'])}" for f in r["files"]]
        return (f"onnxruntime {ctx.metric}: " + ", ".join(parts)) if not r["synthetic"] else \
            f"{len(r['files'])} files load and run (accuracy not measured: synthetic data)"

    material = {"files": {path.name: digest for _, path, digest in files}, **ctx.data_material("eval")}
    return Step("verify", "load every ONNX file, check its metadata and measure its accuracy (onnxruntime)",
                material, (), compute, summary)


def _verify_file(ctx: StepContext, name: str, path: Path, digest: str) -> dict[str, Any]:
    import onnx
    import onnxruntime

    from shrink.evaluate import evaluate_onnx
    from shrink.export import read_metadata
    from shrink.ort_session import create_session
    from shrink.quantize.portability import operator_domains

    if sha256_file(path) != digest:
        raise ShrinkError(f"{path} changed since it was written (sha256 differs); rerun to rebuild it")
    session = create_session(path, "cpu")
    proto = onnx.load(str(path), load_external_data=False)  # read once: metadata and operators
    metadata = read_metadata(proto)
    required = REQUIRED_METADATA + (() if ctx.synthetic else PREPROCESSING_METADATA)
    missing = [key for key in required if key not in metadata]
    if missing:
        raise ShrinkError(f"{path.name} lacks the metadata a deployer needs: {', '.join(missing)}")
    accuracy = None
    if not ctx.synthetic:
        result = evaluate_onnx(session, ctx.eval_split(f"{name}, onnxruntime"))
        accuracy = result.accuracy
        ctx.reporter.say(f"{name}: {path.name} {ctx.metric} {_pct(accuracy)} via {result.runtime}")
    return {"candidate": name, "file": path.name, "sha256": digest, "providers": list(session.get_providers()),
            "accuracy": accuracy, "metadata": metadata, "size_bytes": path.stat().st_size,
            "domains": operator_domains(proto),
            "checked_on": [f"onnxruntime {onnxruntime.__version__} ({session.get_providers()[0]})"]}


# ----------------------------------------------------------------------------- 7. bench


def bench_step(ctx: StepContext, done: Done) -> Step:
    from shrink.bench import OnnxCandidate, run_bench

    files = shipped_files(ctx, done)
    config = ctx.recipe.bench

    def compute() -> dict[str, Any]:
        candidates = [OnnxCandidate(str(path), name) for name, path, _ in files]
        return run_bench(candidates, config, progress=ctx.reporter.detail).to_dict()

    def summary(r: dict[str, Any]) -> str:
        parts = [f"{c['label']} {c['latency']['p50_ms']:.2f} ms" for c in r["candidates"]]
        return f"p50 at batch {r['batch']}, {r['threads']} thread(s): " + ", ".join(parts)

    material = {"files": {path.name: digest for _, path, digest in files}, "bench": config.to_dict()}
    return Step("bench", f"time the candidates interleaved ({config.provider}, batch {config.batch})",
                material, (), compute, summary)


# ----------------------------------------------------------------------------- 8. report


REPORT_FILES = ("report.md", "report.html", "latency.png", "accuracy_latency.png", "widths.png", "manifest.json")


def report_step(ctx: StepContext, done: Done) -> Step:
    from shrink.fileio import write_json_atomic
    from shrink.report import run_report, write_report
    from shrink.run.manifest import artifact_hashes, build_summary, summary_lines, summary_numbers

    paths = ctx.paths

    def compute() -> dict[str, Any]:
        summary = build_summary(ctx.recipe.name, done, paths, ctx.inputs.data, ctx.inputs.notes, ctx.recipe.gate)
        title, blocks = run_report.build(summary, done["prune"].result["plan"]["layers"])
        for stale in REPORT_FILES:  # a plot this run does not draw must not survive from an earlier one
            (paths.root / stale).unlink(missing_ok=True)
        files = write_report(paths.root, "report", title, blocks)
        artifacts = ["recipe.yaml", PLAN_FILE, WEIGHTS_FILE, os.path.relpath(paths.dense_onnx, paths.root),
                     "model.onnx", "model.int8.onnx", *files]
        write_json_atomic(paths.manifest, {**summary.to_dict(), "artifacts": artifact_hashes(paths.root, artifacts)})
        return {"files": [*files, "manifest.json"], "summary": summary_lines(summary),
                "numbers": summary_numbers(summary), "gate_warnings": list(summary.warnings)}

    # finished_utc too: a stage recomputed on the same inputs (its record deleted) has new numbers.
    material = {"recipe.yaml": sha256_file(paths.recipe), "notes": list(ctx.inputs.notes), "gate": ctx.recipe.gate.to_dict(),
                "steps": {name: [r.key, r.outputs, r.finished_utc] for name, r in done.items()}}
    return Step("report", "write report.md, report.html, plots and manifest.json", material, REPORT_FILES, compute,
                lambda r: ", ".join(r["files"]))


STEPS: dict[str, Callable[[StepContext, Done], Step]] = {
    "model": model_step,
    "prune": prune_step,
    "recover": recover_step,
    "export": export_step,
    "quantize": quantize_step,
    "verify": verify_step,
    "bench": bench_step,
    "report": report_step,
}
