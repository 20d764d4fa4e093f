"""Does this model fit this data? One check and one wording for every stage: the task first (a
detector needs boxes, a segmenter masks), then the input shape, then as many outputs as the data
has classes."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from shrink.data.splits import BatchOptions, DataInfo
from shrink.errors import ShrinkError
from shrink.tasks import Task

DATA_OF_TASK = {  # what to choose instead, in the line that refuses the wrong kind of data
    Task.CLASSIFICATION: "fmnist, digits or imagefolder:DIR",
    Task.SEGMENTATION: "fmnist-seg or segfolder:DIR",
    Task.DETECTION: "fmnist-det or coco:DIR",
}


def _shape(shape: Sequence[int]) -> str:
    return "x".join(str(d) for d in shape)


def check_fits(info: DataInfo, *, input_shape: Sequence[int] | None = None, num_outputs: int | None = None,
               remedy: str = "", task: Task | None = None) -> None:
    """One line when the data's task, images or classes do not fit the model; `remedy` says what to change."""
    suffix = f": {remedy}" if remedy else ""
    if task is not None and not info.synthetic and Task.parse(info.task) is not task:
        raise ShrinkError(_wrong_task(task, info.name, Task.parse(info.task)))
    if input_shape is not None and tuple(input_shape) != tuple(info.input_shape):
        raise ShrinkError(f"the model takes inputs of shape {_shape(input_shape)} but {info.name} images are "
                          f"{_shape(info.input_shape)}{suffix}")
    if num_outputs is not None and num_outputs != info.num_classes:
        raise ShrinkError(f"the model has {num_outputs} outputs but {info.name} has {info.num_classes} "
                          f"classes{suffix}")


def _wrong_task(task: Task, data: str, data_task: Task) -> str:
    return (f"the model is a {task.value} model but {data} is {data_task.value} data; "
            f"choose {task.value} data: {DATA_OF_TASK[task]}")


def data_task(name: str) -> Task | None:
    """The task a dataset name serves, read from the name alone (None: synthetic, any task)."""
    if name == "synthetic" or name.startswith("synthetic:"):
        return None
    if name == "fmnist-seg" or name.startswith("segfolder:"):
        return Task.SEGMENTATION
    if name == "fmnist-det" or name.startswith("coco:"):
        return Task.DETECTION
    return Task.CLASSIFICATION


def check_data_task(name: str, task: Task) -> None:
    """Data of another task is one line before it is read (and before any preprocessing is
    applied to it, whose own complaint would hide the real mistake)."""
    served = data_task(name)
    if served is not None and served is not task:
        raise ShrinkError(_wrong_task(task, name, served))


def check_model_fits(model: nn.Module, split, device: str = "cpu", task: Task = Task.CLASSIFICATION) -> None:
    """Run one batch of `split` through `model` (left in the mode it was in): data of another task,
    an input the model cannot take, or a head of the wrong size, is one line before any long work."""
    check_fits(split.info, task=task)
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
    check_fits(split.info, num_outputs=_classes_out(out, task, getattr(model, "output_names", None)))


def _classes_out(out, task: Task, names: Sequence[str] | None) -> int:
    """How many classes the model's outputs score (a detector's: the last axis of its cls_logits)."""
    if task is Task.DETECTION:
        named = dict(zip(names or (), out if isinstance(out, (tuple, list)) else ()))
        if "cls_logits" not in named:
            raise ShrinkError(f"the detector returns no output named cls_logits (its outputs: {list(named) or 'unnamed'})")
        return int(named["cls_logits"].shape[-1])
    expected = {Task.CLASSIFICATION: 2, Task.SEGMENTATION: 4}[task]
    if not isinstance(out, torch.Tensor) or out.ndim != expected:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        wanted = "(batch, classes)" if task is Task.CLASSIFICATION else "(batch, classes, height, width)"
        raise ShrinkError(f"the model returns outputs of shape {shape}, not {wanted}")
    return int(out.shape[1])
