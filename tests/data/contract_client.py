"""A deployer's script that knows nothing of torch-shrink: it reads only what a shipped file says.

    python contract_client.py MODEL.onnx IMAGES_DIR [--from-report REPORT.md]

It decodes every image under IMAGES_DIR/<class>/ with PIL, prepares it by the written contract,
runs the file with onnxruntime, and prints one JSON line: {"correct": N, "total": M, "accuracy": %}.
The contract comes from the ONNX metadata (`preprocessing`, `classes`), or, with --from-report,
from the numbers the report's "Deploying" section prints in words. It imports no torch-shrink code
and no torch: only PIL, numpy and onnxruntime, as on a deployment machine.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image


def contract_from_metadata(session) -> tuple[dict, list[str]]:
    meta = session.get_modelmeta().custom_metadata_map
    return json.loads(meta["preprocessing"]), json.loads(meta["classes"])


def contract_from_report(text: str) -> tuple[dict, list[str]]:
    """The same numbers, read from the report's words (the deploy section's numbered steps)."""
    section = text[text.index("## Deploying"):]
    color = "RGB" if "convert it to RGB" in section else "L"
    resize = re.search(r"shorter side is (\d+) px", section)
    crop = re.search(r"crop the centre (\d+)x(\d+) \(W x H\)", section) or re.search(
        r"the image must already be (\d+)x(\d+) \(W x H\)", section)
    norm = re.search(r"mean \[([^\]]+)\], std \[([^\]]+)\]", section)
    labels = re.search(r"labels \(output index order\): (.+)", section).group(1)
    classes = [item.split(": ", 1)[1] for item in labels.split(", ")]
    return {"color": color, "resize": int(resize.group(1)) if resize else None, "interpolation": "bilinear",
            "crop": [int(crop.group(2)), int(crop.group(1))], "scale": 1 / 255,
            "mean": [float(v) for v in norm.group(1).split(",")],
            "std": [float(v) for v in norm.group(2).split(",")]}, classes


def prepare(path: Path, c: dict) -> np.ndarray:
    image = Image.open(path).convert(c["color"])
    if c["resize"] is not None:
        w, h = image.size
        s = c["resize"]
        size = (s, int(s * h / w)) if w <= h else (int(s * w / h), s)
        if size != image.size:
            image = image.resize(size, getattr(Image.Resampling, c["interpolation"].upper()))
    w, h = image.size
    ch, cw = c["crop"]
    left, top = (w - cw) // 2, (h - ch) // 2
    image = image.crop((left, top, left + cw, top + ch))
    x = np.asarray(image, dtype=np.float32) * np.float32(c["scale"])
    x = x[None] if x.ndim == 2 else x.transpose(2, 0, 1)
    mean = np.asarray(c["mean"], dtype=np.float32).reshape(-1, 1, 1)
    std = np.asarray(c["std"], dtype=np.float32).reshape(-1, 1, 1)
    return ((x - mean) / std)[None].astype(np.float32)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("images")
    parser.add_argument("--from-report")
    args = parser.parse_args()
    session = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    if args.from_report:
        contract, classes = contract_from_report(Path(args.from_report).read_text(encoding="utf-8"))
    else:
        contract, classes = contract_from_metadata(session)
    name = session.get_inputs()[0].name
    correct = total = 0
    for label, cls in enumerate(classes):
        for path in sorted((Path(args.images) / cls).iterdir()):
            logits = session.run(None, {name: prepare(path, contract)})[0]
            correct += int(int(logits.argmax()) == label)
            total += 1
    json.dump({"correct": correct, "total": total, "accuracy": 100.0 * correct / max(total, 1)}, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
