"""The quantize stage: fp32 ONNX file -> the file worth shipping on this machine, and why.

quantize() wires the steps together:
1. check the input file and the calibration / eval data (one-line errors, before any work);
2. pre-process once, then produce each recipe (auto: the search space plus an SQNR-driven recipe);
3. time fp32 and every produced recipe in one interleaved bench run (shrink.bench);
4. measure accuracy through onnxruntime, fastest candidate first, until one is within budget;
5. decide (shrink.quantize.decide), ship the chosen file (int8, or the fp32 input when no int8 is
   faster) with its metadata, and write the decision record next to it.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import onnx

import shrink.quantize.measure as measure
from shrink.bench import BenchConfig, BenchResult, OnnxCandidate, run_bench
from shrink.data.fits import check_fits
from shrink.errors import ShrinkError
from shrink.fileio import check_not_inputs, check_writable, scratch_dir, sha256_file, write_json_atomic
from shrink.onnxio.checks import check_onnx_file
from shrink.onnxio.files import onnx_files
from shrink.onnxio.metadata import set_metadata
from shrink.onnxio.writing import check_onnx_destination, save_model, staged_output
from shrink.ort_session import create_session
from shrink.quantize.calibration import CalibrationConfig, calibration_batches
from shrink.quantize.config import LAYER_SQNR_EXCLUDE_DB, MAX_EXCLUDED_LAYERS, SQNR_IMAGES, QuantizeConfig
from shrink.quantize.decide import accuracy_order, confirm, decide, decide_forced, forced_order
from shrink.quantize.inputs import OnnxInput, check_calibration, load_onnx_input
from shrink.quantize.portability import onnxruntime_only_allowed, operator_domains, runtime_specific
from shrink.quantize.ptq import preprocess, quantize_recipe
from shrink.quantize.recipe import QuantRecipe
from shrink.quantize.result import FP32, Decision, Measured, QuantizeResult
from shrink.quantize.search import search_space, with_excluded
from shrink.quantize.sqnr import analysis_images, layer_sqnr, layers_to_exclude
from shrink.tasks import Task

Progress = Callable[[str], None]
RANDOM_CALIBRATION_FLAG = ("calibrated on SYNTHETIC random data (forced): int8 ranges do not reflect real "
                           "inputs; use real training images before shipping")
SYNTHETIC_EVAL_FLAG = "eval data is SYNTHETIC: accuracy was NOT measured, only latency and fidelity to fp32"
# Short timing of the fp32-vs-int8 profile pass, run only when fp32 ships.
PROFILE_RUNS = 20


def record_path_for(out_path: Path) -> Path:
    """model.int8.onnx -> model.int8.decision.json"""
    return out_path.with_name(out_path.stem + ".decision.json")


def _say(progress: Progress | None, line: str) -> None:
    if progress:
        progress(line)


def _calibration(model: OnnxInput, config: QuantizeConfig, split, needs_data: bool, flags: list[str]):
    if not needs_data:
        return None, {"dataset": None, "images": 0, "note": "dynamic quantization needs no calibration"}
    if split is None:
        raise ShrinkError("static quantization needs calibration data (real training images): pass --data")
    batches = calibration_batches(split, CalibrationConfig(
        num_images=config.calibration_images, seed=config.calibration_seed,
        allow_synthetic=config.force_random_calibration))
    check_calibration(batches, model)
    if split.info.synthetic:
        flags.append(RANDOM_CALIBRATION_FLAG)
    info = {"dataset": split.info.name, "images": sum(len(b) for b in batches), "seed": config.calibration_seed,
            "synthetic": split.info.synthetic}
    return batches, info


def _evaluation(model: OnnxInput, config: QuantizeConfig, split, flags: list[str]) -> tuple[bool, dict]:
    """Whether accuracy can be required, and what the eval data is."""
    if split is None:
        raise ShrinkError("quantize measures accuracy on real eval data: pass --data")
    check_fits(split.info, input_shape=model.image_shape, task=model.task)
    if split.info.synthetic:
        if not config.force_random_calibration:
            raise ShrinkError("eval data is synthetic, so accuracy cannot be measured; use real data, or force "
                              "random data for a latency-only run (--force-random-calibration)")
        flags.append(SYNTHETIC_EVAL_FLAG)
    info = {"dataset": split.info.name, "images": min(len(split), config.eval_limit or len(split)),
            "synthetic": split.info.synthetic}
    return not split.info.synthetic, info


def _produce(recipes, pre: Path, work: Path, model: OnnxInput, batches, progress,
             runtimes: tuple[str, ...] = ()) -> list[Measured]:
    produced = []
    for i, recipe in enumerate(recipes):
        path = work / f"candidate{i}.onnx"
        _say(progress, f"quantizing {recipe.name} ({recipe.why})")
        try:
            quantize_recipe(pre, recipe, path, model.input_name, batches, cache_dir=work)
            create_session(path, "cpu")  # a recipe onnxruntime cannot run is a failed recipe
            check_portable(path, runtimes)
            produced.append(Measured(recipe.name, recipe, str(path)))
        except ShrinkError as exc:
            produced.append(Measured(recipe.name, recipe, None, error=str(exc)))
    return produced


def check_portable(path: Path, runtimes: tuple[str, ...]) -> None:
    """A file with onnxruntime's own operators may ship only when onnxruntime is the only target."""
    specific = runtime_specific(operator_domains(path))
    if specific and not onnxruntime_only_allowed(runtimes):
        raise ShrinkError(f"uses operators only onnxruntime loads ({', '.join(specific[:4])}"
                          f"{' ...' if len(specific) > 4 else ''}); allowed only with quantize.runtimes: "
                          "[onnxruntime] (--runtime onnxruntime)")


