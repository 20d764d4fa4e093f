"""Tiny models and splits built in the tests, so export and quantize tests run in seconds.

Also a model file for the registry: `tests/export/export_fixtures.py:build` works as a MODEL name."""

from __future__ import annotations

import torch
import torch.nn as nn

from shrink.data.splits import DataInfo, TensorSplit
from shrink.models import LoadedModel, ModelSpec

SHAPE = (1, 12, 12)
CLASSES = 4


class TinyResNet(nn.Module):
    """Conv-BN-ReLU, a residual block, global pooling and a classifier: the op mix of a ResNet."""

    def __init__(self, in_chans: int = 1, num_classes: int = CLASSES, width: int = 8) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_chans, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.block = nn.Sequential(nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                                   nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width))
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = torch.relu(x + self.block(x))
        return self.head(x.mean((2, 3)))


def tiny_loaded(seed: int = 0) -> LoadedModel:
    torch.manual_seed(seed)
    model = TinyResNet()
    # Non-trivial BN statistics, so folding BN into the conv is really exercised.
    for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
    spec = ModelSpec(name="tiny", num_classes=CLASSES, in_chans=SHAPE[0], input_size=SHAPE[1:])
    return LoadedModel(model=model.eval(), spec=spec, source="tiny")


def tiny_split(n: int = 64, seed: int = 1, synthetic: bool = False) -> TensorSplit:
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, *SHAPE), generator=gen, dtype=torch.uint8)
    labels = torch.randint(0, CLASSES, (n,), generator=gen)
    info = DataInfo(name="tinydata", classes=tuple(f"c{i}" for i in range(CLASSES)), in_chans=SHAPE[0],
                    image_size=SHAPE[1:], mean=(0.5,), std=(0.25,), synthetic=synthetic)
    return TensorSplit(images, labels, info)


def build(num_classes: int = CLASSES, in_chans: int = 1) -> nn.Module:
    """Factory for `shrink ... tests/export/export_fixtures.py:build`."""
    torch.manual_seed(0)
    return TinyResNet(in_chans=in_chans, num_classes=num_classes)
