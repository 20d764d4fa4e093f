"""Issue 25, table C on Fashion-MNIST: top-1 at equal measured latency, latency-aware against
uniform-ratio pruning, after the same recovery (the default recipe's: layer-wise reconstruction
and one short epoch of distillation).

1. `shrink run --set prune.target_latency=B`: the latency-aware plan (table, allocator, closed loop),
   recovered, exported, timed.
2. The uniform ratio whose plan measures the same share of dense (bisection on the ratio, each step
   exported and timed against dense with run_bench).
3. `shrink run --set prune.ratio=R`: the uniform plan through the same recovery.

Both runs report top-1 through onnxruntime on the recipe's evaluation images and their own bench.

    python benchmarks/latency_equal_accuracy.py --model fmnist_resnet18 --budget 0.25 --seeds 0 \
        --out runs/latency_equal_accuracy
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_zoo import machine_lines  # also puts the repo root on sys.path
from latency_budget import uniform_at

import onnx
import torch

from shrink.bench.granule import granule
from shrink.bench.layers import export_onnx, write_for_precision
from shrink.bench.machine import capture_machine
from shrink.fileio import write_text_atomic
from shrink.latency_budget import loop_bench_config
from shrink.load import load_model

RECIPE_SETS = ["--set", "quantize=null"]  # fp32 only: both sides ship the same precision


def shrink_run(out: Path, *sets: str) -> dict:
    subprocess.run([sys.executable, "-m", "shrink", "run", *RECIPE_SETS, *sets, "--out", str(out), "--force"], check=True)
    return json.loads((out / "manifest.json").read_text())


def numbers(manifest: dict) -> dict:
    rows = {c["name"]: c for c in manifest["candidates"]}
    dense, pruned = rows["dense fp32"], rows["pruned fp32"]
    return {"top1": pruned["accuracy_onnx"], "dense_top1": dense["accuracy_onnx"],
            "share": pruned["latency"]["p50_ms"] / dense["latency"]["p50_ms"],
            "macs": manifest["pruning"]["mac_reduction"], "params": manifest["pruning"]["param_reduction"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="fmnist_resnet18")
    parser.add_argument("--budget", type=float, default=0.25)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/latency_equal_accuracy"))
    args = parser.parse_args()
    args.precision = "fp32"
    args.out.mkdir(parents=True, exist_ok=True)
    loaded = load_model(args.model)
    shape = (1, *loaded.spec.input_shape)
    rows = []
    for seed in args.seeds:
        seed_sets = ["--set", f"recover.train.seed={seed}", "--set", f"bench.threads={args.threads}"]
        aware = shrink_run(args.out / f"aware-s{seed}", "--set", f"prune.target_latency={args.budget}", *seed_sets)
        shipped = next(r for r in aware["pruning"]["latency"]["measured"] if r["shipped"])
        with tempfile.TemporaryDirectory(dir=args.out) as tmp:
            work = Path(tmp)
            export_onnx(loaded.model, torch.randn(*shape), work / "dense.fp32.onnx")
            write_for_precision(onnx.load(str(work / "dense.fp32.onnx")), work / "dense.onnx", "fp32", 0)
            _, got, low, high, ratio = uniform_at(loaded.model, shipped["ratio"], args, work / "dense.onnx", work,
                                                  loop_bench_config("cpu", args.threads, 1), 0.9, shape)
        uniform = shrink_run(args.out / f"uniform-s{seed}", "--set", f"prune.ratio={ratio:.4f}", *seed_sets)
        rows.append((seed, numbers(aware), numbers(uniform), shipped, (ratio, got, low, high)))
    lines = [f"## Equal measured latency on Fashion-MNIST: latency-aware against uniform ratio ({args.model}, budget "
             f"{args.budget}, fp32, {args.threads} threads; issue 25, table C)", "",
             f"Command: `python benchmarks/latency_equal_accuracy.py {shlex.join(sys.argv[1:])}`", "",
             "Both through the default recipe's recovery (reconstruction + one epoch of distillation on 2048 images), "
             "fp32 shipped, top-1 through onnxruntime on the recipe's 1000 evaluation images; share = pruned / dense "
             f"p50 from each run's own bench. Granule {granule('cpu', 'fp32')}.", "",
             "| seed | dense top-1 | latency-aware: top-1, share (loop's measurement), MAC reduction | uniform: ratio, share at bisection, top-1, share (run's bench), MAC reduction | top-1 difference |",
             "|---:|---:|---|---|---:|"]
    for seed, a, u, shipped, (ratio, got, low, high) in rows:
        # accuracy_onnx in the manifest is already in percent
        lines.append(f"| {seed} | {a['dense_top1']:.2f}% | {a['top1']:.2f}%, {a['share']:.3f} ({shipped['ratio']:.3f}), "
                     f"{a['macs']:.2f}x | {ratio:.3f}, {got:.3f} [{low:.3f}, {high:.3f}], {u['top1']:.2f}%, "
                     f"{u['share']:.3f}, {u['macs']:.2f}x | {a['top1'] - u['top1']:+.2f} pt |")
    lines += [""] + machine_lines(capture_machine().to_dict())
    path = args.out / "latency_equal_accuracy.md"
    write_text_atomic(path, "\n".join(lines) + "\n")
    print(path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
