"""Issue 25, table A: how well a latency table predicts whole models it never saw.

For each model: build the table (shrink.bench.layers.build_table), draw random width
configurations (a random overall keep share per configuration, jittered per group, on the
granule), export each, and time them all against dense with `shrink.bench.run_bench` (each file
alone in fresh worker processes, taking turns). The error of each prediction is reported two ways:
- absolute: predicted ms / measured p50 - 1;
- relative to dense: (predicted / predicted dense) / (measured / measured dense) - 1, which is what
  a budget given as a fraction of dense depends on.

    python benchmarks/latency_predictor.py --models resnet50 mobilenet_v2 --threads 2 --precision fp32 \
        --configs 10 --out runs/latency_predictor
"""

from __future__ import annotations

import argparse
import json
import random
import shlex
import sys
import time
from pathlib import Path

from bench_zoo import build, machine_lines  # also puts the repo root on sys.path

import numpy as np
import onnx
import torch

from shrink.bench import BenchConfig, OnnxCandidate, run_bench
from shrink.bench.granule import granule
from shrink.bench.layers import TableTarget, build_table, export_onnx, write_for_precision
from shrink.bench.machine import capture_machine
from shrink.fileio import write_text_atomic
from shrink.prune import PruneConfig, apply, plan
from shrink.prune.planner import width_space_of

INPUT = (1, 3, 224, 224)


def random_keeps(space, rng: random.Random) -> dict[str, int]:
    """A keep share s ~ U(0.15, 1) for the configuration, times U(0.75, 1.25) per group, snapped to
    the group's nearest allowed width."""
    share = rng.uniform(0.15, 1.0)
    keeps = {}
    for g in space.groups:
        want = g.width * min(1.0, share * rng.uniform(0.75, 1.25))
        i = min(range(len(g.channels)), key=lambda k: abs(g.channels[k] - want))
        keeps[g.root] = g.units[i]
    return keeps


def measure_model(name: str, args, out: Path) -> dict:
    model = build(name)
    example = torch.randn(*INPUT)
    config = PruneConfig(round_to=granule("cpu", args.precision))
    target = TableTarget(threads=args.threads, precision=args.precision, rounds=args.rounds, grid_points=args.grid)
    started = time.perf_counter()
    table = build_table(model, example, target, config, use_cache=not args.fresh, progress=lambda l: print(f"  {l}", flush=True))
    built_s = time.perf_counter() - started
    space = width_space_of(model, example, config)
    rng = random.Random(args.seed)
    work = out / f"{name}-{args.precision}-t{args.threads}"
    work.mkdir(parents=True, exist_ok=True)
    export_onnx(model, example, work / "dense.fp32.onnx")
    write_for_precision(onnx.load(str(work / "dense.fp32.onnx")), work / "dense.onnx", args.precision, 0)
    configs = []
    for i in range(args.configs):
        keeps = random_keeps(space, rng)
        p = plan(model, torch.randn(2, *INPUT[1:]), config, keeps=keeps, verify=False)
        widths = {g.root: g.width - len(g.removed) for g in p.groups}
        with torch.no_grad():
            export_onnx(apply(model, p), example, work / f"config{i}.fp32.onnx")
        write_for_precision(onnx.load(str(work / f"config{i}.fp32.onnx")), work / f"config{i}.onnx", args.precision, 0)
        configs.append({"widths": widths, "predicted_ms": table.predict(widths), "macs": p.after.macs})
    bench = BenchConfig(threads=args.threads, processes=args.processes, min_runs=30, min_seconds=args.seconds,
                        measure_memory=False, max_seconds=None)
    candidates = [OnnxCandidate(str(work / "dense.onnx"), "dense")]
    candidates += [OnnxCandidate(str(work / f"config{i}.onnx"), f"config{i}") for i in range(args.configs)]
    result = run_bench(candidates, bench)
    dense_ms = result.candidates[0].latency.p50_ms
    dense_pred = table.dense_ms()
    for c, r in zip(configs, result.candidates[1:]):
        c["measured_ms"] = r.latency.p50_ms
        c["abs_error"] = c["predicted_ms"] / r.latency.p50_ms - 1
        c["rel_error"] = (c["predicted_ms"] / dense_pred) / (r.latency.p50_ms / dense_ms) - 1
    (work / "configs.json").write_text(json.dumps({"configs": configs, "dense_ms": dense_ms, "dense_predicted_ms": dense_pred,
                                                   "calibration": table.to_dict()["calibration"]}, indent=1))
    return {"name": name, "table_s": built_s, "table_timing_s": table.timing.get("seconds"), "subgraphs": table.timing.get("subgraphs"),
            "configs": configs, "dense_ms": dense_ms, "dense_predicted_ms": dense_pred, "notes": list(table.notes)}


def pct(values, q) -> float:
    return float(np.percentile(np.abs(values), q)) * 100


def fragment(rows: list[dict], args, command: str) -> str:
    lines = [f"## Latency table accuracy: {args.precision}, {args.threads} threads, batch 1, ORT CPU (issue 25, table A)", "",
             f"Command: `{command}`", "",
             f"{args.configs} random width configurations per model (keep share U(0.15, 1) per configuration, x U(0.75, 1.25) "
             "per group, on the granule), each timed against dense with `run_bench` (each file alone in fresh worker "
             f"processes, {args.processes} rounds). Error = predicted / measured - 1: absolute ms, and as a share of dense.", "",
             "| model | table built in | subgraphs | dense measured / predicted ms | abs error p50 | abs p90 | share-of-dense error p50 | p90 | worst |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        absolute = [c["abs_error"] for c in r["configs"]]
        relative = [c["rel_error"] for c in r["configs"]]
        worst = max(relative, key=abs)
        lines.append(f"| {r['name']} | {r['table_s']:.0f} s | {r['subgraphs']} | {r['dense_ms']:.2f} / {r['dense_predicted_ms']:.2f} "
                     f"| {pct(absolute, 50):.1f}% | {pct(absolute, 90):.1f}% | {pct(relative, 50):.1f}% | {pct(relative, 90):.1f}% | {worst:+.1%} |")
    lines += ["", "Per configuration (measured ms, predicted ms, share-of-dense error):", ""]
    for r in rows:
        cells = ", ".join(f"{c['measured_ms']:.2f}/{c['predicted_ms']:.2f} ({c['rel_error']:+.0%})" for c in r["configs"])
        lines.append(f"- {r['name']}: {cells}")
        for note in r["notes"]:
            lines.append(f"  - note: {note}")
    lines += [""] + machine_lines(capture_machine().to_dict())
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["resnet50", "mobilenet_v2", "efficientnet_b0", "convnext_tiny", "regnet_y_800mf"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", default="fp32", choices=("fp32", "int8"))
    parser.add_argument("--configs", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2, help="table rounds")
    parser.add_argument("--grid", type=int, default=5, help="table grid points per axis")
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0, help="bench min_seconds per candidate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fresh", action="store_true", help="rebuild tables even when cached")
    parser.add_argument("--out", type=Path, default=Path("runs/latency_predictor"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.models:
        print(f"latency_predictor: {name}", flush=True)
        rows.append(measure_model(name, args, args.out))
    command = "python benchmarks/latency_predictor.py " + shlex.join(sys.argv[1:])
    path = args.out / f"latency_predictor-{args.precision}-t{args.threads}.md"
    write_text_atomic(path, fragment(rows, args, command))
    print(path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
