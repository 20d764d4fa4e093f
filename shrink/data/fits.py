"""Does this model fit this data? One check and one wording for every stage: the input shape first,
then as many outputs as the data has classes."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from shrink.data.splits import BatchOptions, DataInfo
from shrink.errors import ShrinkError


def _shape(shape: Sequence[int]) -> str:
    return "x".join(str(d) for d in shape)


def check_fits(info: DataInfo, *, input_shape: Sequence[int] | None = None, num_outputs: int | None = None,
               remedy: str = "") -> None:
    """One line when the data's images or classes do not fit the model; `remedy` says what to change."""
    suffix = f": {remedy}" if remedy else ""
    if input_shape is not None and tuple(input_shape) != tuple(info.input_shape):
        raise ShrinkError(f"the model takes inputs of shape {_shape(input_shape)} but {info.name} images are "
                          f"{_shape(info.input_shape)}{suffix}")
    if num_outputs is not None and num_outputs != info.num_classes:
        raise ShrinkError(f"the model has {num_outputs} outputs but {info.name} has {info.num_classes} "
                          f"classes{suffix}")


def check_model_fits(model: nn.Module, split, device: str = "cpu") -> None:
    """Run one batch of `split` through `model` (left in the mode it was in): an input the model
    cannot take, or a head of the wrong size, is one line before any long work."""
    x, _ = next(iter(split.batches(BatchOptions(batch_size=2, device=device))))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model.to(device)(x)
    except RuntimeError as exc:
        raise ShrinkError(f"the model cannot take {split.info.name} inputs of shape {_shape(x.shape[1:])}: "
                          f"{str(exc).splitlines()[0]}") from exc
    finally:
        model.train(was_training)
    if out.ndim != 2:
        raise ShrinkError(f"the model returns outputs of shape {tuple(out.shape)}, not (batch, classes)")
    check_fits(split.info, num_outputs=out.shape[1])
