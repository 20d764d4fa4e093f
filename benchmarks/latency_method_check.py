"""Issue 25: the layer timer's ratios against an independent second method.

The latency table is timed by shrink/bench/layer_timer.py (one session at a time in one worker
process, rounds in random order). Here a kit is built and timed as `shrink bench layers` does, and
two of its ratios are checked against bench_method.py's reference (each file alone in a fresh
interpreter, onnxruntime's defaults but the threads, alternating, 6 rounds):
- whole models: dense against uniform 0.6 (a calibration point);
- one layer: the kind with the largest dense time, at its full widths against its narrowest.

    python benchmarks/latency_method_check.py --model resnet18 --threads 2 --out runs/latency_method_check
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from bench_method import Pair, reference  # also puts the repo root on sys.path
from bench_zoo import build, machine_lines

import torch

from shrink.bench.latency_table import LatencyTable
from shrink.bench.layers import TableTarget, prepare_kit, run_timer
from shrink.bench.machine import capture_machine
from shrink.fileio import write_text_atomic
from shrink.prune import PruneConfig


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/latency_method_check"))
    args = parser.parse_args()
    kit = args.out / "kit"
    if kit.exists():
        raise SystemExit(f"{kit} exists; remove it first")
    model = build(args.model)
    meta = prepare_kit(model, torch.randn(1, 3, 224, 224), TableTarget(threads=args.threads), PruneConfig(), kit)
    table: LatencyTable = run_timer(kit)
    times = json.loads((kit / "table.json").read_text())
    # the table's calibration points come in the kit's order, which names them
    whole = {c["id"]: p["whole_ms"] for c, p in zip(meta["calibration"], times["calibration"]["points"])}
    kind = max(table.kinds.values(), key=lambda k: k.ms[-1][-1])
    entries = meta["kinds"][kind.kind]["entries"]
    full, narrow = entries[f"{kind.cin[-1]}x{kind.cout[-1]}"], entries[f"{kind.cin[0]}x{kind.cout[0]}"]
    pairs = [
        (Pair("whole", kit / "whole" / "uniform0.00.onnx", kit / "whole" / "uniform0.60.onnx", "dense vs uniform 0.6"),
         whole["whole:uniform0.00"] / whole["whole:uniform0.60"]),
        (Pair("layer", kit / "layers" / f"{full}.onnx", kit / "layers" / f"{narrow}.onnx", f"{kind.kind} full vs narrowest"),
         kind.ms[-1][-1] / kind.ms[0][0]),
    ]
    lines = [f"## Layer timer against a second method ({args.model}, {args.threads} threads; issue 25)", "",
             f"Command: `python benchmarks/latency_method_check.py {shlex.join(sys.argv[1:])}`", "",
             "Layer timer: as `shrink bench layers` times a kit (one session at a time in one worker process, 2 rounds in "
             "random order). Reference: bench_method.py's, each file alone in a fresh interpreter, alternating, 6 rounds "
             "(median ratio, 95% t-interval).", "",
             "| pair | layer timer | reference [95% CI] | difference |", "|---|---:|---:|---:|"]
    for pair, timer_ratio in pairs:
        ref = reference(pair, args.threads, 6, 2.0)
        lines.append(f"| {pair.what} | {timer_ratio:.3f}x | {ref['ratio']:.3f}x [{ref['ci_low']:.3f}, {ref['ci_high']:.3f}] "
                     f"| {timer_ratio / ref['ratio'] - 1:+.1%} |")
    lines += [""] + machine_lines(capture_machine().to_dict())
    path = args.out / "latency_method_check.md"
    write_text_atomic(path, "\n".join(lines) + "\n")
    print(path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
