"""Peak RAM of fine-tuning ResNet-18 on Fashion-MNIST at batch 256 on the CPU.

Each case runs in a fresh process (so one case's peak cannot hide another's): it loads the full
Fashion-MNIST train split, the shipped dense model, prunes it (unless --keep 1.0), recalibrates BN
and runs a few optimizer steps of the real `fit()` loop, optionally distilling from the dense
teacher. The figure is the process's peak resident set size (getrusage ru_maxrss).

    python benchmarks/recovery_memory.py --data-dir /usr/share/datasets/fashion-mnist
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

LIMIT_MIB = 4096  # the budget
CASES = (  # (channels kept, distill)
    (1.0, False),
    (0.5, False),
    (0.5, True),
    (0.25, True),
)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def run_case(keep: float, distill: bool, steps: int, batch_size: int, data_dir: str | None) -> dict:
    import torch

    from shrink.data import load_data
    from shrink.load import load_model
    from shrink.recover import DistillConfig, DistillLoss, TrainConfig, fit, recalibrate_bn

    torch.manual_seed(0)
    train = load_data("fmnist", "train", data_dir=data_dir)
    teacher = load_model("fmnist_resnet18").model
    student = teacher
    if keep < 1.0:
        from shrink.prune import PruneConfig, apply, plan

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p = plan(teacher, torch.randn(1, 1, 28, 28), PruneConfig(ratio=1.0 - keep, importance="l2", round_to=8))
        student = apply(teacher, p)
    recalibrate_bn(student, train, max_images=2000)
    criterion = DistillLoss(teacher, DistillConfig(), student=student) if distill else None
    subset = train.subset(torch.arange(steps * batch_size))  # a few steps; the full split stays loaded
    t0 = time.perf_counter()
    fit(student, subset, TrainConfig(epochs=1, batch_size=batch_size, lr=0.04, device="cpu"), criterion=criterion,
        progress=False)
    seconds = time.perf_counter() - t0
    return {"keep": keep, "distill": distill, "steps": steps, "batch_size": batch_size,
            "seconds_per_step": seconds / steps, "peak_rss_mib": round(peak_rss_mib(), 1),
            "torch_threads": torch.get_num_threads()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="Fashion-MNIST IDX directory")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: "keep,distill" in a child process
    args = parser.parse_args(argv)
    if args.case:
        keep, distill = args.case.split(",")
        print(json.dumps(run_case(float(keep), distill == "1", args.steps, args.batch_size, args.data_dir)))
        return 0
    rows = []
    for keep, distill in CASES:
        cmd = [sys.executable, __file__, "--case", f"{keep},{int(distill)}", "--steps", str(args.steps),
               "--batch-size", str(args.batch_size)] + (["--data-dir", args.data_dir] if args.data_dir else [])
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            print(proc.stderr[-2000:], file=sys.stderr)
            return 1
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append(row)
        verdict = "ok" if row["peak_rss_mib"] < LIMIT_MIB else "OVER"
        print(f"ResNet-18 keep {keep:.2f}  distill {distill!s:5}  batch {row['batch_size']}  "
              f"peak RSS {row['peak_rss_mib']:7.1f} MiB  ({verdict}, limit {LIMIT_MIB})  "
              f"{row['seconds_per_step']:.2f} s/step", flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=1) + "\n")
    return 0 if all(r["peak_rss_mib"] < LIMIT_MIB for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
