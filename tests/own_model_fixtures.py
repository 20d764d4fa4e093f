"""A new user's inputs, made of real files: a `my_model.py:factory`, and a 3-class ImageFolder of
real Fashion-MNIST images saved as PNG at a size that is not the model's input (so the resize and
the centre crop matter). Imported by tests; not a conftest."""

from __future__ import annotations

from pathlib import Path

import numpy as np

CLASSES = {"bag": 8, "sneaker": 7, "trouser": 1}  # folder name -> Fashion-MNIST label
IMAGE_WH = (36, 30)  # (width, height) of the PNG files: not square, not the input size
INPUT_SIZE, RESIZE = 24, 28  # the model's input, and the shorter side before the centre crop

MODEL_CODE = '''
import torch.nn as nn


def small_cnn(num_classes=3, in_chans=3):
    return nn.Sequential(
        nn.Conv2d(in_chans, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, num_classes))
'''


def write_model_code(directory: Path) -> Path:
    path = directory / "my_model.py"
    path.write_text(MODEL_CODE, encoding="utf-8")
    return path


def write_image_folder(root: Path, fmnist_dir: Path, per_class: dict[str, int] | None = None) -> Path:
    """ROOT/{train,val}/<class>/*.png from the real Fashion-MNIST files: a tinted RGB image of
    IMAGE_WH, the item stretched to it (so a wrong resize or crop shows in the accuracy)."""
    from PIL import Image

    from shrink.data.fmnist import FILES
    from shrink.data.idx import read_idx
    from shrink.data.fmnist import _find_file

    per_class = per_class or {"train": 60, "val": 30}
    sources = {"train": FILES["train"], "val": FILES["test"]}
    for split, count in per_class.items():
        images = read_idx(_find_file(fmnist_dir, sources[split][0]))
        labels = read_idx(_find_file(fmnist_dir, sources[split][1]))
        for name, label in CLASSES.items():
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i, index in enumerate(np.flatnonzero(labels == label)[:count]):
                grey = Image.fromarray(np.asarray(images[index], dtype=np.uint8)).resize(IMAGE_WH, Image.BILINEAR)
                rgb = np.stack([np.asarray(grey), np.asarray(grey) // 2, 255 - np.asarray(grey)], axis=-1)
                Image.fromarray(rgb.astype(np.uint8)).save(folder / f"{i:03d}.png")
    return root


def user_directory(home: Path, fmnist_dir: Path, epochs: int) -> tuple[Path, Path]:
    """HOME/images, HOME/my_model.py, and HOME/trained/model.safetensors with its card, trained by
    `shrink train` on the images at INPUT_SIZE after a resize to RESIZE. Returns (images, code)."""
    from shrink.cli import main

    images = write_image_folder(home / "images", fmnist_dir)
    code = write_model_code(home)
    assert main(["train", f"{code}:small_cnn", "--data", f"imagefolder:{images}", "--image-size", str(INPUT_SIZE),
                 "--resize", str(RESIZE), "--epochs", str(epochs), "--batch-size", "32", "--lr", "0.05",
                 "--out", str(home / "trained")]) == 0
    return images, code