def _sqnr_recipe(base: Measured, pre: Path, work: Path, model: OnnxInput, batches, flags: list[str], progress):
    """Per-layer SQNR of the base recipe, and the recipe that keeps its poorest layers in fp32."""
    if not base.path or base.recipe.kind != "static" or base.recipe.quant_format != "qdq":
        return (), None
    _say(progress, "per-layer SQNR of the base recipe")
    try:
        layers = layer_sqnr(pre, Path(base.path), model.input_name, analysis_images(batches, SQNR_IMAGES), work)
    except Exception as exc:  # a debugging aid must not sink the run; the record says it failed
        flags.append(f"per-layer SQNR analysis failed ({type(exc).__name__}: {exc}); no SQNR-driven recipe")
        return (), None
    excluded = layers_to_exclude(layers, LAYER_SQNR_EXCLUDE_DB, MAX_EXCLUDED_LAYERS)
    return layers, (with_excluded(base.recipe, excluded) if excluded else None)


def _bench_config(config: QuantizeConfig, **overrides) -> BenchConfig:
    # shrink bench's method and settings, shorter: the search, its confirmation and the profile all time
    # each candidate alone in fresh worker processes, as the bench stage and `shrink bench` do.
    settings = dict(provider="cpu", threads=config.threads, batch=config.batch, min_runs=config.bench_min_runs,
                    min_seconds=config.bench_seconds, warmup_seconds=config.bench_warmup_seconds, measure_memory=False,
                    max_seconds=config.bench_max_seconds, method="processes", processes=config.bench_processes)
    return BenchConfig(**{**settings, **overrides})  # overrides replace settings (the profile pass)


def _time(fp32: Measured, produced: list[Measured], config: QuantizeConfig, progress):
    """One bench run over fp32 and every produced recipe; fills latency and speedup."""
    ok = [m for m in produced if m.path]
    _say(progress, f"timing fp32 and {len(ok)} int8 candidates, each in its own worker processes")
    bench = run_bench([OnnxCandidate(fp32.path, FP32)] + [OnnxCandidate(m.path, m.name) for m in ok],
                      _bench_config(config), progress=progress)
    by_label = {c.label: c for c in bench.candidates}
    fp32 = dataclasses.replace(fp32, latency_ms=by_label[FP32].latency.p50_ms)
    timed = []
    for m in produced:
        c = by_label.get(m.name) if m.path else None
        if c is None:
            timed.append(m)
            continue
        timed.append(dataclasses.replace(m, latency_ms=c.latency.p50_ms, speedup=c.speedup.ratio,
                                         speedup_ci_low=c.speedup.ci_low, speedup_ci_high=c.speedup.ci_high))
    return fp32, timed, bench


