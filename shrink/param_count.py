"""The parameter count of a PyTorch model: one definition for the prune plan's budgets and the
params an exported file's metadata records, so the two always agree."""

from __future__ import annotations

import torch.nn as nn


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
