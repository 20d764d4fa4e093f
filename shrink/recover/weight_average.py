"""An exponential moving average (EMA) of a model's weights, updated after every optimizer step.

Why: late in a short schedule SGD's weights still jitter around a minimum; their average sits
nearer it. The average covers the norm layers' running statistics too, so the averaged model is
evaluated as it is, without another BN recalibration. Integer buffers (BN's batch counters) are
copied, not averaged.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn


def decay_for(horizon_epochs: float, steps_per_epoch: int) -> float:
    """The decay whose average spans about `horizon_epochs` epochs (its time constant in steps)."""
    return 1.0 - 1.0 / max(1.0, horizon_epochs * steps_per_epoch)


class WeightAverage:
    """`model` here is an averaged copy; `update(live)` pulls it towards the live model."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = decay
        self.updates = 0

    def current_decay(self) -> float:
        """The decay of the latest update. Until the horizon is reached it is 1 - 1/(n + 1), which
        makes the average the plain mean of the weights seen so far, so the first weights (here:
        just pruned) weigh no more than any later ones; from then on it is the set decay."""
        return min(self.decay, 1.0 - 1.0 / (self.updates + 1))

    @torch.no_grad()
    def update(self, live: nn.Module) -> None:
        self.updates += 1
        weight = 1.0 - self.current_decay()
        averaged, current = self.model.state_dict(), live.state_dict()
        floats = [k for k, v in averaged.items() if v.is_floating_point()]
        torch._foreach_lerp_([averaged[k] for k in floats], [current[k].detach() for k in floats], weight)
        for k, v in averaged.items():
            if not v.is_floating_point():
                v.copy_(current[k])

    def state_dict(self) -> dict:
        """For the training checkpoint: the averaged weights (on the CPU) and the update count."""
        weights = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
        return {"weights": weights, "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["weights"])
        self.updates = int(state["updates"])
