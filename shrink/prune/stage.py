"""The prune stage: plan which channels go, remove them, check that the removal was exact, and save
the plan and weights when given a directory. `shrink prune` and `shrink run` both call `run`.

    result = run(loaded, PruneConfig(ratio=0.5), out_dir, example=inputs)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
import torch.nn as nn

from shrink.errors import ShrinkError
from shrink.models.loading import LoadedModel
from shrink.prune.apply import apply
from shrink.prune.config import PruneConfig
from shrink.prune.exactness import ExactnessReport, check_exactness
from shrink.prune.guards import GuardLimits
from shrink.prune.plan import PrunePlan
from shrink.prune.planner import plan

# How the widths are chosen for a latency budget (a table and a closed loop the caller owns); the
# other targets use the planner directly.
Planner = Callable[[nn.Module, tuple[torch.Tensor, ...], PruneConfig], PrunePlan]


@dataclass(frozen=True)
class SaveOptions:
    """Where a pruned model came from, for its plan.json, and whether a non-empty directory may be used."""

    source_weights: str | None = None
    force: bool = False


@dataclass(frozen=True)
class PruneResult:
    plan: PrunePlan
    model: nn.Module = field(repr=False)  # the pruned model, in eval mode
    exactness: ExactnessReport | None  # None: the check was skipped (--no-verify)
    out_dir: Path | None = None  # where plan.json and the weights were written, if anywhere

    @property
    def plan_hash(self) -> str:
        return self.plan.digest()

    def to_dict(self) -> dict[str, Any]:
        """The record the pipeline's step cache keeps (the model is rebuilt from the plan)."""
        return {"plan": self.plan.to_dict(), "plan_hash": self.plan_hash,
                "exactness": self.exactness.to_dict() if self.exactness else None}


def run(loaded: LoadedModel, config: PruneConfig, out_dir: str | Path | None = None, *,
        example: tuple[torch.Tensor, ...], batches: Iterable | None = None, limits: GuardLimits | None = None,
        verify: bool = True, planner: Planner | None = None, save: SaveOptions = SaveOptions()) -> PruneResult:
    """Prune `loaded.model` (which is left unchanged) as `config` says, on `example` inputs."""
    if planner is not None:
        chosen = planner(loaded.model, example, config)
    else:
        chosen = plan(loaded.model, example, config, batches=batches, limits=limits or GuardLimits(), verify=verify)
    pruned = apply(loaded.model, chosen)
    report = check_exactness(loaded.model, chosen, example, seed=config.seed) if verify else None
    if report is not None and not report.passed:
        raise ShrinkError(f"exactness check failed, nothing written: {report.summary()}; " + "; ".join(report.notes))
    if out_dir is not None:
        _save(Path(out_dir), loaded, pruned, chosen, report, save)
    return PruneResult(chosen, pruned, report, None if out_dir is None else Path(out_dir))


def _save(out_dir: Path, loaded: LoadedModel, pruned: nn.Module, chosen: PrunePlan,
          report: ExactnessReport | None, save: SaveOptions) -> None:
    from shrink.prune.saving import save_pruned

    save_pruned(out_dir, pruned, chosen, loaded.spec, card=loaded.card, source=loaded.source,
                source_weights=save.source_weights, verification=report.to_dict() if report else None,
                force=save.force, inputs=loaded.files)
