"""int8 vs fp32 on the onnxruntime CPU EP: naive defaults and the auto-mode choice, side by side.

For each model: export fp32 ONNX (shrink.export), quantize it with the naive defaults (static QDQ,
u8 activations, s8 per-channel weights, MinMax; the design brief's baseline) and with
`shrink quantize --auto` at each thread count, then time fp32, naive int8 and the auto choice in one
shrink.bench run (batch 1 by default; its default method). The auto choice is re-timed here, apart from the
run that chose it, so its figure carries no winner's-curse bias. For the Fashion-MNIST reference it
also measures top-1 of all three on the whole test split through onnxruntime.

Models: fmnist_resnet18 (the shipped reference: real weights, real calibration and eval data),
resnet18 and resnet50 (torchvision, random weights, 224x224: latency only, calibrated on random
data, which every table flags).

    python benchmarks/int8_cpu.py                                  # this machine, its physical cores
    python benchmarks/int8_cpu.py --threads 1 4 --data-dir DIR     # e.g. the GPU machine's Xeon

Writes OUT/int8_cpu.md (the Markdown fragment for docs/benchmarks.md), OUT/results.json and the
decision records of every auto run; prints the fragment.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script from anywhere, without installing the package
    sys.path.insert(0, str(REPO_ROOT))

from shrink.bench import BenchConfig, OnnxCandidate, run_bench  # noqa: E402
from shrink.bench.machine import format_machine, physical_cores  # noqa: E402
from shrink.data import load_data  # noqa: E402
from shrink.export import ExportConfig, export  # noqa: E402
from shrink.fileio import write_json_atomic, write_text_atomic  # noqa: E402
from shrink.load import load_model  # noqa: E402
from shrink.quantize import QuantizeConfig, QuantRecipe, quantize  # noqa: E402
from shrink.quantize.calibration import CalibrationConfig, calibration_batches  # noqa: E402
from shrink.quantize.config import DEFAULT_BUDGET_PT  # noqa: E402
from shrink.quantize.measure import accuracy  # noqa: E402
from shrink.quantize.ptq import preprocess, quantize_recipe  # noqa: E402


@dataclass(frozen=True)
class Case:
    model: str  # what shrink.models.load_model takes
    data: str  # calibration and eval data
    real_data: bool


CASES = {
    "fmnist_resnet18": Case("fmnist_resnet18", "fmnist", True),
    "resnet18": Case("tv:resnet18", "synthetic:3x224x224", False),
    "resnet50": Case("tv:resnet50", "synthetic:3x224x224", False),
}
NAIVE = QuantRecipe()  # static QDQ, u8 activations, s8 per-channel weights, MinMax


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=list(CASES), choices=CASES)
    p.add_argument("--threads", nargs="+", type=int, default=None, help="default: the physical cores")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--bench-seconds", type=float, default=10.0, help="measured seconds per candidate, side by side")
    p.add_argument("--min-runs", type=int, default=50)
    p.add_argument("--search-seconds", type=float, default=5.0, help="measured seconds per candidate in auto mode")
    p.add_argument("--random-calibration-images", type=int, default=64,
                   help="calibration images for the random-weight models (random data: latency only)")
    p.add_argument("--budget", type=float, default=DEFAULT_BUDGET_PT,
                   help=f"auto mode's top-1 budget in points below fp32 (default {DEFAULT_BUDGET_PT:g}, as `shrink quantize`)")
    p.add_argument("--eval-limit", type=int, default=None, help="Fashion-MNIST test images (default: all 10000)")
    p.add_argument("--export-eval-limit", type=int, default=1000, help="images for the export's top-1 agreement check")
    p.add_argument("--data-dir", help="directory with the Fashion-MNIST IDX files")
    p.add_argument("--out", type=Path, default=Path("runs/int8_cpu"))
    return p.parse_args(argv)


def say(line: str) -> None:
    print(f"int8_cpu: {line}", file=sys.stderr, flush=True)


def splits(case: Case, args):
    train = load_data(case.data, "train", data_dir=args.data_dir)
    test = load_data(case.data, "test", data_dir=args.data_dir)
    return train, test


def export_fp32(name: str, case: Case, test, args) -> Path:
    out = args.out / "onnx" / f"{name}.onnx"
    loaded = load_model(case.model)
    config = ExportConfig(eval_limit=args.export_eval_limit)
    export(loaded, config, out, eval_split=test if case.real_data else None)
    return out


def naive_int8(name: str, fp32: Path, case: Case, train, args) -> Path:
    """The naive recipe, always quantized (no decision): the baseline the issue compares against."""
    out = args.out / "onnx" / f"{name}.naive-int8.onnx"
    work = args.out / "work" / name
    work.mkdir(parents=True, exist_ok=True)
    images = 512 if case.real_data else args.random_calibration_images
    batches = calibration_batches(train, CalibrationConfig(num_images=images, allow_synthetic=not case.real_data))
    pre = preprocess(fp32, work / "preprocessed.onnx")
    return quantize_recipe(pre, NAIVE, out, "input", batches)


def auto_int8(name: str, fp32: Path, case: Case, train, test, threads: int, args):
    out = args.out / "onnx" / f"{name}.auto-t{threads}.onnx"
    config = QuantizeConfig(
        mode="auto",
        threads=threads,
        batch=args.batch,
        bench_seconds=args.search_seconds,
        calibration_images=512 if case.real_data else args.random_calibration_images,
        force_random_calibration=not case.real_data,
        eval_limit=args.eval_limit,
        budget_pt=args.budget,
    )
    return quantize(fp32, config, out, calibration_split=train, eval_split=test,
                    progress=lambda line: say(f"{name} auto t{threads}: {line}"))


def side_by_side(fp32: Path, naive: Path, auto: Path, threads: int, args) -> dict:
    config = BenchConfig(provider="cpu", threads=threads, batch=args.batch, min_runs=args.min_runs,
                         min_seconds=args.bench_seconds, measure_memory=False)
    candidates = [OnnxCandidate(str(fp32), "fp32"), OnnxCandidate(str(naive), "naive int8"),
                  OnnxCandidate(str(auto), "auto")]
    return run_bench(candidates, config, progress=lambda line: say(f"bench t{threads}: {line}")).to_dict()


def latency_row(name: str, case: Case, threads: int, bench: dict, auto_result) -> str:
    fp32, naive, auto = bench["candidates"]

    def speed(c: dict) -> str:
        s = c["speedup"]
        return f"{c['latency']['p50_ms']:.2f} | {s['ratio']:.2f}× [{s['ci_low']:.2f}, {s['ci_high']:.2f}]"

    noisy = any(c["latency"]["noisy"] for c in bench["candidates"])
    load = max((x for x in bench["load_average_1m"] if x is not None), default=None)
    data = "fmnist 1x28x28" if case.real_data else "random weights, 3x224x224"
    return (f"| {name} ({data}) | {threads} | {fp32['latency']['p50_ms']:.2f} | {speed(naive)} | "
            f"{auto_result.shipped} | {speed(auto)} | {'yes' if noisy else 'no'} | "
            f"{'-' if load is None else f'{load:.1f}'} |")


def profile_lines(profile: dict | None) -> list[str]:
    """When auto mode shipped fp32: where the time went, per candidate (ORT profiler)."""
    lines = []
    for cand in (profile or {}).get("candidates", []):
        top = ", ".join(f"{r['op_type']} ×{r['nodes']} {r['ms_per_run']:.2f} ms" for r in cand["op_types"][:5])
        lines.append(f"  - profile of {cand['label']}: {cand['kernel_ms_per_run']:.2f} ms/run in kernels; {top}")
        lines += [f"    - {flag}" for flag in cand["flags"]]
    return lines


def accuracy_table(name: str, fp32: Path, naive: Path, result, test, threads: int, args) -> list[str]:
    """top-1 of fp32, naive int8 and the auto choice (reusing what the auto run already measured)."""
    def measured(path: Path) -> float:
        return accuracy(path, test, threads=threads, limit=args.eval_limit)

    chosen = next((c for c in result.candidates if c.name == result.shipped), None)
    values = {
        "fp32": result.fp32.accuracy if result.fp32.accuracy is not None else measured(fp32),
        "naive int8": measured(naive),
        f"auto ({result.shipped})": (chosen.accuracy if chosen and chosen.accuracy is not None
                                     else measured(Path(result.output_path))),
    }
    base = values["fp32"]
    return [f"| {name} | {label} | {value:.2f} | {'' if label == 'fp32' else f'{value - base:+.2f} pt'} |"
            for label, value in values.items()]


def report(command: str, rows: list[str], accuracy_rows: list[str], decisions: list[str], machine: dict,
           args) -> str:
    lines = [
        "## int8 vs fp32, onnxruntime CPU EP (static post-training quantization)",
        "",
        f"Command: `{command}`",
        "",
        f"Batch {args.batch}. fp32, naive int8 and the auto choice timed in one shrink.bench run (its default method) per "
        f"thread count (≥ {args.min_runs} runs and ≥ {args.bench_seconds:g} s each, after warmup); speedup = ratio "
        "of median latencies, with its 95% bootstrap interval. *naive int8*: static QDQ, u8 activations, s8 "
        "per-channel weights, MinMax calibration. *auto*: what `shrink quantize --auto` shipped after its own "
        f"search on this machine at this thread count, with an accuracy budget of {args.budget:g} pt (re-timed here). noisy: a CV above 10%. load: the 1-minute "
        "load average around the timing (above the logical CPU count means other processes competed).",
        "",
        "| model | threads | fp32 p50 ms | naive int8 p50 ms | naive speedup [95% CI] | auto shipped | "
        "auto p50 ms | auto speedup [95% CI] | noisy | load |",
        "|---|---:|---:|---:|---:|---|---:|---:|---|---:|",
        *rows,
        "",
        "The random-weight models are calibrated on random data (forced, flagged in their decision records): "
        "their rows measure latency only.",
        "",
    ]
    if accuracy_rows:
        lines += [
            "Fashion-MNIST reference, top-1 through onnxruntime on the test split "
            f"({'all 10000 images' if args.eval_limit is None else f'first {args.eval_limit} images'}), calibrated "
            "on 512 training images (seed 0):",
            "",
            "| model | file | top-1 % | vs fp32 |",
            "|---|---|---:|---:|",
            *accuracy_rows,
            "",
        ]
    lines += ["Auto-mode decisions:", "", *decisions, "", "Machine:", "", "```", format_machine(machine), "```", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    typed = argv if argv is not None else sys.argv[1:]
    command = " ".join(["python benchmarks/int8_cpu.py", *(shlex.quote(a) for a in typed)])
    threads = args.threads or [physical_cores()]
    rows, accuracy_rows, decisions, raw, machine = [], [], [], {}, None
    for name in args.models:
        start = time.perf_counter()
        case = CASES[name]
        train, test = splits(case, args)
        say(f"{name}: export")
        fp32 = export_fp32(name, case, test, args)
        say(f"{name}: naive int8")
        naive = naive_int8(name, fp32, case, train, args)
        for count in threads:
            say(f"{name}: auto mode at {count} thread(s)")
            result = auto_int8(name, fp32, case, train, test, count, args)
            decisions.append(f"- {name}, {count} thread(s): shipped {result.shipped} — {result.reason}")
            decisions += profile_lines(result.profile)
            bench = side_by_side(fp32, naive, Path(result.output_path), count, args)
            machine = machine or bench["machine"]
            rows.append(latency_row(name, case, count, bench, result))
            raw[f"{name}-t{count}"] = {"bench": bench, "auto": result.to_dict()}
            if case.real_data and count == threads[0]:
                say(f"{name}: top-1 on the test split")
                accuracy_rows += accuracy_table(name, fp32, naive, result, test, count, args)
        # Written after every model, so a run cut short still leaves its tables.
        write_text_atomic(args.out / "int8_cpu.md", report(command, rows, accuracy_rows, decisions, machine, args))
        write_json_atomic(args.out / "results.json", raw)
        say(f"{name}: done in {time.perf_counter() - start:.0f} s")
    print(report(command, rows, accuracy_rows, decisions, machine, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
