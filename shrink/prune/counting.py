"""MACs, parameters and per-layer widths of a model, and the example inputs its forward passes use.

MACs come from torch-pruning's counter (the one behind its published figures, e.g. ResNet-50 at
224x224: 4.12 GMACs), so our numbers compare with theirs.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Iterator

import torch
import torch.nn as nn
import torch_pruning as tp
from torch_pruning.utils import op_counter

from shrink.errors import ShrinkError
from shrink.param_count import count_params
from shrink.prune.plan import Counts

WIDTH_TYPES = (
    nn.modules.conv._ConvNd,
    nn.Linear,
    nn.modules.batchnorm._BatchNorm,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.MultiheadAttention,
    nn.PReLU,
    nn.Embedding,
)


def as_inputs(example_inputs) -> tuple[torch.Tensor, ...]:
    """(x,) for a tensor, the tuple itself for a tuple/list of tensors; detached, on the CPU."""
    if isinstance(example_inputs, torch.Tensor):
        example_inputs = (example_inputs,)
    if not isinstance(example_inputs, (tuple, list)) or not all(isinstance(x, torch.Tensor) for x in example_inputs):
        raise ShrinkError("example_inputs must be a tensor or a tuple of tensors")
    return tuple(x.detach().cpu() for x in example_inputs)


def count(model: nn.Module, example_inputs: tuple, *, owned: bool = False) -> Counts:
    """MACs per sample (one forward pass over `example_inputs`) and parameters.

    torch-pruning's counter deep-copies the model first; for a throwaway copy we already own
    (`owned=True`) its hooks are attached to the model itself, which saves that copy.
    """
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            macs = _count_in_place(model, example_inputs) if owned else tp.utils.count_ops_and_params(model, example_inputs)[0]
    except Exception as exc:  # noqa: BLE001 - a forward that fails is reported to the caller
        raise ShrinkError(f"the model's forward pass failed while counting MACs: {type(exc).__name__}: {exc}") from exc
    return Counts(macs=int(macs), params=count_params(model))


def _count_in_place(model: nn.Module, example_inputs: tuple) -> float:
    model.eval()
    with mac_counter(model) as counter:
        model(*example_inputs)
    return counter.macs


class MacCounter:
    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.macs: float | None = None


@contextlib.contextmanager
def mac_counter(model: nn.Module) -> Iterator[MacCounter]:
    """Count, per sample, the MACs of the forward pass run inside the block, with torch-pruning's
    counter hooks; `counter.macs` is set on exit. The hooks and counter attributes are removed
    again, so this can ride along another forward pass (the graph trace) of the user's own model."""
    counter = MacCounter(model)
    op_counter.reset_flops_count(model)
    op_counter.start_flops_count(model, ost=None, verbose=False, ignore_list=[])
    try:
        yield counter
        if getattr(model, "__batch_counter__", 0):
            counter.macs = op_counter.compute_average_flops_cost(model)[0]
    finally:
        op_counter.stop_flops_count(model)
        if hasattr(model, "__batch_counter__"):
            delattr(model, "__batch_counter__")


def module_width(module: nn.Module) -> tuple[int, int]:
    """(in, out) channels of a prunable module."""
    if isinstance(module, nn.modules.conv._ConvNd):
        return module.in_channels, module.out_channels
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    if isinstance(module, nn.LayerNorm):
        n = module.normalized_shape[-1]
    elif isinstance(module, nn.GroupNorm):
        n = module.num_channels
    elif isinstance(module, nn.MultiheadAttention):
        n = module.embed_dim
    elif isinstance(module, nn.PReLU):
        n = module.num_parameters
    elif isinstance(module, nn.Embedding):
        n = module.embedding_dim
    else:  # batch and instance norm
        n = module.num_features
    return n, n


def widths(model: nn.Module, param_dims: dict[str, int]) -> dict[str, tuple[str, tuple[int, int]]]:
    """name -> (kind, (in, out)) for every prunable module and for the named bare parameters."""
    out = {name: (type(m).__name__, module_width(m)) for name, m in model.named_modules() if isinstance(m, WIDTH_TYPES)}
    params = dict(model.named_parameters())
    for name, dim in param_dims.items():
        n = params[name].shape[dim]
        out[name] = ("Parameter", (n, n))
    return out
