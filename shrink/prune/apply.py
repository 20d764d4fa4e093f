"""Replaying a plan: physically removing its channels from a copy of the model.

No tracing happens here: each planned layer is cut by torch-pruning's pruning function for its
type, with the plan's dense indices converted to the layer's current numbering. That makes
`apply` fast and lets `load_pruned` rebuild a pruned model from the registry and a JSON plan alone.
"""

from __future__ import annotations

import copy
from bisect import bisect_left, bisect_right

import torch.nn as nn
from torch_pruning import ops
from torch_pruning.pruner import function

from shrink.errors import ShrinkError
from shrink.prune.attention import fix_attention_attributes
from shrink.prune.counting import widths
from shrink.prune.plan import PlanStep, PrunedLayer, PrunePlan


class ChannelTracker:
    """Dense channel indices removed so far, per (layer, axis); converts dense numbering to the
    current one and back."""

    def __init__(self) -> None:
        self._removed: dict[tuple[str, str], list[int]] = {}

    @classmethod
    def after(cls, steps) -> "ChannelTracker":
        tracker = cls()
        for step in steps:
            for group in step.groups:
                for layer in group.layers:
                    tracker.remove((layer.name, layer.axis), layer.removed)
        return tracker

    def removed(self, key: tuple[str, str]) -> list[int]:
        return self._removed.get(key, [])

    def to_current(self, key: tuple[str, str], dense: tuple[int, ...]) -> list[int]:
        gone = self.removed(key)
        return [i - bisect_left(gone, i) for i in dense]

    def to_dense(self, key: tuple[str, str], current: list[int]) -> list[int]:
        gone = self.removed(key)
        out = []
        for c in current:
            d = c
            while True:  # the c-th surviving dense index: shift past every removed one at or below it
                shifted = c + bisect_right(gone, d)
                if shifted == d:
                    break
                d = shifted
            out.append(d)
        return out

    def remove(self, key: tuple[str, str], dense: tuple[int, ...]) -> None:
        gone = self.removed(key)
        overlap = set(gone) & set(dense)
        if overlap:
            raise ShrinkError(f"the plan removes channels {sorted(overlap)[:5]} of {key[0]} ({key[1]}) twice")
        self._removed[key] = sorted(gone + list(dense))


def _fresh_pruner(layer: PrunedLayer):
    # torch-pruning's shared pruner objects carry a mutable pruning_dim; use our own instances
    pruner = type(function.PrunerBox[ops.OPTYPE[layer.optype]])()
    if layer.optype == "PARAMETER":
        pruner.pruning_dim = layer.dim
    elif layer.optype == "LN":
        pruner.pruning_dim = -1
    return pruner


def _parent(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    parent_name, _, attr = name.rpartition(".")
    return (model.get_submodule(parent_name) if parent_name else model), attr


def prune_layer(model: nn.Module, layer: PrunedLayer, idxs: list[int]) -> None:
    """Remove channels `idxs` (current numbering) of one layer, in place."""
    if not idxs:
        return
    pruner = _fresh_pruner(layer)
    try:
        if layer.optype == "PARAMETER":
            parent, attr = _parent(model, layer.name)
            setattr(parent, attr, pruner.prune_out_channels(getattr(parent, attr), idxs))
            return
        module = model.get_submodule(layer.name)
        cut = pruner.prune_out_channels if layer.axis == "out" else pruner.prune_in_channels
        cut(module, idxs)
    except (AttributeError, IndexError, RuntimeError) as exc:
        raise ShrinkError(f"cannot remove channels of {layer.name} ({layer.axis}): {exc}; was the plan made for this model?") from exc


def replay_step(model: nn.Module, step: PlanStep, tracker: ChannelTracker) -> None:
    """Remove one step's channels. Groups of a step never share a channel of a layer, so each
    layer is cut once with the union of its groups' channels (DenseNet's norms belong to dozens of
    groups; cutting them once per group was most of the replay time)."""
    merged: dict[tuple[str, str], PrunedLayer] = {}
    for group in step.groups:
        for layer in group.layers:
            key = (layer.name, layer.axis)
            if key in merged:
                layer = PrunedLayer(layer.name, layer.axis, layer.optype, merged[key].removed + layer.removed, layer.dim)
            merged[key] = layer
    for key, layer in merged.items():
        removed = tuple(sorted(layer.removed))
        prune_layer(model, layer, tracker.to_current(key, removed))
        tracker.remove(key, removed)
    fix_attention_attributes(model, step.num_heads)


def param_dims(plan: PrunePlan) -> dict[str, int]:
    return {w.name: w.dim for w in plan.layers if w.kind == "Parameter"}


def check_widths(model: nn.Module, plan: PrunePlan, which: str) -> None:
    """Every planned layer has its `which` ('before' or 'after') width, or a clear error."""
    try:
        actual = widths(model, param_dims(plan))
    except (KeyError, IndexError, AttributeError) as exc:
        raise ShrinkError(f"the model does not have the plan's layers ({exc}); was the plan made for this model?") from exc
    unknown = [name for name in actual if name not in {w.name for w in plan.layers}]
    if unknown:
        shown = ", ".join(unknown[:4]) + (f" (+{len(unknown) - 4} more)" if len(unknown) > 4 else "")
        raise ShrinkError(f"the model has layers the plan does not know: {shown}; the plan was made for another model")
    for expected in plan.layers:
        if expected.name not in actual:
            raise ShrinkError(f"the model has no layer {expected.name!r}; the plan was made for another model")
        want = getattr(expected, which)
        got = actual[expected.name][1]
        if tuple(got) != tuple(want):
            raise ShrinkError(
                f"layer {expected.name} has widths (in, out) {tuple(got)}, the plan expects {tuple(want)} "
                f"{'before pruning' if which == 'before' else 'after pruning'}; the plan was made for another model"
            )


def apply(model: nn.Module, plan: PrunePlan) -> nn.Module:
    """A new, physically smaller copy of the dense `model` with every step of `plan` removed.
    `model` itself is not changed."""
    check_widths(model, plan, "before")
    pruned = copy.deepcopy(model)
    tracker = ChannelTracker()
    for step in plan.steps:
        replay_step(pruned, step, tracker)
    return pruned


def apply_step(model: nn.Module, plan: PrunePlan) -> nn.Module:
    """A new copy of `model` (already pruned by all but the last step of `plan`, possibly
    fine-tuned since) with the plan's last step removed."""
    if not plan.steps:
        return copy.deepcopy(model)
    pruned = copy.deepcopy(model)
    tracker = ChannelTracker.after(plan.steps[:-1])
    replay_step(pruned, plan.steps[-1], tracker)
    check_widths(pruned, plan, "after")
    return pruned
