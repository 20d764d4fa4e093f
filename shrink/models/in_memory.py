"""A plain `nn.Module` as the stages take it: the Python API's way in for a model in memory.

    from shrink.export import ExportConfig, export
    export(my_module, ExportConfig(), "m.onnx", input_shape=(3, 64, 64))

`as_loaded` wraps it in the LoadedModel the stages read (its spec names no registry entry, so
nothing can rebuild it from a file: it is in memory only), with the number of outputs found by
running one example.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from shrink.errors import ShrinkValueError
from shrink.models.loading import LoadedModel
from shrink.models.spec import ModelSpec


def input_shape_of(input_shape: Sequence[int] | None, example_input: torch.Tensor | None) -> tuple[int, int, int]:
    """(C, H, W) from an input shape, or from an example batch (N, C, H, W)."""
    if example_input is not None:
        if not isinstance(example_input, torch.Tensor) or example_input.ndim != 4:
            raise ShrinkValueError("example_input must be a tensor of shape (N, C, H, W)")
        shape = tuple(example_input.shape[1:])
        if input_shape is not None and tuple(input_shape) != shape:
            raise ShrinkValueError(f"input_shape {tuple(input_shape)} does not match example_input {shape}")
        return shape  # type: ignore[return-value]
    if input_shape is None or len(tuple(input_shape)) != 3 or min(input_shape) < 1:
        raise ShrinkValueError(f"a plain nn.Module needs input_shape=(C, H, W) or example_input=(N, C, H, W); "
                               f"got {input_shape!r}")
    return tuple(int(d) for d in input_shape)  # type: ignore[return-value]


def as_loaded(model: LoadedModel | nn.Module, *, input_shape: Sequence[int] | None = None,
              example_input: torch.Tensor | None = None) -> LoadedModel:
    """`model` itself when it is a LoadedModel; a plain module wrapped with its input shape."""
    if isinstance(model, LoadedModel):
        return model
    if not isinstance(model, nn.Module):
        raise ShrinkValueError(f"expected a torch.nn.Module or a shrink LoadedModel, got {type(model).__name__}")
    c, h, w = input_shape_of(input_shape, example_input)
    was_training = model.training
    with torch.no_grad():
        out = model.eval()(torch.zeros(2, c, h, w) if example_input is None else example_input)
    model.train(was_training)
    classes = int(out.shape[-1]) if isinstance(out, torch.Tensor) and out.ndim == 2 else 1
    spec = ModelSpec(name=f"in-memory:{type(model).__name__}", num_classes=classes, in_chans=c, input_size=(h, w))
    return LoadedModel(model=model, spec=spec, source=f"in-memory {type(model).__name__}")
