"""Tracing a model into torch-pruning's DependencyGraph, with two repairs on top.

1. torch-pruning issue #532: recent torch exposes a negative `dim` in the private autograd field
   `_saved_dim` as an unsigned 64-bit number (2**64-1 for dim=-1). torch-pruning compares it with
   a small constant, so a `cat(dim=-1)` is mistaken for a channel concat and group traversal can
   shift indices around a cycle forever. We present the real, non-negative dim to torch-pruning.
2. Index-mapping failures (shufflenet's channel shuffle raises ZeroDivisionError while a reshape
   is mapped) no longer abort the whole build: the failing nodes are recorded as broken, and
   every group that passes through one is left whole later (see groups.py).
"""

from __future__ import annotations

import functools
import traceback
import warnings
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch_pruning as tp
from torch_pruning import ops
from torch_pruning.dependency import index_mapping

from shrink.errors import ShrinkError

UNSIGNED_NEGATIVE = 2**63  # a `_saved_dim` at or above this is a negative dim read as unsigned

# node type -> torch-pruning's function that sets that node's index mapping
MAPPING_UPDATERS = {
    ops.OPTYPE.CONCAT: index_mapping.update_concat_index_mapping,
    ops.OPTYPE.SPLIT: index_mapping.update_split_index_mapping,
    ops.OPTYPE.RESHAPE: index_mapping.update_reshape_index_mapping,
    ops.OPTYPE.UNBIND: index_mapping.update_unbind_index_mapping,
    ops.OPTYPE.EXPAND: index_mapping.update_expand_index_mapping,
    ops.OPTYPE.SLICE: index_mapping.update_slice_index_mapping,
}


WIDTH_TYPES = {  # node types whose width torch-pruning can read
    ops.OPTYPE.CONV, ops.OPTYPE.DEPTHWISE_CONV, ops.OPTYPE.LINEAR, ops.OPTYPE.BN, ops.OPTYPE.LN, ops.OPTYPE.GN,
    ops.OPTYPE.IN, ops.OPTYPE.PRELU, ops.OPTYPE.EMBED, ops.OPTYPE.MHA, ops.OPTYPE.PARAMETER,
}
DIM_MAPPED_TYPES = (ops.OPTYPE.CONCAT, ops.OPTYPE.SPLIT, ops.OPTYPE.SLICE, ops.OPTYPE.UNBIND)
# Operations with no weights that carry channels on to what they feed: a layer whose output reaches
# a model output through only these (a detector's view/permute/reshape/cat) writes that output.
PASS_THROUGH_TYPES = (ops.OPTYPE.RESHAPE, ops.OPTYPE.CONCAT, ops.OPTYPE.ELEMENTWISE, ops.OPTYPE.SLICE,
                      ops.OPTYPE.SPLIT, ops.OPTYPE.UNBIND, ops.OPTYPE.EXPAND)


class _SignedDimGradFn:
    """A grad_fn seen through a corrected `_saved_dim`; every other attribute is the real one's."""

    def __init__(self, grad_fn, dim: int) -> None:
        self._grad_fn = grad_fn
        self._saved_dim = dim

    def __getattr__(self, name: str):
        return getattr(self._grad_fn, name)


def _real_grad_fn(node):
    grad_fn = node.grad_fn
    return grad_fn._grad_fn if isinstance(grad_fn, _SignedDimGradFn) else grad_fn


def _output_ndim(grad_fn) -> int | None:
    sizes = getattr(grad_fn, "_saved_self_sym_sizes", None)
    if sizes is not None:
        return len(sizes)
    metadata = getattr(grad_fn, "_input_metadata", None)  # the forward output's shape
    if metadata:
        return len(metadata[0].shape)
    return None


def signed_dim(raw_dim: int, ndim: int) -> int:
    """The non-negative dim that an unsigned `_saved_dim` stands for (2**64-1 -> ndim-1)."""
    return raw_dim - 2**64 + ndim if raw_dim >= UNSIGNED_NEGATIVE else raw_dim


def _fix_unsigned_dims(module2node: dict) -> int:
    """Present the real dim of cat/split/slice/unbind nodes (torch-pruning #532). Returns how many."""
    fixed = 0
    for node in module2node.values():
        if node.type not in DIM_MAPPED_TYPES:
            continue
        raw = getattr(node.grad_fn, "_saved_dim", None)
        if not isinstance(raw, int) or raw < UNSIGNED_NEGATIVE:
            continue
        ndim = _output_ndim(node.grad_fn)
        if ndim is None:
            continue
        dim = signed_dim(raw, ndim)
        if node.type in (ops.OPTYPE.CONCAT, ops.OPTYPE.SPLIT) and dim == ndim - 1:
            # A channels-last cat/split: torch-pruning maps only dim 1, so present it as such; its
            # own size check still rejects a concat whose sizes do not add up along channels.
            dim = 1
        node.grad_fn = _SignedDimGradFn(node.grad_fn, dim)
        if isinstance(node.module, ops._SliceOp):
            node.module.dim = dim
        fixed += 1
    return fixed


