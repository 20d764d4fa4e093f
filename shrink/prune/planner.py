"""plan(), plan_step() and plan_steps(): from a model to a PrunePlan.

One step:
1. trace a copy of the model into a dependency graph and find its coupled groups (under the
   time and memory guards);
2. score every group's channels with the importance criterion;
3. choose how many units each group keeps: from the ratio, or by solving for a MACs/params target;
4. check the choice on a copy: the pruned model must run, and groups where the zero-then-remove
   argument holds must be exact; groups that fail are left whole (with a warning) and the choice
   is made again without them;
5. count MACs, parameters and widths of the result.

Iterative pruning repeats this on the (possibly fine-tuned) pruned model; each step reaches an equal
share of the way to the final ratio or target, measured from the dense model.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import warnings
from typing import Callable, Iterable, Iterator

import torch
import torch.nn as nn

from shrink.bench.latency_table import LatencyTable
from shrink.errors import ShrinkError
from shrink.prune.apply import ChannelTracker, replay_step
from shrink.prune.attention import fused_attention_groups
from shrink.prune.config import PruneConfig
from shrink.param_count import count_params
from shrink.prune.counting import as_inputs, count, mac_counter, widths
from shrink.prune.exactness import check_step
from shrink.prune.graph import trace_graph
from shrink.prune.groups import CoupledGroup, discover_groups
from shrink.prune.guards import GuardLimits, ResourceGuard
from shrink.prune.importance import group_scores, make_importance, prepare_gradients
from shrink.prune.budget import allocate
from shrink.prune.plan import Counts, LatencyPlan, LayerWidth, LeftWhole, PlanGroup, PlanStep, PrunedLayer, PrunePlan
from shrink.prune.selection import Keeps, Ranked, one_step_moves, rank, removed_roots, select
from shrink.prune.space import WidthSpace, structure_hash, width_space
from shrink.prune.targets import solve

MAX_REPAIR_ROUNDS = 4  # rounds of "leave failing groups whole, choose again"
Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


class PruneWarning(UserWarning):
    """Something was left whole or a target was missed; the plan is still valid."""


def versions() -> dict[str, str]:
    import importlib.metadata

    import torchvision

    import shrink

    return {
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        # The installed distribution's version: the 1.6.1 wheel's module still says 1.6.0.
        "torch_pruning": importlib.metadata.version("torch-pruning"),
        "torch-shrink": shrink.__version__,
    }


# ----------------------------------------------------------------------------- public API


def plan(
    model: nn.Module,
    example_inputs,
    config: PruneConfig = PruneConfig(),
    *,
    batches: Batches | None = None,
    limits: GuardLimits = GuardLimits(),
    verify: bool = True,
    latency_table: LatencyTable | None = None,
    keeps: Keeps | None = None,
) -> PrunePlan:
    """Plan all `config.steps` steps back to back (no recovery in between). `model` is not changed.

    `latency_table` is the cost model for `config.target_latency` (see shrink.bench.layers).
    `keeps` (group root -> units kept) fixes the widths instead of choosing them (one step)."""
    for result, _ in plan_steps(model, example_inputs, config, batches=batches, limits=limits, verify=verify,
                                latency_table=latency_table, keeps=keeps):
        pass
    return result


def plan_steps(
    model: nn.Module,
    example_inputs,
    config: PruneConfig = PruneConfig(),
    *,
    recover: Callable[[nn.Module, PrunePlan], nn.Module] | None = None,
    batches: Batches | None = None,
    limits: GuardLimits = GuardLimits(),
    verify: bool = True,
    latency_table: LatencyTable | None = None,
    keeps: Keeps | None = None,
) -> Iterator[tuple[PrunePlan, nn.Module]]:
    """Yield (cumulative plan, pruned model) after each of `config.steps` steps.

    `recover(model, plan)`, when given, runs after each step (fine-tuning, BN recalibration...)
    and its returned model is what the next step scores and prunes.
    """
    current, previous = model, None
    for _ in range(config.steps):
        previous = plan_step(current, example_inputs, config, previous=previous, batches=batches, limits=limits,
                             verify=verify, latency_table=latency_table, keeps=keeps)
        current = _replay_last_step(current, previous)
        if recover is not None:
            current = recover(current, previous)
        yield previous, current


def plan_step(
    model: nn.Module,
    example_inputs,
    config: PruneConfig = PruneConfig(),
    *,
    previous: PrunePlan | None = None,
    batches: Batches | None = None,
    limits: GuardLimits = GuardLimits(),
    verify: bool = True,
    latency_table: LatencyTable | None = None,
    keeps: Keeps | None = None,
) -> PrunePlan:
    """Plan the next step on `model`, which is the dense model (previous=None) or the model pruned by
    `previous` (possibly fine-tuned since). Returns the cumulative plan: previous steps plus this one."""
    inputs = as_inputs(example_inputs)
    model = _on_cpu(model)
    done = previous.steps if previous else ()
    index = len(done) + 1
    if index > config.steps:
        raise ShrinkError(f"the plan already has all {config.steps} steps")
    if config.target_kind == "latency":
        check_table(latency_table, model, inputs)
    with ResourceGuard(limits) as guard:
        guard.stage("building the dependency graph")
        # Tracing only reads the model (and the MAC counter rides along, leaving nothing behind);
        # criteria that need gradients get a copy, so the caller's model never holds them.
        work = copy.deepcopy(model) if config.needs_batches else model
        with preserved_modes(work), mac_counter(work) as dense_macs:
            graph = trace_graph(work, inputs)
        guard.stage("finding coupled groups")
        found = _discover(graph, config)
        guard.stage("scoring channels")
        ranked, unscored = _rank_groups(work, found.groups, config, batches, previous)
        if not ranked:
            raise ShrinkError("nothing to prune, every coupled group is left whole: " + _reasons(found.left_whole + unscored))
        guard.stage("choosing and checking channels", watch_memory=False)  # copies of the model, on purpose
        dense = previous.before if previous else Counts(int(dense_macs.macs), count_params(model))
        choose = _chooser(config, latency_table, keeps)
        step, pruned, repaired = _choose_step(model, inputs, config, index, ranked, done, dense, verify, choose)
    notes = _notes(previous, found.left_whole + unscored + repaired)
    result = PrunePlan(
        config=config,
        input_shapes=tuple(tuple(x.shape) for x in inputs),
        steps=done + (step,),
        before=dense,
        after=count(pruned, inputs, owned=True),
        layers=_layer_widths(model, pruned, previous, step),
        left_whole=notes,
        versions=versions(),
        latency=latency_record(latency_table, config, step) if config.target_kind == "latency" else None,
    )
    _warn_left_whole(found.left_whole + unscored + repaired)
    return result


def width_space_of(model: nn.Module, example_inputs, config: PruneConfig = PruneConfig(),
                   limits: GuardLimits = GuardLimits()) -> WidthSpace:
    """The groups `plan` would prune, the widths each may keep, and which group sets each layer's
    widths: what a latency table is measured over. `model` is not changed."""
    inputs = as_inputs(example_inputs)
    model = _on_cpu(model)
    with ResourceGuard(limits) as guard, preserved_modes(model):
        guard.stage("building the dependency graph")
        graph = trace_graph(model, inputs)
        guard.stage("finding coupled groups")
        found = _discover(graph, config)
    ranked = [rank(g, torch.zeros(g.width), g.width) for g in found.groups]
    return width_space(ranked, config.max_layer_ratio, config.round_to, structure_hash(model, tuple(inputs[0].shape)))


def _discover(graph, config: PruneConfig):
    fused = fused_attention_groups(graph, config.attention)
    found = discover_groups(graph, config.ignore, config.attention, claimed=fused.claimed)
    found.groups[:0] = fused.groups
    found.left_whole[:0] = fused.left_whole
    return found


@contextlib.contextmanager
def preserved_modes(model: nn.Module):
    """Restore every module's train/eval flag afterwards (tracing puts the model in eval mode)."""
    modes = [(m, m.training) for m in model.modules()]
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


