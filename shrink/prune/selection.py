"""How many channels each group keeps, and which ones.

Groups remove whole *units* (usually one channel; a position across all heads or conv groups; a
whole head). A selection is a number of units to keep per group. Uniform scope keeps the same
fraction of every group; global scope ranks every unit of every group by its normalized importance
and removes the least important ones until the ratio of all channels is reached. Both scopes never
let a group lose more than `max_layer_ratio` of its channels (torch-pruning's global mode has been
reported to ignore its own maximum), and round kept widths to multiples of `round_to`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from shrink.prune.groups import CoupledGroup

Keeps = dict[str, int]  # group root name -> units kept


@dataclass
class Ranked:
    """A group with its unit scores, ready for selection."""

    group: CoupledGroup
    unit_scores: torch.Tensor  # one score per unit (mean over the unit's root channels)
    dense_units: int  # units the group had in the dense model (before any step)

    @property
    def name(self) -> str:
        return self.group.root

    @property
    def units(self) -> list[list[int]]:
        return self.group.units

    @property
    def unit_size(self) -> int | None:
        """Channels per unit when all units are equal, else None."""
        sizes = {len(u) for u in self.units}
        return sizes.pop() if len(sizes) == 1 else None

    def channels(self, units: int) -> int:
        size = self.unit_size
        return units * size if size else round(units * self.group.width / len(self.units))


def rank(group: CoupledGroup, scores: torch.Tensor, dense_width: int) -> Ranked:
    sizes = {len(u) for u in group.units}
    if len(sizes) == 1:  # the usual case, vectorized
        unit_scores = scores[torch.tensor(group.units)].mean(dim=1)
    else:
        unit_scores = torch.stack([scores[u].mean() for u in group.units])
    dense_units = max(len(group.units), round(dense_width * len(group.units) / group.width))
    return Ranked(group, unit_scores, dense_units)


def _multiple(ranked: Ranked, round_to: int) -> int:
    """Kept units must be a multiple of this for the kept channels to be a multiple of round_to.

    When a unit spans several channels (grouped convs, heads) and no smaller multiple exists (an odd
    number of conv groups of 8 channels each, round_to 8), rounding would forbid pruning the group
    at all; it is then not rounded. A plain group narrower than round_to is left as it is."""
    size = ranked.unit_size
    if not size:
        return 1
    step = round_to // math.gcd(round_to, size)
    return step if size == 1 or step < len(ranked.units) else 1


def _floor_keep(ranked: Ranked, max_layer_ratio: float, round_to: int) -> int:
    """The fewest units a group may keep: max_layer_ratio is never exceeded."""
    step = _multiple(ranked, round_to)
    least = math.ceil(ranked.dense_units * (1.0 - max_layer_ratio) - 1e-9)
    least = max(least, 1)
    return min(math.ceil(least / step) * step, len(ranked.units))


def allowed_keeps(ranked: Ranked, max_layer_ratio: float, round_to: int) -> list[int]:
    """Every unit count the group may keep: the round_to multiples from its max_layer_ratio floor
    up, and all of its units. What a latency table is measured over and the allocator chooses in."""
    step, top = _multiple(ranked, round_to), len(ranked.units)
    floor = _floor_keep(ranked, max_layer_ratio, round_to)
    return sorted({u for u in range(floor, top + 1) if u % step == 0} | {top})


def uniform_keeps(ranked: list[Ranked], ratio: float, max_layer_ratio: float, round_to: int) -> Keeps:
    """Every group keeps int(units * (1 - ratio)) units, rounded to the round_to multiple, never
    below one multiple nor below the max_layer_ratio floor.

    Plain channels round down, as torch-pruning does. Units of several channels (conv groups,
    heads) round to the nearest multiple: there one step can be a third of the group, and rounding
    down would remove two thirds of a RegNet stage at ratio 0.5."""
    keeps = {}
    for r in ranked:
        step = _multiple(r, round_to)
        exact = r.dense_units * (1.0 - ratio)
        steps = int(exact / step + 1e-9) if (r.unit_size or 1) == 1 else math.floor(exact / step + 0.5)
        keep = max(steps * step, step, _floor_keep(r, max_layer_ratio, round_to))
        keeps[r.name] = min(keep, len(r.units))
    return keeps


def global_keeps(ranked: list[Ranked], ratio: float, max_layer_ratio: float, round_to: int) -> Keeps:
    """Remove the globally least important units until `ratio` of all dense channels is gone."""
    dense_total = sum(r.channels(r.dense_units) for r in ranked)
    already_removed = sum(r.channels(r.dense_units) - r.group.width for r in ranked)
    to_remove = ratio * dense_total - already_removed
    candidates = []  # (score, group index, unit position in ascending-score order)
    for gi, r in enumerate(ranked):
        removable = len(r.units) - _floor_keep(r, max_layer_ratio, round_to)
        order = torch.argsort(r.unit_scores).tolist()
        candidates += [(float(r.unit_scores[u]), gi, k) for k, u in enumerate(order[:removable])]
    candidates.sort()
    removed_units = [0] * len(ranked)
    removed = 0
    for score, gi, _ in candidates:
        if removed >= to_remove:
            break
        removed_units[gi] += 1
        removed += ranked[gi].channels(1)
    return {r.name: _round_keep(r, len(r.units) - removed_units[gi], max_layer_ratio, round_to) for gi, r in enumerate(ranked)}


def _round_keep(ranked: Ranked, keep: int, max_layer_ratio: float, round_to: int) -> int:
    """Nearest multiple, within [max_layer_ratio floor, current units]."""
    if keep >= len(ranked.units):
        return len(ranked.units)
    step = _multiple(ranked, round_to)
    keep = max(round(keep / step) * step, _floor_keep(ranked, max_layer_ratio, round_to))
    return min(keep, len(ranked.units))


def select(ranked: list[Ranked], scope: str, ratio: float, max_layer_ratio: float, round_to: int) -> Keeps:
    if ratio <= 0:
        return {r.name: len(r.units) for r in ranked}
    pick = uniform_keeps if scope == "uniform" else global_keeps
    return pick(ranked, ratio, max_layer_ratio, round_to)


def one_step_moves(ranked: list[Ranked], keeps: Keeps, max_layer_ratio: float, round_to: int):
    """(group, keeps with that group one rounding step narrower or wider) for every move that stays
    within the group's max_layer_ratio floor and its current units."""
    for r in ranked:
        step, keep = _multiple(r, round_to), keeps[r.name]
        for moved in (keep - step, keep + step):
            if _floor_keep(r, max_layer_ratio, round_to) <= moved <= len(r.units):
                yield r.name, {**keeps, r.name: moved}


def removed_roots(ranked: Ranked, keep: int) -> list[int]:
    """The root channels of the least important units beyond `keep`, sorted."""
    drop = len(ranked.units) - keep
    if drop <= 0:
        return []
    order = torch.argsort(ranked.unit_scores, stable=True).tolist()
    return sorted(c for u in order[:drop] for c in ranked.units[u])
