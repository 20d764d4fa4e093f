"""Unstructured (masked) versus structural pruning, measured with onnxruntime on the CPU.

Three versions of one model, exported with torch.onnx.export and timed in one onnxruntime
session each, interleaved round by round so that a busy machine slows them alike:
- dense;
- unstructured: 50% of the conv/linear weights set to zero (global magnitude), same shapes;
- structural: 50% of the channels removed (uniform, l2, round_to 8).

    .venv/bin/python benchmarks/prune_unstructured.py                 # torchvision resnet18, 224x224
    .venv/bin/python benchmarks/prune_unstructured.py --threads 1 2

Prints a markdown table (the one in docs/pruning.md) and writes it to out/prune_unstructured.md.
This is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import gzip
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
import torchvision

from shrink.bench.machine import cpu_info
from shrink.fileio import write_text_atomic
from shrink.prune import PruneConfig, apply, plan
from shrink.prune.unstructured import magnitude_prune, zero_fraction

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "out" / "prune_unstructured.md"


def export(model: torch.nn.Module, example: torch.Tensor, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (example,), str(path), dynamo=False, opset_version=18,
                          input_names=["input"], output_names=["logits"], do_constant_folding=True)
    return path


def session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    if sess.get_providers() != ["CPUExecutionProvider"]:
        raise RuntimeError(f"unexpected providers {sess.get_providers()}")
    return sess


def interleaved_ms(sessions: dict[str, ort.InferenceSession], x: np.ndarray, rounds: int, per_round: int) -> dict[str, list[float]]:
    times = {name: [] for name in sessions}
    for s in sessions.values():  # warm-up
        for _ in range(5):
            s.run(None, {"input": x})
    for _ in range(rounds):
        for name, s in sessions.items():
            for _ in range(per_round):
                start = time.perf_counter()
                s.run(None, {"input": x})
                times[name].append((time.perf_counter() - start) * 1e3)
    return times


def gz_mb(path: Path) -> float:
    return len(gzip.compress(path.read_bytes(), compresslevel=6)) / 2**20


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--per-round", type=int, default=5)
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    dense = torchvision.models.get_model(args.model, weights=None).eval()
    example = torch.randn(1, 3, args.size, args.size)
    sparse, report = magnitude_prune(dense, 0.5)
    structural = apply(dense, plan(dense, example, PruneConfig(ratio=0.5, importance="l2", round_to=8), verify=False))
    models = {"dense": dense, "unstructured 50% (zeros)": sparse, "structural ratio 0.5": structural}

    x = np.random.default_rng(0).standard_normal((1, 3, args.size, args.size), dtype=np.float32)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = {name: export(m, example, Path(tmp) / f"{i}.onnx") for i, (name, m) in enumerate(models.items())}
        for threads in args.threads:
            sessions = {name: session(p, threads) for name, p in paths.items()}
            times = interleaved_ms(sessions, x, args.rounds, args.per_round)
            base = statistics.median(times["dense"])
            for name, m in models.items():
                med = statistics.median(times[name])
                rows.append((name, threads, med, base / med, sum(p.numel() for p in m.parameters()) / 1e6,
                             zero_fraction(m), paths[name].stat().st_size / 2**20, gz_mb(paths[name])))
    load = os.getloadavg()[0]
    cpu = cpu_info()["cpu_model"]
    command = " ".join([".venv/bin/python", "benchmarks/prune_unstructured.py", *(argv if argv is not None else sys.argv[1:])])
    lines = [
        "## Unstructured vs structural pruning, onnxruntime CPU (development machine)", "",
        f"Command: `{command}` (writes out/prune_unstructured.md).", "",
        f"torchvision {args.model}, {args.size}x{args.size}, batch 1, onnxruntime {ort.__version__} CPUExecutionProvider; "
        f"{cpu}, {os.cpu_count()} cores, load average {load:.1f}; median of {args.rounds * args.per_round} interleaved runs.",
        f"Unstructured sparsity over conv/linear weights: {report.sparsity:.1%}.",
        "",
        "| version | threads | latency (ms, median) | speedup vs dense | params (M) | zero weights | ONNX (MB) | ONNX gzip (MB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [f"| {n} | {t} | {ms:.2f} | {sp:.2f}x | {p:.2f} | {z:.0%} | {mb:.1f} | {gz:.1f} |" for n, t, ms, sp, p, z, mb, gz in rows]
    text = "\n".join(lines) + "\n"
    write_text_atomic(OUT, text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
