"""In-memory and on-disk image splits that yield normalized (x, y) batches.

Both kinds share one interface: `info`, `len()`, and `batches(...)`, which draws the index order
from a sampler (a DistributedSampler under torchrun) so every process sees its own shard. Both
batch exactly as `batch_indices(len(split), options)` says, so a caller can tell which images a
batch holds (the training loop uses it to look up teacher logits computed once).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Protocol

import torch
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, SequentialSampler, Subset

from shrink.data.preprocessing import Preprocessing, native
from shrink.errors import ShrinkError
from shrink.tasks import Task


@dataclass(frozen=True)
class DataInfo:
    name: str
    classes: tuple[str, ...]
    in_chans: int
    image_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    synthetic: bool = False  # True: random inputs, good for latency only
    # How a decoded image became an input (resize, crop, ...); None: images already at image_size.
    preprocessing: Preprocessing | None = None
    # A shrink.tasks.Task value: what the labels are (class ids, per-pixel masks, or boxes).
    task: str = "classification"
    # Where the data came from, in one line a report can print (e.g. how a composed set was made).
    note: str | None = None

    def __post_init__(self) -> None:
        Task.parse(self.task)  # a typo here would silently score masks or boxes as class ids

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def contract(self) -> Preprocessing:
        """The preprocessing record every figure measured on this data used: what ships."""
        return self.preprocessing or native(self.in_chans, self.image_size, self.mean, self.std)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.in_chans, *self.image_size)


@dataclass(frozen=True)
class BatchOptions:
    batch_size: int = 256
    shuffle: bool = False
    augment: bool = False
    seed: int = 0
    epoch: int = 0  # reshuffles per epoch with the same seed
    device: str = "cpu"
    rank: int = 0
    world_size: int = 1
    drop_last: bool = False

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ShrinkError(f"batch size must be >= 1, got {self.batch_size}")


class ImageSplit(Protocol):
    """What every kind of split offers (TensorSplit, LoaderSplit, and wrappers such as the run's
    ProgressSplit): a stage may call any of these on any split."""

    info: DataInfo

    def __len__(self) -> int: ...

    def subset(self, indices: torch.Tensor) -> "ImageSplit":
        """The images at `indices`, in that order."""
        ...

    def to(self, device: str) -> "ImageSplit":
        """The same split, with its batches produced where `device` can use them fastest."""
        ...

    def batches(self, options: BatchOptions) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(x, y) for the images of each `batch_indices(len(self), options)` entry, in that order."""
        ...


def make_sampler(dataset_len: int, options: BatchOptions):
    if options.world_size > 1:
        sampler = DistributedSampler(
            range(dataset_len),
            num_replicas=options.world_size,
            rank=options.rank,
            shuffle=options.shuffle,
            seed=options.seed,
            drop_last=options.drop_last,
        )
        sampler.set_epoch(options.epoch)
        return sampler
    if options.shuffle:
        gen = torch.Generator().manual_seed(options.seed * 100_003 + options.epoch)
        return RandomSampler(range(dataset_len), generator=gen)
    return SequentialSampler(range(dataset_len))


