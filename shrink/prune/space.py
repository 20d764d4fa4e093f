"""The widths a model's groups may take, and which groups set each layer's input and output width.

This is what a latency table is measured over (shrink.bench.layers) and what the latency allocator
chooses in (shrink.prune.budget). It holds no timing: a table is data handed to the prune stage.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch.nn as nn

from shrink.prune.selection import Ranked, allowed_keeps

WIDTH_LAYER_TYPES = ("CONV", "DEPTHWISE_CONV", "LINEAR")


@dataclass(frozen=True)
class GroupWidths:
    """One prunable group: its current width and every width it may keep, in units and channels."""

    root: str
    width: int  # channels now
    units: tuple[int, ...]  # unit counts it may keep, ascending; the last is all of them
    channels: tuple[int, ...]  # the same, in channels


@dataclass(frozen=True)
class LayerAxes:
    """Which group sets a conv/linear layer's input and output channels, and how many of them."""

    name: str
    in_group: str | None
    in_share: int  # input channels of the layer that belong to in_group
    out_group: str | None
    out_share: int
    depthwise: bool = False  # its input width is its output width


@dataclass(frozen=True)
class WidthSpace:
    structure: str  # hash of the model's modules and parameter shapes and the input shape
    groups: tuple[GroupWidths, ...]
    layers: tuple[LayerAxes, ...]

    def group(self, root: str) -> GroupWidths:
        for g in self.groups:
            if g.root == root:
                return g
        raise KeyError(root)


def structure_hash(model: nn.Module, input_shape: tuple[int, ...]) -> str:
    """What a latency table is tied to: every module's type and every parameter's name and shape."""
    h = hashlib.sha256(repr(tuple(input_shape[1:])).encode())
    for name, module in model.named_modules():
        h.update(f"{name}:{type(module).__name__};".encode())
    for name, p in model.named_parameters():
        h.update(f"{name}{tuple(p.shape)};".encode())
    return h.hexdigest()[:16]


def width_space(ranked: list[Ranked], max_layer_ratio: float, round_to: int, structure: str) -> WidthSpace:
    """The space of `ranked` groups under the config's max_layer_ratio and round_to."""
    groups, axes = [], {}
    for r in ranked:
        units = allowed_keeps(r, max_layer_ratio, round_to)
        groups.append(GroupWidths(r.name, r.group.width, tuple(units), tuple(r.channels(u) for u in units)))
        for m in r.group.members:
            if m.optype not in WIDTH_LAYER_TYPES:
                continue
            entry = axes.setdefault(m.name, {"name": m.name, "in_group": None, "in_share": 0, "out_group": None,
                                             "out_share": 0, "depthwise": False})
            side = "out" if m.axis == "out" else "in"
            entry[f"{side}_group"], entry[f"{side}_share"] = r.name, len(m.idxs)
            if m.optype == "DEPTHWISE_CONV":
                entry.update(depthwise=True, in_group=r.name, in_share=len(m.idxs))
    return WidthSpace(structure, tuple(groups), tuple(LayerAxes(**a) for a in axes.values()))
