"""Issue 25: round_to at this machine's granule against round_to 8, on tv mobilenet_v2 pruned 0.5.

The issue measured on an AMD EPYC with AVX-512 (each file alone in fresh processes): round_to 8
gave 3.57x fewer MACs and 2.48x/2.84x speedups at 1/2 threads, round_to 16 3.16x fewer MACs and
3.29x/3.21x. This reruns the comparison here with `run_bench` (each file alone in fresh worker
processes, taking turns).

    python benchmarks/round_to_granule.py --threads 1 2 --out runs/round_to_granule
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from bench_zoo import build, machine_lines  # also puts the repo root on sys.path

import torch

from shrink.bench import BenchConfig, OnnxCandidate, run_bench
from shrink.bench.granule import granule
from shrink.bench.layers import export_onnx
from shrink.bench.machine import capture_machine
from shrink.fileio import write_text_atomic
from shrink.prune import PruneConfig, apply, plan


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--out", type=Path, default=Path("runs/round_to_granule"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    model = build(args.model)
    x = torch.randn(1, 3, 224, 224)
    export_onnx(model, x, args.out / "dense.onnx")
    here = granule("cpu", "fp32")
    files, macs = [], {}
    for round_to in sorted({8, here}):
        p = plan(model, x.expand(2, -1, -1, -1), PruneConfig(ratio=0.5, round_to=round_to), verify=False)
        with torch.no_grad():
            export_onnx(apply(model, p), x, args.out / f"round_to{round_to}.onnx")
        files.append(round_to)
        macs[round_to] = p.before.macs / p.after.macs
    lines = [f"## round_to 8 against this machine's granule ({here}): tv {args.model} pruned 0.5, ORT CPU fp32 (issue 25)", "",
             f"Command: `python benchmarks/round_to_granule.py {shlex.join(sys.argv[1:])}`", "",
             "Uniform ratio 0.5, L2, classifier kept; each file timed against dense with `run_bench` (each alone in fresh "
             "worker processes, 4 rounds, taking turns). `round_to` now defaults to the granule.", "",
             "| round_to | MAC reduction | " + " | ".join(f"speedup, {t} thread(s) [95% CI]" for t in args.threads) + " |",
             "|---:|---:|" + "---:|" * len(args.threads)]
    speed = {}
    for t in args.threads:
        result = run_bench([OnnxCandidate(str(args.out / "dense.onnx"), "dense")] +
                           [OnnxCandidate(str(args.out / f"round_to{r}.onnx"), f"round_to {r}") for r in files],
                           BenchConfig(threads=t, min_seconds=8.0, measure_memory=False))
        for r, c in zip(files, result.candidates[1:]):
            speed[(r, t)] = c.speedup
    for r in files:
        cells = " | ".join(f"{speed[(r, t)].ratio:.2f}x [{speed[(r, t)].ci_low:.2f}, {speed[(r, t)].ci_high:.2f}]"
                           for t in args.threads)
        lines.append(f"| {r}{' (granule)' if r == here else ''} | {macs[r]:.2f}x | {cells} |")
    lines += [""] + machine_lines(capture_machine().to_dict())
    path = args.out / "round_to_granule.md"
    write_text_atomic(path, "\n".join(lines) + "\n")
    print(path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
