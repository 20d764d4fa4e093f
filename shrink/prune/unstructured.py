"""Unstructured magnitude pruning: individual weights set to zero. Not structural pruning.

The seed documents call mask pruning "structured"; it is not. Zeroing single weights keeps every
tensor's shape, so dense runtimes (onnxruntime, cuDNN, oneDNN) do exactly the same work and run no
faster; the file only gets smaller once compressed (zeros compress well). docs/pruning.md has the
measured onnxruntime latency next to structural pruning (benchmarks/prune_unstructured.py).

The mask is applied to the weights directly (folded, not kept as a `weight_orig`/`weight_mask`
reparametrization the way torch.nn.utils.prune keeps it until `prune.remove`), so the result is a
plain model with plain state_dict keys. The threshold comes from `kthvalue`, which is linear time;
torch.nn.utils.prune's top-k takes seconds on a ResNet.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from shrink.errors import ShrinkValueError
from shrink.prune.groups import ignored_by

LABEL = "unstructured magnitude pruning (zeroed weights, same shapes: no speedup on dense runtimes)"
SCOPES = ("global", "layer")


@dataclass(frozen=True)
class LayerSparsity:
    name: str
    zeros: int
    total: int

    @property
    def sparsity(self) -> float:
        return self.zeros / self.total if self.total else 0.0


@dataclass(frozen=True)
class SparsityReport:
    target: float
    scope: str
    layers: tuple[LayerSparsity, ...]
    label: str = LABEL

    @property
    def zeros(self) -> int:
        return sum(layer.zeros for layer in self.layers)

    @property
    def total(self) -> int:
        return sum(layer.total for layer in self.layers)

    @property
    def sparsity(self) -> float:
        """Share of zero weights over the pruned conv/linear weights."""
        return self.zeros / self.total if self.total else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": "unstructured",
            "label": self.label,
            "target": self.target,
            "scope": self.scope,
            "sparsity": self.sparsity,
            "zeros": self.zeros,
            "total": self.total,
            "layers": [{"name": x.name, "zeros": x.zeros, "total": x.total} for x in self.layers],
        }


def prunable_weights(model: nn.Module, ignore: tuple[str, ...] = ()) -> list[tuple[str, nn.Module]]:
    return [
        (name, m)
        for name, m in model.named_modules()
        if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear)) and not ignored_by(name, ignore)
    ]


def magnitude_prune(
    model: nn.Module, sparsity: float, *, scope: str = "global", ignore: tuple[str, ...] = ()
) -> tuple[nn.Module, SparsityReport]:
    """A copy of `model` with the `sparsity` share of its smallest conv/linear weights set to zero
    (ranked over all of them, or per layer). `model` is not changed."""
    if not 0.0 < sparsity < 1.0:
        raise ShrinkValueError(f"sparsity must be in (0, 1), got {sparsity}")
    if scope not in SCOPES:
        raise ShrinkValueError(f"unknown unstructured scope {scope!r}; valid names: {', '.join(SCOPES)}")
    pruned = copy.deepcopy(model)
    targets = prunable_weights(pruned, ignore)
    if not targets:
        raise ShrinkValueError("the model has no conv or linear weights to prune")
    with torch.no_grad():
        if scope == "global":
            threshold = _threshold(torch.cat([m.weight.detach().abs().reshape(-1) for _, m in targets]), sparsity)
            for _, m in targets:
                m.weight.masked_fill_(m.weight.abs() <= threshold, 0.0)
        else:
            for _, m in targets:
                m.weight.masked_fill_(m.weight.abs() <= _threshold(m.weight.abs().reshape(-1), sparsity), 0.0)
    return pruned, sparsity_report(pruned, targets, sparsity, scope)


def _threshold(magnitudes: torch.Tensor, sparsity: float) -> float:
    """The magnitude at or below which `sparsity` of the values lie (-1 when none should go)."""
    k = int(round(sparsity * magnitudes.numel()))
    return float(torch.kthvalue(magnitudes, k).values) if k > 0 else -1.0


def sparsity_report(model: nn.Module, targets, target: float, scope: str) -> SparsityReport:
    layers = tuple(
        LayerSparsity(name, int((m.weight == 0).sum()), m.weight.numel()) for name, m in targets
    )
    return SparsityReport(target=target, scope=scope, layers=layers)


def zero_fraction(model: nn.Module) -> float:
    """Share of exactly-zero values over all parameters."""
    with torch.no_grad():
        zeros = sum(int((p == 0).sum()) for p in model.parameters())
        total = sum(p.numel() for p in model.parameters())
    return zeros / total if total else 0.0
