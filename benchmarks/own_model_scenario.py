"""A new user's scenario, end to end: their own `my_model.py:factory` (torchvision
mobilenet_v3_small), a 3-class ImageFolder of 64x64 PNG files, the documented commands, and a
deploy script that follows only the report.

    python benchmarks/own_model_scenario.py --shrink /path/to/venv/bin/shrink --out runs/own_scenario

`--shrink` is the `shrink` to run (default: the one beside this Python), e.g. one installed from the wheel into
a venv outside the checkout. The images are real Fashion-MNIST items (pullover, coat, shirt: the
three classes it confuses most), 500 train and 30 val per class, written as RGB PNG at 64x64. The
dense model is trained by `shrink train` on whole images (`--resize 64`), as a user's own script
would; the run uses the same preprocessing. Writes OUT/own_model_scenario.md (the fragment
docs/measured/local-own-model-scenario.md holds).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CLIENT = REPO / "tests" / "data" / "contract_client.py"
CLASSES = {"coat": 4, "pullover": 2, "shirt": 6}
PER_SPLIT = {"train": 500, "val": 30}
SIZE = 64

MODEL_CODE = '''import torchvision


def factory(num_classes=3, in_chans=3):
    return torchvision.models.mobilenet_v3_small(num_classes=num_classes)
'''

RECIPE = f"""name: my-model
model:
  source: my_model.py:factory
  weights: dense/model.safetensors
  num_classes: 3
  input_size: [{SIZE}, {SIZE}]
data:
  name: imagefolder:images
  eval_images: null
  train_images: null
  select_images: 150
  folder: {{image_size: {SIZE}, resize: {SIZE}}}
prune: {{ratio: 0.5}}
"""


def write_images(root: Path, fmnist_dir: Path) -> None:
    from PIL import Image

    sys.path.insert(0, str(REPO))
    from shrink.data.fmnist import FILES, _find_file
    from shrink.data.idx import read_idx

    for split, count in PER_SPLIT.items():
        stems = FILES["train" if split == "train" else "test"]
        images, labels = (read_idx(_find_file(fmnist_dir, stem)) for stem in stems)
        for name, label in CLASSES.items():
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i, index in enumerate(np.flatnonzero(labels == label)[:count]):
                grey = Image.fromarray(np.asarray(images[index], dtype=np.uint8)).resize((SIZE, SIZE), Image.BILINEAR)
                Image.merge("RGB", (grey, grey, grey)).save(folder / f"{i:03d}.png")


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    print("$ " + " ".join(command), flush=True)
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {done.stderr[-3000:]}")
    return done


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    beside = Path(sys.executable).with_name("shrink")  # the venv this script runs in
    parser.add_argument("--shrink", default=str(beside) if beside.is_file() else shutil.which("shrink") or "shrink",
                        help="the shrink command to run (default: the one beside this Python, else on PATH)")
    parser.add_argument("--data-dir", default=os.environ.get("SHRINK_DATA", "/usr/share/datasets/fashion-mnist"))
    parser.add_argument("--epochs", type=int, default=15, help="epochs of the dense model's training")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "own_scenario")
    args = parser.parse_args()
    work = args.out.resolve()
    shutil.rmtree(work, ignore_errors=True)
    (work / "elsewhere").mkdir(parents=True)
    write_images(work / "images", Path(args.data_dir))
    (work / "my_model.py").write_text(MODEL_CODE, encoding="utf-8")
    (work / "my.yaml").write_text(RECIPE, encoding="utf-8")
    t0 = time.perf_counter()
    run([args.shrink, "train", "my_model.py:factory", "--data", "imagefolder:images", "--image-size", str(SIZE),
         "--resize", str(SIZE), "--epochs", str(args.epochs), "--batch-size", "32", "--lr", "0.05",
         "--out", "dense"], work)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    # From another directory: the recipe's paths are relative to the recipe file.
    done = run([args.shrink, "run", str(work / "my.yaml"), "--json", "--out", str(work / "run")], work / "elsewhere")
    run_s = time.perf_counter() - t0
    result = json.loads(done.stdout)
    numbers = result["numbers"]
    manifest = json.loads((work / "run" / "manifest.json").read_text())
    recovery = manifest["recovery"]
    followed = json.loads(run([sys.executable, str(CLIENT), str(work / "run" / numbers["shipped"]["file"]),
                               str(work / "images" / "val"), "--from-report", str(work / "run" / "report.md")],
                              work).stdout)
    steps = " -> ".join(f"{s['step']} {s['accuracy']:.2f}%" for s in recovery.get("selection") or [])
    speed = numbers["speedup"]
    lines = [
        "## A new user's own model: mobilenet_v3_small on a 3-class ImageFolder at 64x64",
        "",
        f"`python benchmarks/own_model_scenario.py --shrink {args.shrink}` (`shrink` from "
        f"{'the wheel, in a venv outside the checkout' if not Path(args.shrink).resolve().is_relative_to(REPO) else 'the checkout'}); "
        f"Fashion-MNIST coat/pullover/shirt, {PER_SPLIT['train']} train and {PER_SPLIT['val']} val images per class, "
        f"RGB PNG {SIZE}x{SIZE}; dense trained by `shrink train` for {args.epochs} epochs ({train_s:.0f} s), then "
        f"`shrink run my.yaml` (prune 0.5, the default recovery, {run_s:.0f} s) from another directory.",
        "",
        "| what | figure |",
        "|---|---|",
        f"| dense top-1 (onnxruntime, {numbers['accuracy']['images']} val images) | {numbers['accuracy']['dense']:.2f}% |",
        f"| recovery steps on the {manifest['inputs']['data']['select_images']} held-out training images | {steps} |",
        f"| shipped | `{numbers['shipped']['file']}` ({recovery['shipped_step']} weights), "
        f"{numbers['accuracy']['shipped']:.2f}% ({numbers['accuracy']['change_pt']:+.2f} pt) |",
        f"| a script following only report.md's deploy section (PIL, numpy, onnxruntime) | "
        f"{followed['accuracy']:.2f}% on {followed['total']} images |",
        f"| MACs | {numbers['mac_reduction']:.2f}x fewer |",
        f"| latency | {numbers['latency']['dense']['p50_ms']:.2f} ms -> {numbers['latency']['shipped']['p50_ms']:.2f} ms"
        + (f", {speed['ratio']:.2f}x [{speed['ci_low']:.2f}, {speed['ci_high']:.2f}]" if speed else "")
        + f" ({numbers['latency']['threads']} thread(s), batch {numbers['latency']['batch']})"
        + (f"; caveats: {'; '.join(numbers['caveats'])}" if numbers["caveats"] else "") + " |",
        f"| gate warnings | {'; '.join(numbers['warnings']) or 'none'} |",
        "",
    ]
    from bench_zoo import machine_lines

    text = "\n".join(lines + machine_lines(manifest["measurement"]["machine"])) + "\n"
    (work / "own_model_scenario.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
