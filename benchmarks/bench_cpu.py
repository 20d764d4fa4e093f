"""ORT CPU speedup of pruned over dense torchvision models, measured with `shrink bench`.

For each model: build it (random weights), prune a copy with torch-pruning at a uniform ratio
(L2 magnitude, round_to 8, classifier kept; see bench_zoo.py), export both to ONNX, then time both
with shrink.bench (its default method: each file in worker processes of its own, taking turns, over
fresh processes; bootstrap intervals) at 1 thread and at N threads. Prints the anchor
table of the bench issue: MAC reduction, speedup and ratio = speedup / MAC reduction, plus the
machine block and the command that produced it.

    python benchmarks/bench_cpu.py --models resnet50 mobilenet_v2 --out runs/bench_cpu
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench_zoo import ZOO, export_onnx, mac_table, machine_lines, zoo_entry  # also puts the repo root on sys.path

from shrink.bench import BenchConfig, OnnxCandidate, run_bench
from shrink.bench.machine import physical_cores
from shrink.bench.output import write_outputs
from shrink.fileio import write_text_atomic


@dataclass(frozen=True)
class Row:
    model: str
    mac_reduction: float
    threads: int
    dense_p50_ms: float
    pruned_p50_ms: float
    speedup: float
    ci_low: float
    ci_high: float
    noisy: bool
    max_load: float | None  # 1-minute load average, the higher of before / after the timing

    @property
    def ratio(self) -> float:
        return self.speedup / self.mac_reduction


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(ZOO), choices=ZOO)
    parser.add_argument("--threads", nargs="+", type=int, default=None, help="default: 1 and the physical cores")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--ratio", type=float, default=0.5)
    parser.add_argument("--round-to", type=int, default=8)
    parser.add_argument("--warmup-runs", type=int, default=10)
    parser.add_argument("--warmup-seconds", type=float, default=1.0)
    parser.add_argument("--min-runs", type=int, default=30)
    parser.add_argument("--min-seconds", type=float, default=5.0)
    parser.add_argument("--profile", action="store_true", help="also profile each pair (slower)")
    parser.add_argument("--memory", action="store_true", help="also measure memory (a process per candidate)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench_cpu"))
    parser.add_argument("--onnx-dir", type=Path, default=None, help="where the ONNX files go (default: OUT/onnx)")
    return parser.parse_args(argv)


def bench_pair(dense: Path, pruned: Path, threads: int, args: argparse.Namespace) -> dict:
    config = BenchConfig(
        provider="cpu",
        threads=threads,
        batch=args.batch,
        warmup_runs=args.warmup_runs,
        warmup_seconds=args.warmup_seconds,
        min_runs=args.min_runs,
        min_seconds=args.min_seconds,
        measure_memory=args.memory,
        profile=args.profile,
    )
    progress = lambda line: print(f"  bench: {line}", file=sys.stderr, flush=True)  # noqa: E731
    return run_bench([OnnxCandidate(str(dense), "dense"), OnnxCandidate(str(pruned), "pruned")], config, progress=progress).to_dict()


def row_from(model: str, mac_reduction: float, result: dict) -> Row:
    dense, pruned = result["candidates"]
    return Row(
        model=model,
        mac_reduction=mac_reduction,
        threads=result["threads"],
        dense_p50_ms=dense["latency"]["p50_ms"],
        pruned_p50_ms=pruned["latency"]["p50_ms"],
        speedup=pruned["speedup"]["ratio"],
        ci_low=pruned["speedup"]["ci_low"],
        ci_high=pruned["speedup"]["ci_high"],
        noisy=dense["latency"]["noisy"] or pruned["latency"]["noisy"],
        max_load=max((x for x in result["load_average_1m"] if x is not None), default=None),
    )


def speedup_table(rows: list[Row]) -> str:
    lines = [
        "| model | threads | MAC reduction | dense p50 ms | pruned p50 ms | speedup [95% CI] "
        "| ratio = speedup / MAC reduction | noisy | load avg |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.model} | {r.threads} | {r.mac_reduction:.2f}× | {r.dense_p50_ms:.2f} | {r.pruned_p50_ms:.2f} "
            f"| {r.speedup:.2f}× [{r.ci_low:.2f}, {r.ci_high:.2f}] | {r.ratio:.2f} | {'yes' if r.noisy else 'no'} "
            f"| {'-' if r.max_load is None else f'{r.max_load:.1f}'} |"
        )
    return "\n".join(lines)


def report(command: str, entries, rows: list[Row], machine: dict, args: argparse.Namespace) -> str:
    return "\n".join(
        [
            "## ORT CPU: pruned vs dense (torch-pruning, uniform ratio "
            f"{args.ratio}, L2, round_to {args.round_to}, classifier kept)",
            "",
            f"Command: `{command}`",
            "",
            f"batch {args.batch}; warmup ≥ {args.warmup_runs} runs and ≥ {args.warmup_seconds:g} s; measured ≥ "
            f"{args.min_runs} runs and ≥ {args.min_seconds:g} s per candidate, dense and pruned each in worker processes of its own, taking turns "
            "(shrink bench's default method); "
            "random weights and synthetic inputs (latency only). Speedup is the ratio of median latencies. "
            "noisy: CV above 10% for dense or pruned. load avg: 1-minute load average of the machine around the "
            "timing (above the number of logical CPUs means other processes competed).",
            "",
            speedup_table(rows),
            "",
            mac_table(entries),
            "",
            *machine_lines(machine),
            "",
        ]
    )


def main(argv=None) -> int:
    args = parse_args(argv)
    command = "python benchmarks/bench_cpu.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    threads = args.threads or sorted({1, physical_cores()})
    entries, rows, machine = [], [], None
    for name in args.models:
        start = time.perf_counter()
        print(f"{name}: building, pruning and exporting", file=sys.stderr, flush=True)
        entry = zoo_entry(name, args.ratio, args.round_to)
        entries.append(entry)
        onnx_dir = args.onnx_dir or args.out / "onnx"
        dense = export_onnx(entry.dense, onnx_dir / f"{name}-dense.onnx")
        pruned = export_onnx(entry.pruned, onnx_dir / f"{name}-pruned.onnx")
        for count in threads:
            print(f"{name}: timing at {count} thread(s)", file=sys.stderr, flush=True)
            result = bench_pair(dense, pruned, count, args)
            write_outputs(result, args.out / f"{name}-t{count}")
            machine = machine or result["machine"]
            rows.append(row_from(name, entry.mac_reduction, result))
        # Written after every model, so a run cut short still leaves its table.
        write_text_atomic(args.out / "bench_cpu.md", report(command, entries, rows, machine, args))
        print(f"{name}: done in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    print(report(command, entries, rows, machine, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
