"""BN recalibration or layer-wise reconstruction before the default recipe's short recovery (`make demo`).

The default recipe prunes the Fashion-MNIST ResNet-18 to half its channels and distills it for one
epoch on a few thousand training images. This script runs that recovery from its two label-free
starts (BN recalibration, the old default; least-squares reconstruction of every layer), and the
reconstruction alone (no training) and with a lower peak learning rate, for a few seeds, scored on
a split held out of train (never the test set): the default is chosen without looking at test accuracy.

    python benchmarks/recovery_demo_start.py --data-dir /usr/share/datasets/fashion-mnist
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling script's set-up

from recovery_demo_augment import BN_RECAL_LR, REPO, VAL_IMAGES, demo_setup, parse_args, write_fragment  # noqa: E402

from shrink.bench.machine import cpu_info  # noqa: E402
from shrink.recover import recover  # noqa: E402

OUT = REPO / "out" / "recovery_demo_start.md"
RECONSTRUCT_IMAGES = 512


def variants(base):
    """(label, RecoverConfig): the default recipe's recovery `base` (its distillation, batch and
    epochs) from each start; the starts and learning rates are set here, not read from the recipe,
    so the comparison stays the same whichever of them the recipe now uses."""
    train = replace(base.train, lr=BN_RECAL_LR)
    bn = replace(base, bn_recal=True, reconstruct_images=0, train=train)
    refit = replace(base, bn_recal=False, reconstruct_images=RECONSTRUCT_IMAGES, train=train)
    return [
        (f"BN recal ({base.bn_recal_images} images) + distill, lr {BN_RECAL_LR}", bn),
        (f"reconstruct ({RECONSTRUCT_IMAGES} images) + distill, lr {BN_RECAL_LR}", refit),
        (f"reconstruct ({RECONSTRUCT_IMAGES} images) + distill, lr {BN_RECAL_LR / 4:g}",
         replace(refit, train=replace(train, lr=BN_RECAL_LR / 4))),
        (f"reconstruct ({RECONSTRUCT_IMAGES} images) only, no training", replace(refit, train=None, distill=None)),
    ]


def main(argv=None) -> int:
    args = parse_args(argv, __doc__.splitlines()[0])
    recipe, dense, pruning, pruned, fit_part, val = demo_setup(args.data_dir)
    rows = []
    for label, config in variants(recipe.recover):
        accs = []
        for seed in args.seeds:
            if config.train is not None:
                config = replace(config, train=replace(config.train, seed=seed, device="cpu"))
            t0 = time.perf_counter()
            result = recover(pruned, dense, fit_part, config, eval_split=val, progress=False, plan=pruning, dense=dense)
            accs.append(result.accuracy_after)
            print(f"{label}, seed {seed}: {result.accuracy_after:.2f}% on the held-out split "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
        rows.append((label, accs))
    command = " ".join([".venv/bin/python", "benchmarks/recovery_demo_start.py", *(argv if argv is not None else sys.argv[1:])])
    train_cfg = recipe.recover.train
    lines = [
        "## Label-free start of the default recipe's recovery (development machine)", "",
        f"Command: `{command}` (writes out/recovery_demo_start.md).", "",
        f"The default recipe's pruned ResNet-18 (ratio {recipe.prune.ratio}, {recipe.prune.importance}), recovered "
        f"with its distillation ({train_cfg.epochs} epoch, batch {train_cfg.batch_size}, T "
        f"{recipe.recover.distill.temperature:g}, alpha {recipe.recover.distill.alpha:g}, on "
        f"{recipe.data.train_images} training images) after each label-free start, scored on {VAL_IMAGES} images "
        f"held out of train, never the test set. The seed moves the training order (and nothing of the "
        f"no-training row). {cpu_info()['cpu_model']}, {os.cpu_count()} cores, {args.threads} torch threads, "
        f"load average {os.getloadavg()[0]:.1f}.", "",
    ]
    write_fragment(OUT, lines, "recovery", args.seeds, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