@dataclass(frozen=True)
class BrokenNode:
    """A node whose index mapping torch-pruning could not compute."""

    label: str  # e.g. "reshape (ViewBackward0)"
    error: str


class ShrinkGraph(tp.DependencyGraph):
    """torch-pruning's DependencyGraph with the repairs described in this module's docstring."""

    def __init__(self) -> None:
        super().__init__()
        self.broken_nodes: dict[object, BrokenNode] = {}  # tp Node -> why its mapping failed
        self.output_nodes: set = set()  # nodes whose result is a model output, or reaches one unchanged
        self.fixed_dims = 0
        self._outputs: list = []

    def _trace(self, model, example_inputs, forward_fn, output_transform):
        module2node = super()._trace(model, example_inputs, forward_fn, output_transform)
        self.fixed_dims = _fix_unsigned_dims(module2node)
        output_grad_fns = {o.grad_fn for o in tp.utils.flatten_as_list(self._outputs) if o.grad_fn is not None}
        self.output_nodes = _writers_of_outputs({n for n in module2node.values() if _real_grad_fn(n) in output_grad_fns})
        return module2node

    def _keep_outputs(self, outputs):
        self._outputs = outputs
        return outputs

    def build(self, model: nn.Module, example_inputs: tuple) -> "ShrinkGraph":
        try:
            self.build_dependency(
                model,
                example_inputs=example_inputs,
                forward_fn=_call,  # torch-pruning's own call retries with the inputs packed: confusing errors
                output_transform=self._keep_outputs,
                verbose=False,
            )
        except Exception as exc:  # noqa: BLE001 - any failure inside torch-pruning is reported below
            if not _raised_in_index_mapping(exc) or not hasattr(self, "module2node"):
                raise ShrinkError(f"torch-pruning could not build the dependency graph: {_describe(exc)}") from exc
            self._map_indices_node_by_node()
        return self

    def _map_indices_node_by_node(self) -> None:
        """Set every node's index mapping on its own, recording the nodes that fail."""
        for node in self.module2node.values():
            updater = MAPPING_UPDATERS.get(node.type)
            if updater is None:
                continue
            try:
                updater(self, node)
            except Exception as exc:  # noqa: BLE001 - a broken node only disables its groups
                self.broken_nodes[node] = BrokenNode(label=node_label(node), error=_describe(exc))

    def name_of(self, module) -> str:
        if isinstance(module, nn.Parameter):
            return self._param_to_name[module]
        return self._module2name.get(module, repr(module))

    def is_named(self, module) -> bool:
        if isinstance(module, nn.Parameter):
            return module in self._param_to_name
        return module in self._module2name

    @functools.cached_property
    def by_name(self) -> dict:
        """name -> module (or bare parameter) for every named node."""
        return {self.name_of(m): m for m in self.module2node if self.is_named(m)}

    @functools.cached_property
    def widest(self) -> int:
        """The largest input or output width of any node with a pruner (a flatten's Linear included)."""
        widths = [1]
        for node in self.module2node.values():
            if node.type in WIDTH_TYPES:
                widths += [w for w in (self.get_out_channels(node), self.get_in_channels(node)) if w]
        return max(widths)


def _writers_of_outputs(outputs: set) -> set:
    """`outputs` and every node whose result reaches one of them through pass-through operations
    only, up to and including the first layer with weights on each path."""
    found = set(outputs)
    frontier = [n for n in outputs if n.type in PASS_THROUGH_TYPES or n.type == ops.OPTYPE.OUTPUT]
    while frontier:
        for source in frontier.pop().inputs:
            if source not in found:
                found.add(source)
                if source.type in PASS_THROUGH_TYPES:
                    frontier.append(source)
    return found


def _call(model: nn.Module, inputs: tuple):
    return model(*inputs)


def node_label(node) -> str:
    grad_fn = getattr(node, "grad_fn", None)
    op = grad_fn.name() if grad_fn is not None and hasattr(grad_fn, "name") else type(node.module).__name__
    return f"{node.type.name.lower()} ({op})"


def _raised_in_index_mapping(exc: BaseException) -> bool:
    frames = traceback.extract_tb(exc.__traceback__)
    return any(frame.filename.endswith("index_mapping.py") for frame in frames)


def _describe(exc: BaseException) -> str:
    """'ZeroDivisionError in update_reshape_index_mapping: integer division or modulo by zero'."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" in {frames[-1].name}" if frames else ""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}{where}" + (f": {message}" if message else "")


def trace_graph(model: nn.Module, example_inputs: tuple) -> ShrinkGraph:
    """Trace `model` (torch-pruning keeps references to its modules). Tracing follows autograd, so
    frozen parameters are made trainable for the trace and frozen again after."""
    model.eval()
    frozen = [p for p in model.parameters() if not p.requires_grad]
    try:
        for p in frozen:
            p.requires_grad_(True)
        with torch.enable_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch-pruning warns about every unwrapped parameter
            return ShrinkGraph().build(model, example_inputs)
    finally:
        for p in frozen:
            p.requires_grad_(False)
