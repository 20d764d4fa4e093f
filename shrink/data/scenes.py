"""Segmentation and detection scenes composed from the real Fashion-MNIST, for offline use.

No segmentation or detection dataset ships with the machine, so a scene is made of 1 to 4
Fashion-MNIST items on a black CANVAS x CANVAS canvas:

  - how many items: uniform in MIN_ITEMS..MAX_ITEMS; which: uniform over the split's images (with
    replacement); each is scaled by a factor uniform in SCALE_RANGE (bilinear, aspect kept, side
    round(28 * factor)) and rounded back to uint8;
  - an item's mask is its pixels above MASK_THRESHOLD of its own brightest pixel; the item is cut to
    the extent of its mask (the faint fringe outside is dropped), so its box is exactly that extent;
  - placement: rejection sampling of the top-left corner, PLACEMENT_TRIES tries, until the item's
    box overlaps no box placed before; an item that finds no place is left out (about 1 in 25 of the
    scenes drawn with 4 items end with 3; never with none, as the first item always fits);
  - every draw comes from one numpy generator seeded by the split (SPLIT_SEEDS), scene after scene,
    so the same call gives byte-identical tensors and the first n scenes of any count are the same.

`fmnist-seg`: targets are uint8 masks (N, H, W), 0 background and item label + 1 on the item's mask
pixels (batches give int64). `fmnist-det`: targets are packed rows (label, x1, y1, x2, y2), label
item label + 1 (0 is torchvision's background), boxes xyxy with x2, y2 exclusive
(shrink.data.targets). Both have the 11 classes "background" + Fashion-MNIST's; images are the grey
canvas as 3 equal channels (torchvision's segmenters and detectors take RGB), normalized by
MEAN and STD.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from shrink.data.fmnist import CLASSES as FMNIST_CLASSES
from shrink.data.fmnist import load_fmnist
from shrink.data.splits import DataInfo, TensorSplit
from shrink.data.targets import PADDING_LABEL, pack_targets, targets_to_list
from shrink.errors import ShrinkError

CANVAS = 128
MIN_ITEMS, MAX_ITEMS = 1, 4
SCALE_RANGE = (1.0, 2.0)
MASK_THRESHOLD = 0.25  # a mask pixel is brighter than this fraction of the item's brightest pixel
PLACEMENT_TRIES = 50
SCENES = {"train": 6000, "test": 1000}  # scenes per split by default; ~3 s to compose both on 2 CPUs
SPLIT_SEEDS = {"train": 0, "test": 1}
CLASSES = ("background", *FMNIST_CLASSES)
# Pixel mean and std of the 6000 default train scenes (mostly black canvas), the same per channel.
MEAN = (0.0795,) * 3
STD = (0.2206,) * 3
NAMES = {"segmentation": "fmnist-seg", "detection": "fmnist-det"}
NOTE = (f"composed from Fashion-MNIST: {MIN_ITEMS}-{MAX_ITEMS} items, scaled {SCALE_RANGE[0]:g}-{SCALE_RANGE[1]:g}x, "
        f"on a {CANVAS}x{CANVAS} canvas, not overlapping")

__all__ = ["CLASSES", "MAX_ITEMS", "PADDING_LABEL", "Scenes", "compose_scenes", "load_scenes", "targets_to_list"]


@dataclass(frozen=True)
class Scenes:
    canvas: torch.Tensor  # uint8 (N, CANVAS, CANVAS), grey
    masks: torch.Tensor  # uint8 (N, CANVAS, CANVAS): 0 background, item label + 1 on its mask pixels
    targets: torch.Tensor  # float32 (N, MAX_ITEMS, 5): (label + 1, x1, y1, x2, y2), padding label -1


def _bilinear_matrix(size_in: int, size_out: int) -> np.ndarray:
    """(size_out, size_in) weights of a 1-D bilinear resize with half-pixel centres (as torch's
    align_corners=False and PIL's upscaling): out = M @ in. Separable, so an image is M @ x @ M.T."""
    centres = np.clip((np.arange(size_out) + 0.5) * size_in / size_out - 0.5, 0, size_in - 1)
    low = np.floor(centres).astype(int)
    high = np.minimum(low + 1, size_in - 1)
    frac = centres - low
    weights = np.zeros((size_out, size_in))
    np.add.at(weights, (np.arange(size_out), low), 1 - frac)
    np.add.at(weights, (np.arange(size_out), high), frac)
    return weights


def _scaled_item(item: np.ndarray, scale: float) -> np.ndarray:
    """A square uint8 item resized by `scale` (bilinear, side rounded), rounded back to uint8."""
    weights = _bilinear_matrix(item.shape[0], int(round(item.shape[0] * scale)))
    return np.clip(np.rint(weights @ item.astype(np.float64) @ weights.T), 0, 255).astype(np.uint8)


def _disjoint(box: tuple[int, int, int, int], placed: list[tuple[int, int, int, int]]) -> bool:
    x1, y1, x2, y2 = box
    return all(x2 <= px1 or px2 <= x1 or y2 <= py1 or py2 <= y1 for px1, py1, px2, py2 in placed)


def compose_scenes(items: torch.Tensor, labels: torch.Tensor, count: int, seed: int) -> Scenes:
    """`count` scenes from `items` (M, 28, 28) uint8 with class ids `labels` (M,); deterministic
    in (items, labels, count, seed)."""
    if count < 1:
        raise ShrinkError(f"the number of scenes must be >= 1, got {count}")
    items_np = items.reshape(len(items), *items.shape[-2:]).numpy()
    labels_np = labels.numpy()
    rng = np.random.default_rng(seed)
    canvas = np.zeros((count, CANVAS, CANVAS), dtype=np.uint8)
    masks = np.zeros((count, CANVAS, CANVAS), dtype=np.uint8)
    all_boxes, all_labels = [], []
    for n in range(count):
        placed: list[tuple[int, int, int, int]] = []
        scene_labels: list[int] = []
        for _ in range(int(rng.integers(MIN_ITEMS, MAX_ITEMS + 1))):
            index = int(rng.integers(len(items_np)))
            patch = _scaled_item(items_np[index], float(rng.uniform(*SCALE_RANGE)))
            if patch.max() == 0:  # a blank image has no item to show
                continue
            mask = patch > MASK_THRESHOLD * patch.max()
            rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
            crop = np.s_[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1]
            patch, mask = patch[crop], mask[crop]
            h, w = patch.shape
            for _ in range(PLACEMENT_TRIES):
                x, y = int(rng.integers(CANVAS - w + 1)), int(rng.integers(CANVAS - h + 1))
                if _disjoint((x, y, x + w, y + h), placed):
                    break
            else:
                continue
            canvas[n, y: y + h, x: x + w] = patch
            masks[n, y: y + h, x: x + w][mask] = labels_np[index] + 1
            placed.append((x, y, x + w, y + h))
            scene_labels.append(int(labels_np[index]) + 1)
        all_boxes.append(torch.tensor(placed, dtype=torch.float32).reshape(-1, 4))
        all_labels.append(torch.tensor(scene_labels, dtype=torch.int64))
    return Scenes(torch.from_numpy(canvas), torch.from_numpy(masks), pack_targets(all_boxes, all_labels, MAX_ITEMS))


def load_scenes(task: str, split: str, data_dir: str | Path | None = None, count: int | None = None) -> TensorSplit:
    """One split of `fmnist-seg` (task "segmentation") or `fmnist-det` ("detection"), composed from
    the Fashion-MNIST split of the same name; `count` scenes (default SCENES[split])."""
    if task not in NAMES:
        raise ShrinkError(f"composed Fashion-MNIST scenes are for {' or '.join(NAMES)}, not {task!r}")
    if split not in SPLIT_SEEDS:
        raise ShrinkError(f"{NAMES[task]} has splits {sorted(SPLIT_SEEDS)}, not {split!r}")
    source = load_fmnist(split, data_dir)
    scenes = compose_scenes(source.images, source.labels, SCENES[split] if count is None else count, SPLIT_SEEDS[split])
    info = DataInfo(name=NAMES[task], classes=CLASSES, in_chans=3, image_size=(CANVAS, CANVAS), mean=MEAN, std=STD,
                    task=task, note=NOTE)
    # Three equal channels as a view of the grey canvas: a third of the memory, same batches.
    images = scenes.canvas.unsqueeze(1).expand(-1, 3, -1, -1)
    return TensorSplit(images, scenes.masks if task == "segmentation" else scenes.targets, info)
