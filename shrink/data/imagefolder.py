"""The user's own images: ROOT/train/<class>/*.jpg and ROOT/val/<class>/*.jpg (torchvision layout)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from shrink.data.splits import DataInfo, LoaderSplit
from shrink.errors import ShrinkError, ShrinkValueError

SPLIT_DIRS = {"train": ("train",), "test": ("val", "test"), "val": ("val",)}


@dataclass(frozen=True)
class FolderOptions:
    image_size: int = 224
    resize: int | None = None  # shorter side before the center crop; default image_size * 8/7
    channels: int = 3
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    num_workers: int = 2

    def __post_init__(self) -> None:
        if self.image_size < 1:
            raise ShrinkValueError(f"image_size must be >= 1, got {self.image_size}")
        if self.channels not in (1, 3):
            raise ShrinkValueError(f"channels must be 1 or 3, got {self.channels}")
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ShrinkValueError(f"mean/std need {self.channels} values each, got {self.mean} / {self.std}")


def _transforms(options: FolderOptions, train: bool):
    from torchvision import transforms as T

    resize = options.resize or int(round(options.image_size * 8 / 7))
    steps = [T.Grayscale(1)] if options.channels == 1 else [T.Lambda(lambda im: im.convert("RGB"))]
    if train:
        steps += [T.RandomResizedCrop(options.image_size), T.RandomHorizontalFlip()]
    else:
        steps += [T.Resize(resize), T.CenterCrop(options.image_size)]
    steps += [T.ToTensor(), T.Normalize(options.mean, options.std)]
    return T.Compose(steps)


def load_imagefolder(root: str | Path, split: str, options: FolderOptions = FolderOptions()) -> LoaderSplit:
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
        plain = ImageFolder(str(directory), transform=_transforms(options, train=False))
        augmented = ImageFolder(str(directory), transform=_transforms(options, train=True))
    except (FileNotFoundError, RuntimeError) as exc:  # torchvision: "Found no valid file for the classes..."
        raise ShrinkError(f"{directory} holds no images in class sub-folders: {str(exc).splitlines()[0]}") from exc
    info = DataInfo(
        name=f"imagefolder:{root}",
        classes=tuple(plain.classes),
        in_chans=options.channels,
        image_size=(options.image_size, options.image_size),
        mean=tuple(options.mean),
        std=tuple(options.std),
    )
    return LoaderSplit(plain, info, train_dataset=augmented, num_workers=options.num_workers)
