"""Fashion-MNIST from the standard IDX .gz files.

Search order: --data-dir, $SHRINK_DATA, /usr/share/datasets/fashion-mnist (Debian package
dataset-fashion-mnist), the user cache, then torchvision's downloader into the user cache when the
machine is online and downloads are allowed ($SHRINK_NO_DOWNLOAD unset; tests set it).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from shrink.data.idx import read_idx
from shrink.data.splits import DataInfo, TensorSplit
from shrink.errors import ShrinkError

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
MEAN, STD = (0.2860,), (0.3530,)  # over the training set
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
INFO = DataInfo(name="fmnist", classes=CLASSES, in_chans=1, image_size=(28, 28), mean=MEAN, std=STD)


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "shrink" / "fashion-mnist"


def _find_file(directory: Path, stem: str) -> Path | None:
    for name in (f"{stem}.gz", stem):
        if (directory / name).is_file():
            return directory / name
    return None


def _missing(directory: Path) -> list[str]:
    stems = [s for pair in FILES.values() for s in pair]
    return [s + ".gz" for s in stems if _find_file(directory, s) is None]


def _download(target: Path) -> None:
    from torchvision.datasets import FashionMNIST

    target.mkdir(parents=True, exist_ok=True)
    FashionMNIST(str(target.parent / "tv"), train=True, download=True)
    FashionMNIST(str(target.parent / "tv"), train=False, download=True)
    raw = target.parent / "tv" / "FashionMNIST" / "raw"
    for stem in (s for pair in FILES.values() for s in pair):
        src = _find_file(raw, stem)
        if src is not None:
            os.replace(src, target / src.name)


def find_fmnist(data_dir: str | Path | None = None) -> Path:
    """The directory holding the four IDX files; a clear error lists every place searched."""
    if data_dir is not None:  # the user said where: no silent fallback elsewhere
        d = Path(data_dir)
        missing = _missing(d)
        if missing:
            raise ShrinkError(f"--data-dir {d} does not hold the Fashion-MNIST IDX files (missing {', '.join(missing)})")
        return d
    searched = []
    candidates = [("$SHRINK_DATA", os.environ.get("SHRINK_DATA")), ("Debian package", DEBIAN_DIR), ("cache", _cache_dir())]
    for label, d in candidates:
        if not d:
            continue
        for candidate in (Path(d), Path(d) / "fashion-mnist"):
            if not _missing(candidate):
                return candidate
        searched.append(f"{d} ({label})")
    if not os.environ.get("SHRINK_NO_DOWNLOAD"):
        try:
            _download(_cache_dir())
            if not _missing(_cache_dir()):
                return _cache_dir()
        except Exception as exc:  # offline, or the mirror refused: report below with the rest
            searched.append(f"download failed: {type(exc).__name__}")
    raise ShrinkError(
        "Fashion-MNIST not found; searched " + "; ".join(searched) + ". Install it with "
        "`apt-get install dataset-fashion-mnist`, or pass --data-dir DIR holding the four IDX .gz files"
    )


def load_fmnist(split: str, data_dir: str | Path | None = None) -> TensorSplit:
    if split not in FILES:
        raise ShrinkError(f"Fashion-MNIST has splits {sorted(FILES)}, not {split!r}")
    directory = find_fmnist(data_dir)
    image_stem, label_stem = FILES[split]
    images = read_idx(_find_file(directory, image_stem))
    labels = read_idx(_find_file(directory, label_stem))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ShrinkError(f"{directory}: {split} images {images.shape} and labels {labels.shape} do not match")
    if labels.max(initial=0) >= len(CLASSES):
        raise ShrinkError(f"{directory}: labels go up to {labels.max()}, Fashion-MNIST has {len(CLASSES)} classes")
    return TensorSplit(torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype("int64")), INFO)