def _measure_accuracy(fp32: Measured, timed: list[Measured], config: QuantizeConfig, split,
                      accuracy_required: bool, progress) -> tuple[Measured, list[Measured]]:
    """Fidelity to fp32 (logits SQNR, top-1 agreement) of every fast candidate, then accuracy in
    decide.accuracy_order, stopping at the first within budget (the one decide() ships) unless
    `measure_all`."""
    fast = forced_order(timed) if config.force_int8 else accuracy_order(timed, config.min_speedup)
    order = [m for m in timed if m.path] if config.measure_all else fast
    if not order:
        return fp32, timed
    updated = {m.name: m for m in timed}
    ref = measure.reference(fp32.path, split, threads=config.threads)
    for m in order:
        fid = measure.fidelity(m.path, ref, threads=config.threads)
        updated[m.name] = dataclasses.replace(m, top1_agreement=fid.top1_agreement, logits_sqnr_db=fid.logits_sqnr_db)
    _say(progress, "fidelity to fp32 on " + f"{len(ref.logits)} eval images: " + ", ".join(
        f"{m.name} {updated[m.name].logits_sqnr_db:.1f} dB" for m in order))
    if not accuracy_required:
        return fp32, [updated[m.name] for m in timed]
    if config.measure_all:
        order = [updated[m.name] for m in order]
    elif config.force_int8:  # the most faithful first, now that the SQNR is known
        order = forced_order([updated[m.name] for m in fast])
    else:  # re-rank now that the SQNR is known
        order = accuracy_order([updated[m.name] for m in fast], config.min_speedup)
    _say(progress, f"measuring fp32 accuracy on {split.info.name}")
    fp32 = dataclasses.replace(fp32, accuracy=measure.accuracy(fp32.path, split, threads=config.threads,
                                                                limit=config.eval_limit))
    for m in order:
        speed = f"{m.speedup:.2f}x" if m.speedup is not None else "not timed"
        _say(progress, f"measuring accuracy of {m.name} ({speed}, {m.logits_sqnr_db:.1f} dB)")
        acc = measure.accuracy(m.path, split, threads=config.threads, limit=config.eval_limit)
        updated[m.name] = dataclasses.replace(updated[m.name], accuracy=acc)
        if not config.measure_all and fp32.accuracy - acc <= config.budget_pt + 1e-9:
            break
    return fp32, [updated[m.name] for m in timed]


def _profile(fp32: Measured, timed: list[Measured], config: QuantizeConfig, progress) -> dict | None:
    """When fp32 ships: ORT profiles of fp32 and the fastest int8, to show why int8 was not faster."""
    candidates = [m for m in timed if m.path and m.speedup is not None]
    if not candidates:
        return None
    fastest = max(candidates, key=lambda m: m.speedup)
    _say(progress, f"profiling fp32 and {fastest.name} to explain the decision")
    bench = run_bench([OnnxCandidate(fp32.path, FP32), OnnxCandidate(fastest.path, fastest.name)],
                      _bench_config(config, profile=True, profile_runs=PROFILE_RUNS, min_runs=10,
                                    min_seconds=min(1.0, config.bench_seconds)))
    return dataclasses.asdict(bench.profile) if bench.profile else None


# The metadata key of the accuracy a shipped file records, in its task's metric.
ACCURACY_KEYS = {Task.CLASSIFICATION: "top1_accuracy", Task.SEGMENTATION: "miou", Task.DETECTION: "map_50_95"}


def _ship_metadata(chosen: Measured, fp32: Measured, reason: str, calibration: dict,
                   bench_machine: dict, threads: int, flags: list[str], task: Task) -> dict[str, str]:
    from shrink import __version__

    meta = {
        "precision": "int8" if chosen.recipe else "fp32",
        "quantization": chosen.recipe.name if chosen.recipe else "none",
        "quantization_decision": reason,
        "quantization_measured_on": f"{bench_machine.get('cpu_model')} ({threads} threads, onnxruntime "
                                    f"{bench_machine.get('onnxruntime_version')})",
        "shrink_version": __version__,
    }
    if chosen.recipe and chosen.recipe.kind == "static":
        meta["calibration"] = (f"{calibration['dataset']}, {calibration['images']} images, seed {calibration['seed']}"
                               + (" (SYNTHETIC random data)" if calibration.get("synthetic") else ""))
    if chosen.accuracy is not None:
        meta[ACCURACY_KEYS[task]] = f"{chosen.accuracy:.2f}"
    if fp32.accuracy is not None:
        meta[f"fp32_{ACCURACY_KEYS[task]}"] = f"{fp32.accuracy:.2f}"
    if flags:
        meta["warnings"] = " | ".join(flags)
    return meta


