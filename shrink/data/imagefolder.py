"""The user's own images: ROOT/train/<class>/*.jpg and ROOT/val/<class>/*.jpg (torchvision layout)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch

from shrink.config_io import Record
from shrink.data.preprocessing import INTERPOLATIONS, Preprocessing
from shrink.data.splits import DataInfo, LoaderSplit
from shrink.errors import ShrinkError, ShrinkValueError

SPLIT_DIRS = {"train": ("train",), "test": ("val", "test"), "val": ("val",)}


@dataclass(frozen=True)
class FolderOptions(Record):
    """How the images of a folder are read. Evaluation follows `preprocessing()`, the record that
    ships with the model (shrink.data.preprocessing); training adds a random crop and flip."""

    LABEL = "folder option keys"

    image_size: int = 224  # the model's input (H = W), cut from the centre after the resize
    resize: int | None = None  # shorter side before the centre crop; default image_size * 8/7
    channels: int = 3
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    interpolation: str = "bilinear"
    num_workers: int = 2

    def __post_init__(self) -> None:
        if isinstance(self.image_size, bool) or not isinstance(self.image_size, int) or self.image_size < 1:
            raise ShrinkValueError(f"image_size must be a positive integer, got {self.image_size!r}")
        if self.resize is not None and (isinstance(self.resize, bool) or not isinstance(self.resize, int)
                                        or self.resize < self.image_size):
            raise ShrinkValueError(f"resize (the shorter side before the centre crop) must be an integer >= "
                                   f"image_size {self.image_size}, got {self.resize!r}")
        if self.channels not in (1, 3):
            raise ShrinkValueError(f"channels must be 1 or 3, got {self.channels}")
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ShrinkValueError(f"mean/std need {self.channels} values each, got {self.mean} / {self.std}")
        if self.interpolation not in INTERPOLATIONS:
            raise ShrinkValueError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, got "
                                   f"{self.interpolation!r}")

    def preprocessing(self) -> Preprocessing:
        """The deployment contract these options stand for."""
        return Preprocessing(color="RGB" if self.channels == 3 else "L", crop=(self.image_size, self.image_size),
                             mean=tuple(self.mean), std=tuple(self.std),
                             resize=self.resize or int(round(self.image_size * 8 / 7)),
                             interpolation=self.interpolation)

    @classmethod
    def from_preprocessing(cls, record: Preprocessing, num_workers: int = 2) -> "FolderOptions":
        """Options that read a folder exactly as a shipped file's record says (square inputs only)."""
        h, w = record.crop
        if h != w:
            raise ShrinkError(f"imagefolder reads square inputs; the model's input is {w}x{h}")
        return cls(image_size=h, resize=record.resize or h, channels=record.channels, mean=record.mean,
                   std=record.std, interpolation=record.interpolation, num_workers=num_workers)


class _Contract:
    """A dataset transform: one PIL image -> tensor, by a preprocessing record (picklable)."""

    def __init__(self, record: Preprocessing) -> None:
        self.record = record

    def __call__(self, image) -> torch.Tensor:
        return torch.from_numpy(self.record.apply(image))


def _train_transform(record: Preprocessing):
    """A random crop and flip, then the record's colour, scale and normalization (no resize)."""
    from torchvision import transforms as T

    size = record.crop[0]
    return T.Compose([T.Lambda(lambda im: im.convert(record.color)), T.RandomResizedCrop(size),
                      T.RandomHorizontalFlip(), _Contract(replace(record, resize=None))])


def load_imagefolder(root: str | Path, split: str, options: FolderOptions = FolderOptions(), *,
                     record: Preprocessing | None = None) -> LoaderSplit:
    """One split of ROOT. Images are read by `record` when given (a shipped file's or a card's, kept
    exactly), else by the record `options` stand for; `options.num_workers` decode them."""
    from torchvision.datasets import ImageFolder

    root = Path(root)
    if not root.is_dir():
        raise ShrinkError(f"ImageFolder root not found: {root}")
    names = SPLIT_DIRS.get(split)
    if names is None:
        raise ShrinkError(f"ImageFolder split must be one of {sorted(SPLIT_DIRS)}, not {split!r}")
    directory = next((root / n for n in names if (root / n).is_dir()), None)
    if directory is None:
        raise ShrinkError(f"{root} has no {' or '.join(names)}/ folder for the {split} split")
    try:
        record = record or options.preprocessing()
        plain = ImageFolder(str(directory), transform=_Contract(record))
        augmented = ImageFolder(str(directory), transform=_train_transform(record))
    except (FileNotFoundError, RuntimeError) as exc:  # torchvision: "Found no valid file for the classes..."
        raise ShrinkError(f"{directory} holds no images in class sub-folders: {str(exc).splitlines()[0]}") from exc
    info = DataInfo(
        name=f"imagefolder:{root}",
        classes=tuple(plain.classes),
        in_chans=record.channels,
        image_size=record.crop,
        mean=record.mean,
        std=record.std,
        preprocessing=record,
    )
    return LoaderSplit(plain, info, train_dataset=augmented, num_workers=options.num_workers)
