"""Distillation with the teacher's logits computed once vs the teacher run on every batch.

For each pruned model (the recovery benchmark's aggressive rows: ResNet-18 at ~16x and
MobileNetV2 at ~8.5x fewer MACs, l2), `recover()` distills it with the default recipe twice in
the same process, once with `teacher_cache=False` and once with the default cache, in alternating
order, on a fixed subset of Fashion-MNIST train. Reported: wall time of each whole recovery (BN
recalibration and the teacher's up-front pass included), their ratio, the largest difference
between a cached and a live teacher logit over one epoch of training batches, and the accuracy of
both recoveries on test images. Identical targets give identical training; targets that differ in
the last float bits can still drift apart over 5 epochs by as much as a change of seed.

    python benchmarks/kd_teacher_cache.py --data-dir /usr/share/datasets/fashion-mnist
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from shrink.bench.machine import cpu_info  # noqa: E402
from shrink.data import BatchOptions, batch_indices, load_data  # noqa: E402
from shrink.evaluate import evaluate_torch  # noqa: E402
from shrink.fileio import write_text_atomic  # noqa: E402
from shrink.load import load_model  # noqa: E402
from shrink.prune import PruneConfig, apply, plan  # noqa: E402
from shrink.prune.counting import count  # noqa: E402
from shrink.recover import RecoverConfig, recover  # noqa: E402
from shrink.recover.config import default_distill, default_finetune  # noqa: E402
from shrink.recover.teacher_logits import compute_teacher_logits  # noqa: E402

OUT = REPO / "out" / "kd_teacher_cache.md"
CASES = (("fmnist_resnet18", 15.81), ("fmnist_mobilenetv2", 8.47))  # model, MAC reduction


def pruned_model(name: str, reduction: float):
    dense = load_model(name).model.eval()
    example = torch.randn(2, 1, 28, 28)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch-pruning's tracing warnings
        p = plan(dense, example, PruneConfig(target_macs=count(dense, (example,)).macs / reduction, round_to=8))
    return dense, apply(dense, p), p.mac_reduction


def largest_logit_difference(teacher, split, batch_size: int) -> float:
    """max |cached - live| over one shuffled epoch of training batches, on the CPU in fp32."""
    cached = compute_teacher_logits(teacher, split, device="cpu", bf16=False, progress=False)
    options = BatchOptions(batch_size=batch_size, shuffle=True)
    worst = 0.0
    with torch.no_grad():
        for (x, y), indices in zip(split.batches(options), batch_indices(len(split), options), strict=True):
            worst = max(worst, (cached.lookup(indices, y) - teacher(x)).abs().max().item())
    return worst


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", help="Fashion-MNIST IDX directory (default: the usual search path)")
    p.add_argument("--images", type=int, default=6000, help="training images distilled on (a fixed subset)")
    p.add_argument("--test-images", type=int, default=2000)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    train = load_data("fmnist", "train", data_dir=args.data_dir)
    train = train.subset(torch.randperm(len(train), generator=g)[: args.images])
    test = load_data("fmnist", "test", data_dir=args.data_dir).subset(torch.arange(args.test_images))
    config = RecoverConfig(train=replace(default_finetune(), device="cpu"), distill=default_distill())
    rows = []
    for i, (name, reduction) in enumerate(CASES):
        dense, pruned, achieved = pruned_model(name, reduction)
        runs = {}
        for cache in ((False, True) if i % 2 == 0 else (True, False)):  # alternate which goes first
            t0 = time.perf_counter()
            result = recover(pruned, dense, train, config, progress=False, teacher_cache=cache)
            seconds = time.perf_counter() - t0
            assert result.teacher_cached == cache
            runs[cache] = (seconds, evaluate_torch(result.model, test, batch_size=500).accuracy)
            print(f"{name} {achieved:.2f}x cache={cache}: {seconds:.0f} s, {runs[cache][1]:.2f}% on "
                  f"{args.test_images} test images", flush=True)
        difference = largest_logit_difference(dense, train, config.train.batch_size)
        rows.append((name, achieved, runs, difference))
    command = " ".join([".venv/bin/python", "benchmarks/kd_teacher_cache.py", *(argv if argv is not None else sys.argv[1:])])
    train_cfg = config.train
    lines = [
        "## Distillation: teacher logits computed once vs on every batch (development machine)", "",
        f"Command: `{command}` (writes out/kd_teacher_cache.md).", "",
        f"`recover()` with the default recipe ({train_cfg.epochs} epochs of distillation, batch "
        f"{train_cfg.batch_size}, no augmentation, BN recalibration first) on {args.images} Fashion-MNIST train "
        f"images, both settings in one process, the first one alternating per model. Wall time of the whole "
        f"recovery; accuracy on the first {args.test_images} test images. {cpu_info()['cpu_model']}, "
        f"{os.cpu_count()} cores, {args.threads} torch threads, torch {torch.__version__}, load average "
        f"{os.getloadavg()[0]:.1f} at the end.", "",
        "| pruned model | teacher every batch | teacher once | speed-up | max logit difference | "
        "accuracy (every batch / once) |",
        "|---|---|---|---|---|---|",
    ]
    for name, achieved, runs, difference in rows:
        (live_s, live_acc), (fast_s, fast_acc) = runs[False], runs[True]
        lines.append(f"| {name} at {achieved:.2f}x fewer MACs | {live_s:.0f} s | {fast_s:.0f} s | "
                     f"{live_s / fast_s:.2f}x | {difference:.1e} | {live_acc:.2f}% / {fast_acc:.2f}% |")
    text = "\n".join(lines) + "\n"
    write_text_atomic(OUT, text)  # creates out/ when missing
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
