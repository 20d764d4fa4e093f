"""GPU speedup of pruned over dense torchvision models, measured with `shrink bench`.

Settings (the GPU rows of the bench issue's anchor table), dense vs pruned in each:
- ort-fp16-b64            ORT CUDA EP, fp16 ONNX, batch 64, IO binding
- ort-fp16-b1             ORT CUDA EP, fp16 ONNX, batch 1, IO binding (launch-bound)
- ort-fp16-b1-cudagraph   the same with CUDA graphs
- torch-fp16-b64-cudagraph  PyTorch fp16, batch 64, CUDA graphs
- torch-fp16-b64-eager    (not run by default) PyTorch fp16, batch 64, eager

The fp16 ONNX files are exported from the fp16 PyTorch models on the GPU. Without onnxruntime-gpu
(no CUDAExecutionProvider) the ORT rows are skipped with a note and the PyTorch rows still run.
Models, pruning and the MAC count come from bench_zoo.py (torch-pruning directly, random weights).

    PYTHONPATH=. python benchmarks/gpu.py --models resnet50 mobilenet_v2 --out runs/bench_gpu
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench_zoo import INPUT_SIZE, ZOO, export_onnx, mac_table, machine_lines, zoo_entry  # also puts the repo root on sys.path

import torch

from shrink.bench import BenchConfig, OnnxCandidate, TorchCandidate, run_bench
from shrink.bench.machine import capture_machine
from shrink.bench.output import write_outputs
from shrink.fileio import write_text_atomic


@dataclass(frozen=True)
class Setting:
    name: str
    runtime: str  # ort | torch
    batch: int
    cuda_graphs: bool


SETTINGS = {
    s.name: s
    for s in (
        Setting("ort-fp16-b64", "ort", 64, False),
        Setting("ort-fp16-b1", "ort", 1, False),
        Setting("ort-fp16-b1-cudagraph", "ort", 1, True),
        Setting("torch-fp16-b64-cudagraph", "torch", 64, True),
        Setting("torch-fp16-b64-eager", "torch", 64, False),
    )
}
DEFAULT_SETTINGS = ("ort-fp16-b64", "ort-fp16-b1", "ort-fp16-b1-cudagraph", "torch-fp16-b64-cudagraph")


@dataclass(frozen=True)
class Row:
    model: str
    setting: str
    mac_reduction: float
    dense_p50_ms: float | None = None
    pruned_p50_ms: float | None = None
    speedup: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    dense_per_s: float | None = None
    pruned_per_s: float | None = None
    noisy: bool = False
    error: str | None = None


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(ZOO), choices=ZOO)
    parser.add_argument("--settings", nargs="+", default=list(DEFAULT_SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--ratio", type=float, default=0.5)
    parser.add_argument("--round-to", type=int, default=8)
    parser.add_argument("--channels-last", action="store_true", help="PyTorch rows: channels_last")
    parser.add_argument("--warmup-runs", type=int, default=10)
    parser.add_argument("--warmup-seconds", type=float, default=1.0)
    parser.add_argument("--min-runs", type=int, default=50)
    parser.add_argument("--min-seconds", type=float, default=2.0)
    parser.add_argument("--memory", action="store_true", help="device memory per ONNX candidate (a process each)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench_gpu"))
    parser.add_argument("--onnx-dir", type=Path, default=None, help="where the ONNX files go (default: OUT/onnx)")
    return parser.parse_args(argv)


def ort_cuda_available() -> tuple[bool, str]:
    try:
        import onnxruntime as ort
    except ImportError:
        return False, "onnxruntime is not installed"
    providers = ort.get_available_providers()
    if "CUDAExecutionProvider" in providers:
        return True, f"onnxruntime {ort.__version__} with {', '.join(providers)}"
    return False, (
        f"onnxruntime {ort.__version__} has no CUDAExecutionProvider (available: {', '.join(providers)}); "
        "install onnxruntime-gpu for the ORT rows"
    )


def config_for(setting: Setting, args: argparse.Namespace) -> BenchConfig:
    return BenchConfig(
        provider="cuda",
        batch=setting.batch,
        cuda_graphs=setting.cuda_graphs,
        torch_dtype="fp16",
        channels_last=args.channels_last,
        warmup_runs=args.warmup_runs,
        warmup_seconds=args.warmup_seconds,
        min_runs=args.min_runs,
        min_seconds=args.min_seconds,
        measure_memory=args.memory and setting.runtime == "ort",
    )


def candidates_for(setting: Setting, entry, onnx_paths: tuple[Path, Path] | None) -> list:
    if setting.runtime == "ort":
        dense, pruned = onnx_paths
        return [OnnxCandidate(str(dense), "dense"), OnnxCandidate(str(pruned), "pruned")]
    shape = (3, INPUT_SIZE, INPUT_SIZE)
    return [
        TorchCandidate(module=entry.dense, input_shape=shape, name="dense"),
        TorchCandidate(module=entry.pruned, input_shape=shape, name="pruned"),
    ]


def row_from(model: str, setting: str, mac_reduction: float, result: dict) -> Row:
    dense, pruned = result["candidates"]
    return Row(
        model=model,
        setting=setting,
        mac_reduction=mac_reduction,
        dense_p50_ms=dense["latency"]["p50_ms"],
        pruned_p50_ms=pruned["latency"]["p50_ms"],
        speedup=pruned["speedup"]["ratio"],
        ci_low=pruned["speedup"]["ci_low"],
        ci_high=pruned["speedup"]["ci_high"],
        dense_per_s=dense["latency"]["throughput_per_s"],
        pruned_per_s=pruned["latency"]["throughput_per_s"],
        noisy=dense["latency"]["noisy"] or pruned["latency"]["noisy"],
    )


def speedup_table(rows: list[Row]) -> str:
    lines = [
        "| model | setting | MAC reduction | dense p50 ms | pruned p50 ms | dense img/s | pruned img/s "
        "| speedup [95% CI] | ratio = speedup / MAC reduction | noisy |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        if r.error:
            lines.append(f"| {r.model} | {r.setting} | {r.mac_reduction:.2f}× | n/a | n/a | | | n/a: {r.error} | | |")
            continue
        lines.append(
            f"| {r.model} | {r.setting} | {r.mac_reduction:.2f}× | {r.dense_p50_ms:.3f} | {r.pruned_p50_ms:.3f} "
            f"| {r.dense_per_s:.0f} | {r.pruned_per_s:.0f} | {r.speedup:.2f}× [{r.ci_low:.2f}, {r.ci_high:.2f}] "
            f"| {r.speedup / r.mac_reduction:.2f} | {'yes' if r.noisy else 'no'} |"
        )
    return "\n".join(lines)


def failed_row(entry, setting: Setting, exc: BaseException) -> Row:
    first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
    print(f"{entry.name} {setting.name}: failed: {first_line}", file=sys.stderr)
    return Row(entry.name, setting.name, entry.mac_reduction, error=first_line.replace("|", "/"))


def run_setting(setting: Setting, entry, onnx_paths, args) -> Row:
    progress = lambda line: print(f"  bench: {line}", file=sys.stderr, flush=True)  # noqa: E731
    try:
        result = run_bench(candidates_for(setting, entry, onnx_paths), config_for(setting, args), progress=progress)
    except Exception as exc:  # noqa: BLE001  one failing row must not lose the others; the table says why
        return failed_row(entry, setting, exc)
    record = result.to_dict()
    write_outputs(record, args.out / f"{entry.name}-{setting.name}")
    return row_from(entry.name, setting.name, entry.mac_reduction, record)


def report(command: str, entries, rows: list[Row], notes: list[str], machine: dict, args: argparse.Namespace) -> str:
    return "\n".join(
        [
            f"## GPU: pruned vs dense (torch-pruning, uniform ratio {args.ratio}, L2, round_to {args.round_to})",
            "",
            f"Command: `{command}`",
            "",
            f"warmup ≥ {args.warmup_runs} runs and ≥ {args.warmup_seconds:g} s; measured ≥ {args.min_runs} runs and "
            f"≥ {args.min_seconds:g} s per candidate, dense and pruned timed by shrink bench's default method (in-memory PyTorch modules: interleaved in one process); fp16; random weights and "
            "synthetic inputs (latency only); ORT rows use IO binding (inputs and outputs on the GPU). "
            f"PyTorch rows: {'channels_last' if args.channels_last else 'contiguous (NCHW)'}.",
            "",
            speedup_table(rows),
            "",
            *[f"- {note}" for note in notes],
            "",
            mac_table(entries),
            "",
            *machine_lines(machine),
            "",
        ]
    )


def export_fp16_pair(entry, onnx_dir: Path) -> tuple[Path, Path]:
    """fp16 ONNX files exported from the fp16 PyTorch models, on the GPU."""
    return tuple(
        export_onnx(model, onnx_dir / f"{entry.name}-{kind}-fp16.onnx", device="cuda", dtype=torch.float16)
        for kind, model in (("dense", entry.dense), ("pruned", entry.pruned))
    )


def main(argv=None) -> int:
    args = parse_args(argv)
    command = "python benchmarks/gpu.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    if not torch.cuda.is_available():
        print(f"gpu.py: PyTorch sees no CUDA device (torch {torch.__version__}); nothing to measure", file=sys.stderr)
        return 2
    has_ort, ort_note = ort_cuda_available()
    print(f"gpu.py: {ort_note}", file=sys.stderr)
    settings = [SETTINGS[name] for name in args.settings if has_ort or SETTINGS[name].runtime != "ort"]
    notes = [] if has_ort else [f"ORT rows skipped: {ort_note}"]
    machine = capture_machine().to_dict()
    entries, rows = [], []
    for name in args.models:
        start = time.perf_counter()
        print(f"{name}: building, pruning" + (" and exporting fp16 ONNX" if has_ort else ""), file=sys.stderr, flush=True)
        entry = zoo_entry(name, args.ratio, args.round_to)
        entries.append(entry)
        onnx_paths, export_error = None, None
        if has_ort:
            try:
                onnx_paths = export_fp16_pair(entry, args.onnx_dir or args.out / "onnx")
            except Exception as exc:  # noqa: BLE001  the PyTorch rows can still run
                export_error = RuntimeError(f"fp16 ONNX export failed: {exc}")
        for setting in settings:
            print(f"{name}: {setting.name}", file=sys.stderr, flush=True)
            if setting.runtime == "ort" and export_error:
                rows.append(failed_row(entry, setting, export_error))
            else:
                rows.append(run_setting(setting, entry, onnx_paths, args))
        # Written after every model, so a run cut short by a time limit still leaves its table.
        write_text_atomic(args.out / "gpu.md", report(command, entries, rows, notes, machine, args))
        print(f"{name}: done in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    print(report(command, entries, rows, notes, machine, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
