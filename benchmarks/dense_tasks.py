"""The reference segmenter and detector: dense vs pruned at two ratios vs pruned int8, by `shrink sweep`.

For each shipped recipe (fmnist_lraspp, fmnist_ssdlite), one `shrink sweep` at ratios 0.3 and 0.5
in fp32 and int8: the task metric through onnxruntime on the recipe's test scenes, onnxruntime CPU
latency at 2 threads and batch 1 (every file timed by the bench's one method), and file size.

    .venv/bin/python benchmarks/dense_tasks.py --out runs/dense_tasks    # tens of minutes on 2 cores

Writes OUT/dense_tasks.md (the fragment for docs/measured/) and each sweep under OUT/<recipe>/.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from shrink.bench.machine import cpu_info
from shrink.fileio import write_text_atomic

REPO = Path(__file__).resolve().parents[1]
RECIPES = ("fmnist_lraspp", "fmnist_ssdlite")
RATIOS = "0.3,0.5"
THREADS = 2


def run_sweep(recipe: str, out: Path) -> dict:
    cmd = [sys.executable, "-m", "shrink", "sweep", recipe, "--ratios", RATIOS, "--precisions", "fp32,int8",
           "--set", f"bench.threads={THREADS}", "--set", "bench.batch=1", "--out", str(out), "--force", "--json",
           "--quiet"]
    print("$", " ".join(cmd[1:]), flush=True)
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if done.returncode != 0:
        raise SystemExit(f"{recipe}: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else 'failed'}")
    return json.loads(done.stdout)


def table(recipe: str, result: dict, metric: str) -> list[str]:
    rows = [f"### {recipe}", "", f"| point | {metric} (onnxruntime) | p50 ms [95% CI] | speedup vs dense | file size |",
            "|---|---|---|---|---|"]
    for p in result["points"]:
        if p["file"] is None:
            rows.append(f"| {p['name']} | — | — | — | {p['note']} |")
            continue
        rows.append(f"| {p['name']} | {p['accuracy']:.2f}% | {p['p50_ms']:.2f} [{p['ci_low_ms']:.2f}, "
                    f"{p['ci_high_ms']:.2f}] | {p['speedup']:.2f}x | {p['size_bytes'] / 2**20:.2f} MB |")
    return rows + [""]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "dense_tasks")
    parser.add_argument("recipes", nargs="*", default=list(RECIPES))
    args = parser.parse_args(argv)
    metrics = {"fmnist_lraspp": "mIoU", "fmnist_ssdlite": "mAP@[.5:.95]"}
    lines = ["## Segmentation and detection references: dense, pruned 0.3 and 0.5, int8", "",
             f"`python benchmarks/dense_tasks.py --out {args.out}` ({time.strftime('%Y-%m-%d')}): one "
             f"`shrink sweep RECIPE --ratios {RATIOS} --precisions fp32,int8` per shipped recipe, onnxruntime CPU, "
             f"{THREADS} threads, batch 1. The data are scenes composed from Fashion-MNIST (fmnist-seg, "
             "fmnist-det: docs/tasks.md); accuracy is on each recipe's seeded subset of 500 test scenes, "
             "the same for every point. An int8 point exists only where the quantize stage measured int8 faster "
             "than fp32 within its budget (1 point of the metric); otherwise the row says why.", ""]
    for recipe in args.recipes:
        result = run_sweep(recipe, args.out / recipe)
        lines += table(recipe, result, metrics.get(recipe, "accuracy"))
    info = cpu_info()
    lines += [f"Machine: {info['cpu_model']}, {info.get('physical_cores', '?')} cores; every sweep's bench.json has "
              "the full record (flags, versions, steal).", ""]
    write_text_atomic(args.out / "dense_tasks.md", "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