def batch_indices(dataset_len: int, options: BatchOptions) -> list[torch.Tensor]:
    """The dataset indices of every batch that `batches(options)` yields, in order."""
    order = torch.tensor(list(iter(make_sampler(dataset_len, options))), dtype=torch.long)
    chunks = list(torch.split(order, options.batch_size))
    if options.drop_last and chunks and len(chunks[-1]) < options.batch_size:
        chunks.pop()
    return chunks


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random crop with padding (4 px at 28-32 px, scaled with size) and horizontal flip, per
    image, in one gather."""
    n, c, h, w = x.shape
    pad = max(1, min(h, w) // 7)
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n, 1), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (n, 1), generator=gen)
    rows = dy + torch.arange(h)
    cols = dx + torch.arange(w)
    flip = torch.rand(n, 1, generator=gen) < 0.5
    cols = torch.where(flip, cols.flip(1), cols)  # reversed columns = horizontal flip
    dev = x.device
    n_idx = torch.arange(n, device=dev).view(n, 1, 1, 1)
    c_idx = torch.arange(c, device=dev).view(1, c, 1, 1)
    return padded[n_idx, c_idx, rows.to(dev).view(n, 1, h, 1), cols.to(dev).view(n, 1, 1, w)]


def stored_targets(labels: torch.Tensor, task: str) -> torch.Tensor:
    """The labels as a TensorSplit holds them: class ids as int64; segmentation masks (N, H, W) as
    uint8 when they come so (6000 masks of 128x128 take 98 MB, not 786 MB as int64; batches turn them
    into int64); detection targets (N, MAX, 5) rows of (label, x1, y1, x2, y2) as float32, because
    box corners are fractional."""
    if task == "detection":
        return labels.float()
    if task == "segmentation" and labels.dtype == torch.uint8:
        return labels
    return labels.long()


class TensorSplit:
    """A whole split held as uint8 images (N, C, H, W) and its labels: int64 class ids, or, by
    `info.task`, per-pixel masks or padded box rows (`stored_targets`)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, info: DataInfo) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ShrinkError(f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        if len(images) != len(labels):
            raise ShrinkError(f"{len(images)} images but {len(labels)} labels")
        self.images, self.labels, self.info = images, stored_targets(labels, info.task), info

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, indices: torch.Tensor) -> "TensorSplit":
        indices = indices.to(self.images.device)
        return TensorSplit(self.images[indices], self.labels[indices], self.info)

    def to(self, device: str) -> "TensorSplit":
        """The same split held on `device` (a GPU keeps all of Fashion-MNIST in 50 MB)."""
        return TensorSplit(self.images.to(device), self.labels.to(device), self.info)

    def batches(self, options: BatchOptions) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        mean = torch.tensor(self.info.mean, device=options.device).view(1, -1, 1, 1)
        std = torch.tensor(self.info.std, device=options.device).view(1, -1, 1, 1)
        gen = torch.Generator().manual_seed(options.seed * 7919 + options.epoch)
        if options.augment and self.info.task != "classification":
            # the crop and flip move pixels but not the masks or boxes that describe them
            raise ShrinkError(f"augmentation shifts and flips images only; {self.info.name} has "
                              f"{self.info.task} targets, which it would leave misaligned")
        for idx in batch_indices(len(self), options):
            idx = idx.to(self.images.device)
            x = self.images[idx].to(options.device, non_blocking=True).float().div_(255.0)
            if options.augment:
                x = _augment(x, gen)
            y = self.labels[idx].to(options.device, non_blocking=True)
            yield (x - mean) / std, (y.long() if y.dtype == torch.uint8 else y)


class LoaderSplit:
    """A split read from disk through a torch Dataset that already returns normalized tensors."""

    def __init__(self, dataset, info: DataInfo, *, train_dataset=None, num_workers: int = 2) -> None:
        self.dataset, self.info, self.num_workers = dataset, info, num_workers
        self.train_dataset = train_dataset or dataset  # same files, with augmentation transforms

    def __len__(self) -> int:
        return len(self.dataset)

    def subset(self, indices: torch.Tensor) -> "LoaderSplit":
        idx = indices.tolist()
        return LoaderSplit(
            Subset(self.dataset, idx), self.info, train_dataset=Subset(self.train_dataset, idx), num_workers=self.num_workers
        )

    def to(self, device: str) -> "LoaderSplit":
        """Itself: images are decoded from disk batch by batch, and each batch goes to the device
        `batches(options)` names, so there is nothing to move ahead of time."""
        return self

    def batches(self, options: BatchOptions) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        dataset = self.train_dataset if options.augment else self.dataset
        loader = DataLoader(
            dataset,
            batch_sampler=[idx.tolist() for idx in batch_indices(len(dataset), options)],
            num_workers=self.num_workers,
            pin_memory=options.device.startswith("cuda"),
        )
        try:
            for x, y in loader:
                yield x.to(options.device, non_blocking=True), y.to(options.device, non_blocking=True)
        except ShrinkError as exc:
            raise ShrinkError(worker_error_line(exc)) from exc


def worker_error_line(exc: ShrinkError) -> str:
    """The one line of a ShrinkError raised in a DataLoader worker (an image that cannot be read):
    it comes back with the worker's traceback in its message, and its own line last."""
    text = str(exc).strip()
    if "DataLoader worker" not in text:
        return text
    return text.splitlines()[-1].split("ShrinkError: ", 1)[-1]


def train_val_split(split, val_fraction: float, seed: int = 0):
    """Hold out a fixed-seed fraction of a training split for choices (early stopping etc.), so the
    test split is never used to choose anything."""
    if not 0.0 < val_fraction < 1.0:
        raise ShrinkError(f"validation fraction must be in (0, 1), got {val_fraction}")
    n = len(split)
    n_val = max(1, int(round(n * val_fraction)))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return split.subset(order[n_val:]), split.subset(order[:n_val])