def _ship(chosen: Measured, model: OnnxInput, meta: dict[str, str], out_path: Path) -> None:
    """Write the chosen file with its metadata, verified, atomically; the input is never touched."""
    proto = onnx.load(chosen.path)
    set_metadata(proto, {**model.metadata, **meta})
    with staged_output(out_path, forbid=onnx_files(model.path)) as staged:
        save_model(proto, staged)
        check_onnx_file(staged)
        create_session(staged, "cpu")


def check_outputs(onnx_path: str | Path, out_path: str | Path) -> Path:
    """Refuse, before minutes of work, an output (the shipped file, its external data, the decision
    record) that would overwrite an input or cannot be written. Returns the record's path."""
    out_path = Path(out_path)
    record_path = record_path_for(out_path)
    inputs = onnx_files(onnx_path)
    check_onnx_destination(out_path, inputs)
    check_not_inputs([record_path], inputs)
    check_writable(record_path)
    return record_path


def fp32_path_for(out_path: str | Path) -> Path:
    """Where quantize exports a plain nn.Module before quantizing it: `NAME.fp32.onnx` beside the output."""
    out_path = Path(out_path)
    return out_path.with_name(f"{out_path.name.removesuffix('.onnx')}.fp32.onnx")


def _export_module(module, out_path: str | Path, eval_split, input_shape, example_input) -> Path:
    """Export a plain nn.Module, verified, to `fp32_path_for(out_path)`: the fp32 baseline."""
    from shrink.export import ExportConfig, export

    fp32_file = fp32_path_for(out_path)
    check_outputs(fp32_file, out_path)  # before the export: the same refusals as for a file
    export(module, ExportConfig(), fp32_file, eval_split=eval_split, input_shape=input_shape,
           example_input=example_input)
    return fp32_file


def _recipes(config: QuantizeConfig, model: OnnxInput) -> tuple[QuantRecipe, ...]:
    return search_space(config.recipe, model.op_types) if config.mode == "auto" else (config.recipe,)


def _candidates(recipes, pre: Path, work: Path, model: OnnxInput, batches, config: QuantizeConfig,
                flags: list[str], progress) -> tuple[list[Measured], tuple]:
    """Every recipe quantized (auto: plus the one the per-layer SQNR suggests), and that analysis."""
    produced = _produce(recipes, pre, work, model, batches, progress, config.runtimes)
    layers: tuple = ()
    if config.mode == "auto" and config.per_layer_sqnr:
        layers, extra = _sqnr_recipe(produced[0], pre, work, model, batches, flags, progress)
        if extra is not None and extra.name not in {m.name for m in produced}:
            produced += _produce([extra], pre, work, model, batches, progress, config.runtimes)
    return produced, layers


def _decide(fp32: Measured, measured: list[Measured], config: QuantizeConfig, accuracy_required: bool,
            flags: list[str], progress) -> tuple[Decision, Measured | None]:
    """The decision, and the chosen int8 file timed against fp32 alone when a joint timing chose it."""
    if config.force_int8:
        decision = decide_forced(fp32, measured, config.budget_pt, accuracy_required)
        if decision.int8:
            flags.append(f"int8 was forced (--force-int8): {decision.shipped} ships although it was not required "
                         "to be faster on this machine; its speed here is in the table, time it on the target")
        return decision, None
    decision = decide(fp32, measured, config.budget_pt, config.min_speedup, accuracy_required)
    if not decision.int8 or sum(1 for m in measured if m.path) <= 1:
        return decision, None
    _say(progress, f"confirming {decision.shipped}: timed against fp32 alone")
    _, (alone,), _ = _time(fp32, [next(m for m in measured if m.name == decision.shipped)], config, progress)
    return confirm(decision, alone, config.min_speedup), alone


@dataclass(frozen=True)
class _Search:
    """What the search measured and decided, before anything ships."""

    fp32: Measured
    measured: tuple[Measured, ...]
    decision: Decision
    confirmation: Measured | None  # the chosen int8 file timed against fp32 alone
    layers: tuple  # per-layer SQNR of the base recipe
    bench: BenchResult  # the joint timing of every candidate
    profile: dict | None  # why int8 was not faster, when fp32 ships

    @property
    def chosen(self) -> Measured:
        return next((m for m in self.measured if m.name == self.decision.shipped), self.fp32)


