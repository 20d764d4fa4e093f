"""Speed of the pruning pass itself, side by side with plain torch-pruning in the same run.

- vit_b_16 and densenet121 at 224x224 (batch 1): graph build + prune at ratio 0.5.
    torch-pruning: MetaPruner(...) + step()  (l2, round_to 8, classifier ignored)
    torch-shrink:  plan(..., verify=False) + apply(...)   (also counts MACs before and after)
    torch-shrink, verified: plan(...) + apply(...)  (plus the zero-then-remove check on a copy)
- a synthetic transformer stack (torchvision's ViT encoder, 128 wide, 16 tokens) of 12 to 96
  blocks: how the cost grows with depth.

    .venv/bin/python benchmarks/prune_speed.py
    .venv/bin/python benchmarks/prune_speed.py --depths 12 24 --skip-models

Every measurement builds a fresh model and uses one torch thread. Each cell is "wall (cpu)" seconds:
on a shared machine the wall time includes waiting for a core, the process CPU time does not, so
the load average is printed too. Writes out/prune_speed.md. This is a benchmark, not a test.
"""

from __future__ import annotations

import importlib.metadata
import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import torch
import torch.nn as nn
import torch_pruning as tp
import torchvision
from torchvision.models.vision_transformer import Encoder

from shrink.bench.machine import cpu_info
from shrink.fileio import write_text_atomic
from shrink.prune import PruneConfig, apply, plan

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "out" / "prune_speed.md"
CONFIG = PruneConfig(ratio=0.5, importance="l2", round_to=8)


class Stack(nn.Module):
    """Linear embedding, `depth` transformer blocks, a classifier on the first token."""

    def __init__(self, depth: int) -> None:
        super().__init__()
        self.embed = nn.Linear(32, 128)
        self.encoder = Encoder(16, depth, 4, 128, 512, 0.0, 0.0)
        self.head = nn.Linear(128, 10)

    def forward(self, x):
        return self.head(self.encoder(self.embed(x))[:, 0])


def build(name: str):
    torch.manual_seed(0)
    if name.startswith("stack"):
        return Stack(int(name[5:])).eval(), torch.randn(1, 16, 32)
    return torchvision.models.get_model(name, weights=None).eval(), torch.randn(1, 3, 224, 224)


def head_of(model: nn.Module) -> nn.Module:
    for attr in ("head", "heads", "classifier", "fc"):
        if hasattr(model, attr):
            return getattr(model, attr)
    raise ValueError("no classifier head")


class Timer:
    def __enter__(self) -> "Timer":
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu

    def __str__(self) -> str:
        return f"{self.wall:.2f} ({self.cpu:.2f})"


def time_torch_pruning(name: str) -> Timer:
    model, x = build(name)
    with Timer() as timer, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pruner = tp.pruner.MetaPruner(model, x, importance=tp.importance.GroupMagnitudeImportance(p=2),
                                      pruning_ratio=0.5, ignored_layers=[head_of(model)], round_to=8)
        pruner.step()
    return timer


def time_shrink(name: str, verify: bool) -> tuple[Timer, float]:
    model, x = build(name)
    with Timer() as timer, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = plan(model, x, CONFIG, verify=verify)
        apply(model, result)
    return timer, result.mac_reduction


def machine() -> str:
    cpu = cpu_info()["cpu_model"]
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, torch-pruning {importlib.metadata.version('torch-pruning')}, 1 torch thread"  # tp.__version__ says 1.6.0 in the 1.6.1 wheel


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=["vit_b_16", "densenet121"])
    parser.add_argument("--depths", type=int, nargs="*", default=[12, 24, 48, 96])
    parser.add_argument("--skip-models", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    warm, x = build("resnet18")
    warm(x)  # first-call costs (kernel selection, allocator) are not the pass's

    names = ([] if args.skip_models else args.models) + [f"stack{d}" for d in args.depths]
    command = " ".join([".venv/bin/python", "benchmarks/prune_speed.py", *(argv if argv is not None else sys.argv[1:])])
    lines = ["## Speed of the pruning pass (development machine)", "",
             f"Command: `{command}` (writes out/prune_speed.md). Wall seconds, with the process's CPU "
             "seconds in parentheses (they differ when other processes compete for the cores; the load "
             "average is in the last column). Each cell builds a fresh model.", "",
             f"Machine: {machine()}.", "",
             "| model | torch-pruning build+step, s wall (cpu) | torch-shrink plan+apply | torch-shrink plan+apply, verified | MAC reduction (shrink) | load avg |",
             "|---|---|---|---|---|---|"]
    for name in names:
        tp_s = time_torch_pruning(name)
        shrink_s, reduction = time_shrink(name, verify=False)
        verified_s, _ = time_shrink(name, verify=True)
        row = f"| {name} | {tp_s} | {shrink_s} | {verified_s} | {reduction:.2f}x | {os.getloadavg()[0]:.1f} |"
        lines.append(row)
        print(row, flush=True)
    text = "\n".join(lines) + "\n"
    write_text_atomic(OUT, text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
