"""Choose per-group widths under a latency budget, with the cost model handed in as a table.

HALP's latency-saliency knapsack is the anchor; this is its greedy solution with exact costs:
- every group may keep the widths of its granule (round_to) between its max_layer_ratio floor and
  its full width;
- removing a group's next rounding step loses the importance of the units it removes (the
  criterion's scores, normalized per group so that each group's units average 1) and saves the
  latency the table predicts for every layer that group touches, with the neighbours' widths as
  they are now (a layer's c_in and c_out are tabled jointly, so the saving depends on both);
- the step that saves the most milliseconds per unit of importance lost is taken, until the
  predicted latency is within the budget; then steps that still fit are given back, most
  importance per millisecond first, so no budget is left unused that a step could fill.

It never times anything: the table is data (shrink.bench.latency_table).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from shrink.bench.latency_table import LatencyTable
from shrink.errors import ShrinkError
from shrink.prune.selection import Keeps, Ranked, allowed_keeps

EPSILON = 1e-9


@dataclass(frozen=True)
class Allocation:
    keeps: Keeps  # group -> units kept
    widths: dict[str, int]  # group -> channels kept
    predicted_ms: float
    dense_ms: float
    budget_ms: float
    importance_kept: float  # share of the normalized importance kept, over all groups


@dataclass
class _Group:
    ranked: Ranked
    units: list[int]  # allowed unit counts, ascending
    at: int  # index into units
    losses: list[float]  # normalized importance of the lowest units, cumulative: losses[j] = first j units

    @property
    def name(self) -> str:
        return self.ranked.name

    @property
    def keep(self) -> int:
        return self.units[self.at]

    def channels(self, at: int | None = None) -> int:
        return self.ranked.channels(self.units[self.at if at is None else at])

    def lost(self, at: int) -> float:
        return self.losses[len(self.ranked.units) - self.units[at]]


def _groups(ranked: list[Ranked], max_layer_ratio: float, round_to: int) -> list[_Group]:
    out = []
    for r in ranked:
        units = allowed_keeps(r, max_layer_ratio, round_to)
        scores = r.unit_scores.double().clamp(min=0)
        mean = float(scores.mean()) if len(scores) else 0.0
        normalized = (scores / mean) if mean > 0 else torch.ones_like(scores)
        ascending = torch.sort(normalized).values
        losses = [0.0] + torch.cumsum(ascending, 0).tolist()
        out.append(_Group(r, units, len(units) - 1, losses))
    return out


def allocate(ranked: list[Ranked], table: LatencyTable, budget_ms: float, max_layer_ratio: float, round_to: int) -> Allocation:
    """Keeps whose predicted latency is at or under `budget_ms`, keeping the most importance."""
    missing = [r.name for r in ranked if r.name not in table.groups]
    if missing:
        raise ShrinkError(f"the latency table was made for another model: it has no group {missing[0]!r}"
                          + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    groups = _groups(ranked, max_layer_ratio, round_to)
    by_name = {g.name: g for g in groups}
    layers = {g.name: table.layers_of(g.name) for g in groups}
    neighbours = {g.name: {x for layer in layers[g.name] for x in (layer.in_group, layer.out_group) if x in by_name}
                  for g in groups}
    widths = {g.name: g.channels() for g in groups}
    dense_ms = table.predict(widths)

    def predicted() -> float:
        return table.predict(widths)

    floors = {g.name: g.channels(0) for g in groups}
    smallest = table.predict(floors)
    if smallest > budget_ms:
        raise ShrinkError(
            f"latency budget {budget_ms:.3g} ms is out of reach: the smallest widths max_layer_ratio "
            f"{max_layer_ratio} allows are predicted at {smallest:.3g} ms ({smallest / dense_ms:.2f} of dense "
            f"{dense_ms:.3g} ms); raise max_layer_ratio or the budget"
        )

    def saving(g: _Group, at: int) -> float:
        """Predicted ms saved (positive) when `g` moves to index `at`, the others as they are."""
        now = sum(table.layer_ms(layer, widths) for layer in layers[g.name])
        moved = {**widths, g.name: g.channels(at)}
        return now - sum(table.layer_ms(layer, moved) for layer in layers[g.name])

    cache: dict[str, tuple[float, float]] = {}

    def down_score(g: _Group) -> tuple[float, float] | None:
        if g.at == 0:
            return None
        if g.name not in cache:
            ms = saving(g, g.at - 1)
            lost = g.lost(g.at - 1) - g.lost(g.at)
            cache[g.name] = (ms / max(lost, EPSILON), ms)
        return cache[g.name]

    total = predicted()
    while total > budget_ms:
        scored = [(s, g) for g in groups if (s := down_score(g)) is not None]
        if not scored:
            break
        (ratio, ms), g = max(scored, key=lambda t: (t[0][0], t[0][1]))
        if ms <= 0:  # nothing left that the table says saves time
            break
        g.at -= 1
        widths[g.name] = g.channels()
        for name in neighbours[g.name] | {g.name}:
            cache.pop(name, None)
        total = predicted()
    if total > budget_ms:
        raise ShrinkError(f"latency budget {budget_ms:.3g} ms is out of reach: the table predicts {total:.3g} ms "
                          "with every group at the narrowest width that still saves time")
    _give_back(groups, widths, table, budget_ms, layers)
    total = predicted()
    kept = sum(g.losses[-1] - g.lost(g.at) for g in groups)
    everything = sum(g.losses[-1] for g in groups) or 1.0
    return Allocation({g.name: g.keep for g in groups}, dict(widths), total, dense_ms, budget_ms, kept / everything)


def _give_back(groups: list[_Group], widths: dict[str, int], table: LatencyTable, budget_ms: float, layers) -> None:
    """Widen groups one step at a time while the prediction stays within the budget, the step that
    buys the most importance per millisecond first."""
    total = table.predict(widths)
    while True:
        best = None
        for g in groups:
            if g.at == len(g.units) - 1:
                continue
            moved = {**widths, g.name: g.channels(g.at + 1)}
            cost = sum(table.layer_ms(layer, moved) - table.layer_ms(layer, widths) for layer in layers[g.name])
            if total + cost > budget_ms:
                continue
            gained = g.lost(g.at) - g.lost(g.at + 1)
            value = gained / max(cost, EPSILON)
            if best is None or value > best[0]:
                best = (value, g, cost)
        if best is None:
            return
        _, g, cost = best
        g.at += 1
        widths[g.name] = g.channels()
        total = table.predict(widths)