def _search(model: OnnxInput, config: QuantizeConfig, recipes, batches, eval_split, accuracy_required: bool,
            work: Path, flags: list[str], progress) -> _Search:
    """Pre-process once, produce every recipe, time them, measure accuracy, and decide."""
    pre = preprocess(model.path, work / "preprocessed.onnx")
    produced, layers = _candidates(recipes, pre, work, model, batches, config, flags, progress)
    fp32, timed, bench = _time(Measured(FP32, None, str(model.path)), produced, config, progress)
    fp32, measured = _measure_accuracy(fp32, timed, config, eval_split, accuracy_required, progress)
    decision, alone = _decide(fp32, measured, config, accuracy_required, flags, progress)
    profile = None if decision.int8 else _profile(fp32, measured, config, progress)
    return _Search(fp32, tuple(measured), decision, alone, layers, bench, profile)


def _bench_record(bench: BenchResult) -> dict:
    """What the decision record keeps of the joint timing run."""
    return {"threads": bench.threads, "batch": bench.batch, "rounds": bench.rounds,
            "load_average_1m": list(bench.load_average_1m), "notes": list(bench.notes), "inputs": bench.inputs,
            "method": bench.method, "processes": bench.processes, "caveats": list(bench.caveats)}


def _versions() -> dict[str, str]:
    import onnxruntime

    from shrink import __version__

    return {"shrink": __version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}


def _result(model: OnnxInput, config: QuantizeConfig, out_path: Path, record_path: Path, search: _Search,
            calibration, evaluation: dict, flags: list[str], seconds: float) -> QuantizeResult:
    return QuantizeResult(
        input_path=str(model.path),
        output_path=str(out_path),
        record_path=str(record_path),
        sha256=sha256_file(out_path),
        mode=config.mode,
        config=config.to_dict(),
        fp32=dataclasses.replace(search.fp32, path=str(model.path)),
        candidates=tuple(dataclasses.replace(m, path=None) for m in search.measured),  # temp files are gone
        decision=search.decision,
        calibration=calibration,
        evaluation=evaluation,
        layer_sqnr=tuple(dataclasses.asdict(layer) for layer in search.layers),
        machine=search.bench.machine.to_dict(),
        bench=_bench_record(search.bench),
        profile=search.profile,
        flags=tuple(flags),
        versions=_versions(),
        seconds=seconds,
        confirmation=dataclasses.replace(search.confirmation, path=None) if search.confirmation else None,
    )


def quantize(onnx_path, config: QuantizeConfig, out_path: str | Path, *, calibration_split=None,
             eval_split=None, progress: Progress | None = None, input_shape=None, example_input=None) -> QuantizeResult:
    """Quantize `onnx_path` (fp32) per `config`; write the file worth shipping to `out_path` and the
    decision record next to it (see the module docstring). `onnx_path` may also be a plain
    nn.Module with its `input_shape` (C, H, W) or an `example_input`: it is exported first, verified,
    to `fp32_path_for(out_path)`, which stays as the fp32 baseline."""
    if not isinstance(onnx_path, (str, os.PathLike)):
        onnx_path = _export_module(onnx_path, out_path, eval_split, input_shape, example_input)
    start = time.perf_counter()
    out_path = Path(out_path)
    record_path = check_outputs(onnx_path, out_path)
    model = load_onnx_input(onnx_path)
    flags: list[str] = []
    recipes = _recipes(config, model)
    needs_calibration = any(r.kind == "static" for r in recipes)
    batches, calibration = _calibration(model, config, calibration_split, needs_calibration, flags)
    accuracy_required, evaluation = _evaluation(model, config, eval_split, flags)

    # Candidates are written next to the output (not to /tmp), and removed however the run ends.
    with scratch_dir(out_path.parent, "quantize") as work:
        search = _search(model, config, recipes, batches, eval_split, accuracy_required, work, flags, progress)
        meta = _ship_metadata(search.chosen, search.fp32, search.decision.reason, calibration or {},
                              search.bench.machine.to_dict(), search.bench.threads, flags, model.task)
        _ship(search.chosen, model, meta, out_path)

    result = _result(model, config, out_path, record_path, search, calibration, evaluation, flags,
                     time.perf_counter() - start)
    write_json_atomic(record_path, result.to_dict())
    return result