def _on_cpu(model: nn.Module) -> nn.Module:
    """Planning runs on the CPU: a model elsewhere is copied there (the plan is device-free)."""
    if all(t.device.type == "cpu" for t in list(model.parameters()) + list(model.buffers())):
        return model
    return copy.deepcopy(model).cpu()


# ----------------------------------------------------------------------------- scoring


def _rank_groups(work, groups, config, batches, previous) -> tuple[list[Ranked], list[LeftWhole]]:
    criterion = make_importance(config.importance, config.seed)
    prepare_gradients(work, criterion, config, batches)
    dense_widths = previous.dense_widths() if previous else {}
    ranked, unscored = [], []
    for group in groups:
        scores = group_scores(criterion, group.tp_group)
        if scores is None or len(scores) != group.width:
            unscored.append(LeftWhole(group.root, f"{config.importance} importance has nothing to score in this group", tuple(group.writers)))
            continue
        dense_width = dense_widths.get(group.root, (0, group.width))[1]
        ranked.append(rank(group, scores, dense_width))
    return ranked, unscored


def _reasons(left_whole: list[LeftWhole], shown: int = 3) -> str:
    text = "; ".join(f"{lw.root}: {lw.reason}" for lw in left_whole[:shown])
    return text + (f"; and {len(left_whole) - shown} more" if len(left_whole) > shown else "")


# ----------------------------------------------------------------------------- choosing


