"""Channel importance: which channels of a group matter least.

Every criterion is one of torch-pruning's, scoring a whole coupled group (all layers that lose the
channel), except `random`, which is seeded here so plans are reproducible. Scores are normalized
per group (divided by the group mean), so global scope can compare them across groups.
"""

from __future__ import annotations

from typing import Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch_pruning as tp

from shrink.errors import ShrinkError, ShrinkValueError
from shrink.prune.config import IMPORTANCE_NAMES, PruneConfig


class SeededRandomImportance(tp.importance.Importance):
    """Random scores from a private generator: the same seed gives the same plan."""

    def __init__(self, seed: int) -> None:
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, group, **kwargs) -> torch.Tensor:
        return torch.rand(len(group[0].idxs), generator=self.generator)


def make_importance(name: str, seed: int = 0) -> tp.importance.Importance:
    imp = tp.importance
    factories = {
        "l1": lambda: imp.GroupMagnitudeImportance(p=1),
        "l2": lambda: imp.GroupMagnitudeImportance(p=2),
        "taylor": lambda: imp.GroupTaylorImportance(),
        "bn-scale": lambda: imp.BNScaleImportance(),
        "lamp": lambda: imp.LAMPImportance(p=2),
        "fpgm": lambda: imp.FPGMImportance(p=2),
        "random": lambda: SeededRandomImportance(seed),
        "hessian": lambda: imp.GroupHessianImportance(),
    }
    if name not in factories:
        raise ShrinkValueError(f"unknown importance {name!r}; valid names: {', '.join(IMPORTANCE_NAMES)}")
    return factories[name]()


def prepare_gradients(
    model: nn.Module,
    criterion: tp.importance.Importance,
    config: PruneConfig,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]] | None,
) -> None:
    """Fill the gradients taylor and hessian read, from `config.calibration_batches` labeled batches."""
    if not config.needs_batches:
        return
    if batches is None:
        raise ShrinkValueError(
            f"{config.importance} importance needs labeled batches: pass batches=... (CLI: --data NAME)"
        )
    model.eval()  # BN statistics stay as trained; only gradients are wanted
    model.zero_grad(set_to_none=True)
    seen = 0
    for x, y in batches:
        with torch.enable_grad():
            loss = _per_sample_loss(model(x), y, config.importance)
            if config.importance == "hessian":
                _accumulate_per_sample(model, criterion, loss)
            else:
                loss.mean().backward()
        seen += 1
        if seen >= config.calibration_batches:
            break
    if seen == 0:
        raise ShrinkError(f"{config.importance} importance got no batches from the data")


def _per_sample_loss(out, y: torch.Tensor, importance: str) -> torch.Tensor:
    """Cross-entropy per image: a classifier's, or a segmenter's averaged over its pixels."""
    if isinstance(out, torch.Tensor) and out.ndim == 2:
        return F.cross_entropy(out, y, reduction="none")
    if isinstance(out, torch.Tensor) and out.ndim == 4 and y.ndim == 3:
        return F.cross_entropy(out, y.long(), reduction="none", ignore_index=255).flatten(1).mean(1)
    raise ShrinkValueError(f"{importance} importance needs a classifier's or a segmenter's labels; this model's "
                           "outputs have no such loss (a detector's heads): use l2, the default")


def _accumulate_per_sample(model: nn.Module, criterion, loss: torch.Tensor) -> None:
    """Hessian (OBD) importance averages squared per-sample gradients."""
    for sample_loss in loss:
        model.zero_grad()
        sample_loss.backward(retain_graph=True)
        criterion.accumulate_grad(model)


def group_scores(criterion, tp_group) -> torch.Tensor | None:
    """One score per root channel of the group, or None when the criterion has nothing to score."""
    with torch.no_grad():
        scores = criterion(tp_group)
    if scores is None:
        return None
    scores = torch.nan_to_num(scores.detach().float().cpu(), nan=0.0, posinf=0.0, neginf=0.0)
    return scores
