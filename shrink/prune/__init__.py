"""Structural pruning: a dependency-graph pass (built on torch-pruning) that physically removes
coupled channels, checks that it did so exactly, and saves the result without pickled code.

    plan = shrink.prune.plan(model, example_inputs, PruneConfig(ratio=0.5))
    smaller = shrink.prune.apply(model, plan)
    report = shrink.prune.check_exactness(model, plan, example_inputs)

See docs/pruning.md.
"""

from shrink.prune.apply import apply, apply_step
from shrink.prune.config import IMPORTANCE_NAMES, ROUND_TO_BY_TARGET, PruneConfig
from shrink.prune.exactness import ExactnessReport, check_exactness
from shrink.prune.guards import GuardLimits
from shrink.prune.plan import PrunePlan
from shrink.prune.planner import PruneWarning, plan, plan_step, plan_steps

__all__ = [
    "ExactnessReport",
    "GuardLimits",
    "IMPORTANCE_NAMES",
    "PrunePlan",
    "PruneConfig",
    "PruneWarning",
    "ROUND_TO_BY_TARGET",
    "apply",
    "apply_step",
    "check_exactness",
    "plan",
    "plan_step",
    "plan_steps",
]