def _choose_step(model, inputs, config, index, ranked, done, dense, verify, choose=None):
    """(step, pruned copy, groups left whole). Groups that fail the check on a copy are left whole
    and the choice is made again without them. The pruned copy may have random weights: it is for
    counting and measuring widths."""
    left_whole: list[LeftWhole] = []
    for _ in range(MAX_REPAIR_ROUNDS):
        keeps, ratio = (choose or _solve_keeps)(model, inputs, config, index, ranked, done, dense)
        step = build_step(ranked, keeps, ratio, index, done, config.attention)
        if not verify:
            return step, _replay(model, done, step), left_whole
        reason, pruned = check_step(model, done, step, inputs, config.seed)
        if reason is None:
            return step, pruned, left_whole
        bad = _failing_groups(model, done, step, inputs, config.seed, reason)
        bad_roots = {root for root, _ in bad}
        left_whole += [LeftWhole(root, reason, _writers_of(step, root)) for root, reason in bad]
        ranked = [r for r in ranked if r.name not in bad_roots]
        if not ranked:
            break
    raise ShrinkError(f"no group could be pruned and checked: {_reasons(left_whole)}")


def _writers_of(step: PlanStep, root: str) -> tuple[str, ...]:
    for group in step.groups:
        if group.root == root:
            return tuple(dict.fromkeys(layer.name for layer in group.layers if layer.axis == "out"))
    return (root,)


def _solve_keeps(model, inputs, config, index, ranked, done, dense) -> tuple[Keeps, float]:
    def select_at(ratio: float) -> Keeps:
        return select(ranked, config.scope, ratio, config.max_layer_ratio, config.round_to)

    if config.target_kind == "ratio":
        ratio = config.ratio * index / config.steps
        return select_at(ratio), ratio
    final = config.target_macs if config.target_kind == "macs" else config.target_params
    start = dense.macs if config.target_kind == "macs" else dense.params
    target = start - (start - final) * index / config.steps

    def measure(keeps: Keeps) -> int:
        pruned = _replay(model, done, build_step(ranked, keeps, 0.0, index, done, config.attention))
        return count(pruned, inputs, owned=True).macs if config.target_kind == "macs" else count_params(pruned)

    def step_moves(keeps: Keeps):
        return one_step_moves(ranked, keeps, config.max_layer_ratio, config.round_to)

    solution = solve(select_at, measure, target, config.max_layer_ratio, what=config.target_kind,
                     step_moves=step_moves)
    if not solution.within_tolerance:
        warnings.warn(
            f"step {index}: reached {solution.value:,} {config.target_kind} for a target of {target:,.0f} "
            f"({solution.error:.1%} off); round_to={config.round_to} allows no closer widths",
            PruneWarning,
            stacklevel=4,
        )
    return solution.keeps, solution.ratio


def _chooser(config: PruneConfig, table: LatencyTable | None, fixed: Keeps | None):
    """How this step's keeps are chosen when not by ratio or size: fixed, or by a latency budget."""
    if fixed is not None:
        def given(model, inputs, config, index, ranked, done, dense):
            unknown = sorted(set(fixed) - {r.name for r in ranked})
            if unknown:
                raise ShrinkError(f"keeps name groups this model does not have (or left whole): {', '.join(unknown[:4])}")
            keeps = {r.name: min(fixed.get(r.name, len(r.units)), len(r.units)) for r in ranked}
            return keeps, _channel_ratio(ranked, keeps)
        return given
    if config.target_kind != "latency":
        return None

    def by_latency(model, inputs, config, index, ranked, done, dense):
        fraction, ms = config.latency_budget
        budget_ms = ms if ms is not None else fraction * table.dense_ms()
        allocation = allocate(ranked, table, budget_ms, config.max_layer_ratio, config.round_to)
        return allocation.keeps, _channel_ratio(ranked, allocation.keeps)
    return by_latency


def _channel_ratio(ranked: list[Ranked], keeps: Keeps) -> float:
    total = sum(r.channels(len(r.units)) for r in ranked)
    kept = sum(r.channels(keeps[r.name]) for r in ranked)
    return 1.0 - kept / total if total else 0.0


def check_table(table: LatencyTable | None, model: nn.Module, inputs) -> None:
    """A latency budget needs a table made for this model (its structure and input shape)."""
    if table is None:
        raise ShrinkError("target_latency needs a latency table: build one with `shrink bench layers MODEL` "
                          "(or shrink.bench.layers.build_table) and pass it as latency_table")
    wanted = structure_hash(model, tuple(inputs[0].shape))
    if table.key.structure != wanted:
        raise ShrinkError(f"the latency table was made for another model or input shape: structure "
                          f"{table.key.structure}, this model {wanted}")


