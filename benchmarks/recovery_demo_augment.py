"""Crop/flip augmentation on or off in the default recipe's short recovery (what `make demo` runs).

The default recipe prunes the Fashion-MNIST ResNet-18 and distills it for one epoch on a few
thousand training images. This script runs exactly that recovery config (read from the default
recipe) with `augment` on and off, for a few seeds, and scores each on a split held out of train
(never the test set), so the choice of the default is made without looking at test accuracy.

    python benchmarks/recovery_demo_augment.py --data-dir /usr/share/datasets/fashion-mnist
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from shrink.bench.machine import cpu_info  # noqa: E402
from shrink.data import load_data, train_val_split  # noqa: E402
from shrink.fileio import write_text_atomic  # noqa: E402
from shrink.load import load_model  # noqa: E402
from shrink.prune import apply, plan  # noqa: E402
from shrink.recipe import load_recipe  # noqa: E402
from shrink.recover import recover  # noqa: E402

OUT = REPO / "out" / "recovery_demo_augment.md"
VAL_IMAGES = 2000  # scored on these, held out of train
# The recipe's label-free step and peak lr when augmentation was chosen; pinned so that this record
# stays what it measured now that the recipe starts from layer-wise reconstruction at lr 0.005.
BN_RECAL_LR = 0.02


def parse_args(argv, description: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--data-dir", help="Fashion-MNIST IDX directory (default: the usual search path)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="training seeds")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    return args


def demo_setup(data_dir):
    """The default recipe, its dense model, plan and pruned model, the recipe's training images
    taken from train minus VAL_IMAGES, and those held-out images (the split every choice is scored on)."""
    recipe = load_recipe()
    train = load_data(recipe.data.name, "train", data_dir=data_dir)
    fit_part, val = train_val_split(train, VAL_IMAGES / len(train), seed=0)
    g = torch.Generator().manual_seed(recipe.data.seed)
    fit_part = fit_part.subset(torch.randperm(len(fit_part), generator=g)[: recipe.data.train_images])
    loaded = load_model(str(REPO / recipe.model.source))
    dense = loaded.model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch-pruning's tracing warnings
        pruning = plan(dense, torch.randn(2, *loaded.spec.input_shape), recipe.prune)
    return recipe, dense, pruning, apply(dense, pruning), fit_part, val


def main(argv=None) -> int:
    args = parse_args(argv, __doc__.splitlines()[0])
    recipe, dense, _, pruned, fit_part, val = demo_setup(args.data_dir)
    rows = []
    for augment in (True, False):
        accs = []
        for seed in args.seeds:
            config = replace(recipe.recover, bn_recal=True, reconstruct_images=0,
                             train=replace(recipe.recover.train, lr=BN_RECAL_LR, augment=augment, seed=seed, device="cpu"))
            t0 = time.perf_counter()
            result = recover(pruned, dense if config.distill else None, fit_part, config, eval_split=val, progress=False)
            accs.append(result.accuracy_after)
            print(f"augment {augment} seed {seed}: {result.accuracy_after:.2f}% on the held-out split "
                  f"(BN recal {result.accuracy_bn_recal:.2f}%, {time.perf_counter() - t0:.0f} s)", flush=True)
        rows.append((augment, accs))
    command = " ".join([".venv/bin/python", "benchmarks/recovery_demo_augment.py", *(argv if argv is not None else sys.argv[1:])])
    train_cfg = recipe.recover.train
    lines = [
        "## Augmentation in the default recipe's recovery (development machine)", "",
        f"Command: `{command}` (writes out/recovery_demo_augment.md).", "",
        f"The default recipe's recovery ({train_cfg.epochs} epoch of distillation, batch {train_cfg.batch_size}, "
        f"peak lr {BN_RECAL_LR}, on {recipe.data.train_images} training images, after BN recalibration) of its "
        f"pruned ResNet-18 (ratio {recipe.prune.ratio}, {recipe.prune.importance}), scored on {VAL_IMAGES} images "
        f"held out of train, never the test set. {cpu_info()['cpu_model']}, {os.cpu_count()} cores, "
        f"{args.threads} torch threads, load average {os.getloadavg()[0]:.1f}.", "",
    ]
    write_fragment(OUT, lines, "crop+flip augmentation", args.seeds, [("on" if a else "off", accs) for a, accs in rows])
    return 0


def write_fragment(out: Path, lines: list[str], first_column: str, seeds: list[int], rows) -> None:
    """`lines`, then a table of `rows` ((label, accuracy per seed)) with each row's mean, written
    atomically to `out` (out/ is created when missing) and printed."""
    lines = [*lines, f"| {first_column} | " + " | ".join(f"seed {s}" for s in seeds) + " | mean |",
             "|---|" + "---|" * (len(seeds) + 1)]
    lines += [f"| {label} | " + " | ".join(f"{x:.2f}%" for x in accs) + f" | {statistics.mean(accs):.2f}% |"
              for label, accs in rows]
    text = "\n".join(lines) + "\n"
    write_text_atomic(out, text)
    print(text)


if __name__ == "__main__":
    raise SystemExit(main())
