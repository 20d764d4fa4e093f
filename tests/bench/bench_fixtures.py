"""Tiny models and fast settings for the bench tests: built here, exported here, no downloads.

A plain module (not conftest.py) so that tests can import it by a name no other test folder uses.
"""

from __future__ import annotations

import warnings
from pathlib import Path

# Small counts keep every end-to-end test well under a second of timing.
FAST = dict(warmup_runs=2, warmup_seconds=0.0, min_runs=6, min_seconds=0.0, block_runs=3, measure_memory=False)


def tiny_convnet(width: int, classes: int = 10):
    import torch.nn as nn

    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        nn.Conv2d(width, width, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(width, classes),
    ).eval()


def export_onnx(module, path: Path, input_shape=(3, 16, 16), device="cpu", dtype=None) -> Path:
    import torch

    dtype = dtype or torch.float32
    module = module.to(device=device, dtype=dtype)
    with warnings.catch_warnings():  # the TorchScript exporter warns that it is deprecated
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (torch.randn(1, *input_shape, device=device, dtype=dtype),),
            str(path),
            dynamo=False,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=17,
        )
    return path