def latency_record(table: LatencyTable, config: PruneConfig, step: PlanStep) -> LatencyPlan:
    widths = {g.root: g.width - len(g.removed) for g in step.groups}
    fraction, ms = config.latency_budget
    dense = table.dense_ms()
    return LatencyPlan(
        table_key=dataclasses.asdict(table.key),
        requested=config.target_latency,
        budget_ms=ms if ms is not None else fraction * dense,
        dense_predicted_ms=dense,
        predicted_ms=table.predict(widths),
        groups_ms={k: round(v, 5) for k, v in table.group_ms(widths).items()},
    )


def build_step(ranked: list[Ranked], keeps: Keeps, ratio: float, index: int, done, attention: str) -> PlanStep:
    """The PlanStep removing, from each group, the least important units beyond its keep count,
    with every index converted to the dense model's numbering."""
    tracker = ChannelTracker.after(done)
    groups = []
    for r in ranked:
        roots = removed_roots(r, keeps.get(r.name, len(r.units)))
        if roots:
            heads = _heads_after(r.group, set(roots)) if attention == "heads" else {}
            groups.append(_plan_group(r.group, roots, tracker, heads))
    return PlanStep(index=index, ratio=ratio, groups=tuple(groups))


def _plan_group(group: CoupledGroup, roots: list[int], tracker: ChannelTracker, heads: dict[str, int]) -> PlanGroup:
    chosen = set(roots)
    layers = []
    for member in group.members:
        idxs = sorted(member.for_roots(chosen))
        if idxs:
            dense = tuple(sorted(tracker.to_dense((member.name, member.axis), idxs)))
            layers.append(PrunedLayer(member.name, member.axis, member.optype, dense, member.dim))
    removed = tuple(tracker.to_dense((group.root, "out"), roots))
    return PlanGroup(group.root, group.width, removed, tuple(layers), group.inexact, heads)


def _heads_after(group: CoupledGroup, chosen: set[int]) -> dict[str, int]:
    heads = {}
    for member in group.members:
        info = group.heads.get(member.name)
        if info is not None:
            heads[info.module] = info.num_heads - info.heads_in(len(member.for_roots(chosen)))
    return heads


def _failing_groups(model, done, step: PlanStep, inputs, seed, reason: str | None = None) -> list[tuple[str, str]]:
    """(root, reason) of the groups whose removal breaks the model, by bisection. `reason` is the
    step's own failure when already known."""
    if reason is None:
        reason, _ = check_step(model, done, step, inputs, seed)
    if reason is None:
        return []
    if len(step.groups) == 1:
        return [(step.groups[0].root, reason)]
    half = len(step.groups) // 2
    failing = []
    for part in (step.groups[:half], step.groups[half:]):
        failing += _failing_groups(model, done, PlanStep(step.index, step.ratio, part), inputs, seed)
    if not failing:  # each half works alone but not together: give up on the whole step
        return [(g.root, f"fails together with other groups: {reason}") for g in step.groups]
    return failing


# ----------------------------------------------------------------------------- results


def _replay(model: nn.Module, done, step: PlanStep) -> nn.Module:
    pruned = copy.deepcopy(model)
    replay_step(pruned, step, ChannelTracker.after(done))
    return pruned


def _replay_last_step(model: nn.Module, plan: PrunePlan) -> nn.Module:
    return _replay(model, plan.steps[:-1], plan.steps[-1])


def _layer_widths(model, pruned, previous, step) -> tuple[LayerWidth, ...]:
    dims = {w.name: w.dim for w in previous.layers if w.kind == "Parameter"} if previous else {}
    dims.update({layer.name: layer.dim for g in step.groups for layer in g.layers if layer.optype == "PARAMETER"})
    now = widths(model, dims)
    after = widths(pruned, dims)
    dense = {w.name: w.before for w in previous.layers} if previous else {}
    return tuple(
        LayerWidth(name, kind, tuple(dense.get(name, width)), tuple(after[name][1]), dims.get(name))
        for name, (kind, width) in now.items()
    )


def _notes(previous, left_whole: list[LeftWhole]) -> tuple[LeftWhole, ...]:
    notes = {n.root: n for n in (previous.left_whole if previous else ())}
    for lw in left_whole:
        notes.setdefault(lw.root, lw)
    return tuple(notes.values())


def _short(reason: str, limit: int = 110) -> str:
    return reason if len(reason) <= limit else reason[: limit - 3] + "..."


def _warn_left_whole(left_whole: list[LeftWhole]) -> None:
    unexpected = [lw for lw in left_whole if "model output" not in lw.reason]
    if not unexpected:
        return
    layers = [name for lw in unexpected for name in lw.layers]
    shown = ", ".join(layers[:8]) + (f" (+{len(layers) - 8} more)" if len(layers) > 8 else "")
    reasons = sorted({_short(lw.reason) for lw in unexpected})
    warnings.warn(
        f"{len(unexpected)} groups left whole, keeping the widths of: {shown}. Reasons: " + "; ".join(reasons[:3]),
        PruneWarning,
        stacklevel=3,
    )
