"""Iterative pruning: prune -> recover in k steps to the final ratio, on one epoch budget.

The prune stage plans step i on the model recovered after step i-1 (`shrink.prune.plan_steps`
with a `recover` callback); this module supplies that callback and splits the training epochs
over the steps, so k steps cost the same number of epochs as one-shot pruning with the same
recovery config.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import torch.nn as nn

from shrink.errors import ShrinkError
from shrink.recover.api import RecoverResult, recover
from shrink.recover.config import RecoverConfig


def split_epochs(total: int, steps: int) -> tuple[int, ...]:
    """`total` epochs over `steps` steps, the later (harder) steps getting the remainder: 5 over 2
    is (2, 3). Every step gets at least one epoch."""
    if steps < 1 or total < steps:
        raise ShrinkError(f"{total} epochs cannot be split over {steps} pruning steps (each needs >= 1)")
    base, extra = divmod(total, steps)
    return tuple(base + (1 if i >= steps - extra else 0) for i in range(steps))


@dataclass
class IterativeResult:
    model: nn.Module  # the final pruned and recovered model (CPU, eval mode)
    plan: object  # the cumulative shrink.prune.PrunePlan of all steps
    steps: list[RecoverResult] = field(default_factory=list)

    @property
    def accuracy_after(self) -> float | None:
        return self.steps[-1].accuracy_after if self.steps else None

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.steps)

    def to_dict(self) -> dict:
        return {
            "accuracy_after": self.accuracy_after,
            "seconds": self.seconds,
            "mac_reduction": self.plan.mac_reduction,
            "steps": [s.to_dict() for s in self.steps],
        }


def prune_and_recover(
    model: nn.Module,
    example_inputs,
    prune_config,
    recover_config: RecoverConfig,
    train_split,
    *,
    teacher: nn.Module | None = None,
    eval_split=None,
    batches=None,
    checkpoint_dir: str | Path | None = None,
    progress: bool = True,
) -> IterativeResult:
    """Prune `model` in `prune_config.steps` steps, recovering after each; the training epochs
    of `recover_config` are split over the steps (see split_epochs). `model` is not changed.
    `batches`: labeled (x, y) CPU batches for taylor/hessian importance (a list: every step reads it)."""
    from shrink.prune import plan_steps

    epochs = split_epochs(recover_config.train.epochs, prune_config.steps) if recover_config.train else None
    results: list[RecoverResult] = []

    def recover_step(pruned: nn.Module, plan) -> nn.Module:
        i = len(results)
        config = recover_config
        if epochs is not None:
            config = replace(config, train=replace(config.train, epochs=epochs[i]))
        step_dir = Path(checkpoint_dir) / f"step{i + 1}" if checkpoint_dir is not None else None
        result = recover(pruned, teacher, train_split, config, eval_split=eval_split, checkpoint_dir=step_dir,
                         run_id=f"iterative:{plan.digest()}", progress=progress, plan=plan, dense=model)
        results.append(result)
        return result.model

    final_plan, final_model = None, None
    for final_plan, final_model in plan_steps(model, example_inputs, prune_config, recover=recover_step,
                                              batches=list(batches) if batches is not None else None):
        pass
    return IterativeResult(model=final_model, plan=final_plan, steps=results)
