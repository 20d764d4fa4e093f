"""Issue 25, tables B and C (224 models): does a plan for a latency budget measure within it, and
what does it keep at equal measured latency against uniform MAC-style pruning?

For each model and budget: `shrink.latency_budget.prune_to_latency` (the table from the cache or
built here, the allocator, the closed loop). The shipped round's measured share of dense and its
95% interval are reported with the rounds it took. With --equal-latency, the uniform-ratio plan
(L2, same granule) with the same measured latency is found by bisection on the ratio (each step
exported and timed against dense with run_bench), and the MACs and parameters both keep are
reported (random weights: accuracy at equal latency is the Fashion-MNIST part of table C).

    python benchmarks/latency_budget.py --models resnet50 mobilenet_v2 --budgets 0.5 0.25 --threads 2 \
        --equal-latency --out runs/latency_budget
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path

from bench_zoo import build, machine_lines  # also puts the repo root on sys.path

import onnx
import torch

from shrink.bench import OnnxCandidate, run_bench
from shrink.bench.granule import granule
from shrink.bench.layers import TableTarget, build_table, export_onnx, write_for_precision
from shrink.bench.machine import capture_machine
from shrink.fileio import write_text_atomic
from shrink.latency_budget import loop_bench_config, prune_to_latency
from shrink.prune import PruneConfig, apply, plan

INPUT = (1, 3, 224, 224)
BISECTIONS = 5
MATCH = 0.02  # equal latency: measured shares within 2% of each other


def measured_share(model, p, dense_path: Path, work: Path, name: str, bench, precision: str,
                   input_shape=INPUT) -> tuple[float, float, float]:
    with torch.no_grad():
        export_onnx(apply(model, p), torch.randn(*input_shape), work / f"{name}.fp32.onnx")
    write_for_precision(onnx.load(str(work / f"{name}.fp32.onnx")), work / f"{name}.onnx", precision, 0)
    result = run_bench([OnnxCandidate(str(dense_path), "dense"), OnnxCandidate(str(work / f"{name}.onnx"), name)], bench)
    s = result.candidates[1].speedup
    return 1 / s.ratio, 1 / s.ci_high, 1 / s.ci_low


def uniform_at(model, share: float, args, dense_path, work, bench, max_ratio: float, input_shape=INPUT):
    """Bisection on the uniform ratio for the measured share `share`."""
    lo, hi, best = 0.0, max_ratio, None
    example = torch.randn(2, *input_shape[1:])
    for step in range(BISECTIONS):
        ratio = (lo + hi) / 2
        p = plan(model, example, PruneConfig(ratio=ratio, round_to=granule("cpu", args.precision)), verify=False)
        got, low, high = measured_share(model, p, dense_path, work, f"uniform{step}", bench, args.precision, input_shape)
        if best is None or abs(got - share) < abs(best[1] - share):
            best = (p, got, low, high, ratio)
        if abs(got / share - 1) <= MATCH:
            break
        lo, hi = (ratio, hi) if got > share else (lo, ratio)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["resnet50", "mobilenet_v2"])
    parser.add_argument("--budgets", nargs="+", type=float, default=[0.5, 0.25])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", default="fp32", choices=("fp32", "int8"))
    parser.add_argument("--equal-latency", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("runs/latency_budget"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    bench = loop_bench_config("cpu", args.threads, 1)
    rows = []
    for name in args.models:
        model = build(name)
        config = PruneConfig(round_to=granule("cpu", args.precision))
        started = time.perf_counter()
        table = build_table(model, torch.randn(*INPUT), TableTarget(threads=args.threads, precision=args.precision), config,
                            progress=lambda line: print(f"  {line}", flush=True))
        table_s = time.perf_counter() - started
        with tempfile.TemporaryDirectory(dir=args.out) as tmp:
            work = Path(tmp)
            export_onnx(model, torch.randn(*INPUT), work / "dense.fp32.onnx")
            write_for_precision(onnx.load(str(work / "dense.fp32.onnx")), work / "dense.onnx", args.precision, 0)
            for budget in args.budgets:
                print(f"latency_budget: {name} at {budget}", flush=True)
                started = time.perf_counter()
                p, rounds = prune_to_latency(model, torch.randn(2, *INPUT[1:]), PruneConfig(
                    round_to=config.round_to, target_latency=budget), table, precision=args.precision, verify=False,
                    progress=lambda line: print(f"  {line}", flush=True))
                loop_s = time.perf_counter() - started
                shipped = next(r for r in p.latency.measured if r["shipped"])
                row = {"name": name, "budget": budget, "rounds": rounds, "shipped": shipped, "plan": p, "table_s": table_s,
                       "loop_s": loop_s, "uniform": None}
                if args.equal_latency:
                    row["uniform"] = uniform_at(model, shipped["ratio"], args, work / "dense.onnx", work, bench,
                                                config.max_layer_ratio)
                rows.append(row)
    command = "python benchmarks/latency_budget.py " + shlex.join(sys.argv[1:])
    path = args.out / f"latency_budget-{args.precision}-t{args.threads}.md"
    write_text_atomic(path, fragment(rows, args, command))
    print(path.read_text())
    return 0


def fragment(rows, args, command: str) -> str:
    lines = [f"## Latency budget: requested against measured, {args.precision}, {args.threads} threads, batch 1, ORT CPU "
             "(issue 25, table B)", "", f"Command: `{command}`", "",
             "Each row: `prune_to_latency` (the allocator on the table, then the closed loop: export, time against dense "
             "with run_bench, rescale and replan when outside [-5%, +2%], at most 3 replans). Measured share = pruned p50 / "
             "dense p50 of the shipped round, with its 95% interval. Random weights (torchvision architectures).", "",
             "| model | budget | rounds | predicted share, round 1 | measured, round 1 | shipped: measured share [95% CI] | within ±5% | MACs kept | params kept | table + loop |",
             "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|"]
    for r in rows:
        s, p, first = r["shipped"], r["plan"], r["rounds"][0]
        within = abs(s["ratio"] / r["budget"] - 1) <= 0.05
        lines.append(f"| {r['name']} | {r['budget']} | {len(r['rounds'])} | {first.predicted_ratio:.3f} | {first.ratio:.3f} "
                     f"| {s['ratio']:.3f} [{s['ratio_ci'][0]:.3f}, {s['ratio_ci'][1]:.3f}] | {'yes' if within else 'no'} "
                     f"| {p.after.macs / p.before.macs:.1%} | {p.after.params / p.before.params:.1%} "
                     f"| {r['table_s']:.0f} s + {r['loop_s']:.0f} s |")
    if any(r["uniform"] for r in rows):
        lines += ["", "### At equal measured latency: latency-aware against uniform ratio (issue 25, table C, 224 models)", "",
                  "The uniform plan (L2, same granule) is found by bisection on the ratio until its measured share is within "
                  f"{MATCH:.0%} of the latency-aware plan's (at most {BISECTIONS} steps; the closest is shown).", "",
                  "| model | budget | latency-aware: share, MACs kept, params kept | uniform: ratio, share, MACs kept, params kept |",
                  "|---|---:|---|---|"]
        for r in rows:
            if not r["uniform"]:
                continue
            s, p = r["shipped"], r["plan"]
            up, got, low, high, ratio = r["uniform"]
            lines.append(f"| {r['name']} | {r['budget']} | {s['ratio']:.3f}, {p.after.macs / p.before.macs:.1%}, "
                         f"{p.after.params / p.before.params:.1%} | {ratio:.3f}, {got:.3f} [{low:.3f}, {high:.3f}], "
                         f"{up.after.macs / up.before.macs:.1%}, {up.after.params / up.before.params:.1%} |")
    lines += [""] + machine_lines(capture_machine().to_dict())
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
