"""Reaching a MACs or parameter target: bisection on the ratio, then one group at a time.

The pruned size is a step function of the ratio (widths move in round_to steps, and in uniform
scope all groups of one width step together), so bisection alone can stall a few percent away.
Between the last ratio above the target and the first one below it, groups are then moved one at a
time to their narrower width (bisecting on how many are moved) until the size is within tolerance.
If that still misses (global scope: the two ratios can differ in one group only, whose rounding
step is worth several percent of the model), any group may move one rounding step, greedily,
whichever move lands closest, each group at most once. Widths stay within one rounding step of
the uniform (or global) choice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

from shrink.errors import ShrinkValueError
from shrink.prune.selection import Keeps

TARGET_TOLERANCE = 0.01  # reach the target within 1%
MAX_BISECTIONS = 24
MAX_SINGLE_MOVES = 40  # single-group moves tried when the bisection lands between two rounding steps
MAX_STEP_ROUNDS = 6  # greedy one-step moves of any group, after those

# keeps -> (group name, keeps with that group one rounding step wider or narrower) for every allowed move
StepMoves = Callable[[Keeps], Iterable[tuple[str, Keeps]]]


@dataclass(frozen=True)
class Solution:
    keeps: Keeps
    ratio: float
    value: int
    target: float

    @property
    def error(self) -> float:
        return abs(self.value - self.target) / self.target

    @property
    def within_tolerance(self) -> bool:
        return self.error <= TARGET_TOLERANCE


def solve(
    select_at: Callable[[float], Keeps],
    measure: Callable[[Keeps], int],
    target: float,
    max_ratio: float,
    what: str = "MACs",
    step_moves: StepMoves | None = None,
) -> Solution:
    """Keeps whose measured size is closest to `target` (within 1% when the widths allow it)."""
    cache: dict[tuple, int] = {}

    def size(keeps: Keeps) -> int:
        key = tuple(sorted(keeps.items()))
        if key not in cache:
            cache[key] = measure(keeps)
        return cache[key]

    start = select_at(0.0)
    if target >= size(start):
        raise ShrinkValueError(f"target {what} {target:,.0f} is not below the model's {size(start):,}")
    lo, hi = 0.0, max_ratio  # size(lo) > target >= size(hi), once hi is checked
    hi_keeps = select_at(hi)
    if size(hi_keeps) > target * (1 + TARGET_TOLERANCE):
        raise ShrinkValueError(
            f"target {what} {target:,.0f} is out of reach: the smallest the groups allow at "
            f"max_layer_ratio {max_ratio} is {size(hi_keeps):,} (raise max_layer_ratio or lower round_to)"
        )
    best = Solution(hi_keeps, hi, size(hi_keeps), target)
    lo_keeps = start
    for _ in range(MAX_BISECTIONS):
        if best.within_tolerance:
            return best
        mid = (lo + hi) / 2
        keeps = select_at(mid)
        value = size(keeps)
        best = _closer(best, Solution(keeps, mid, value, target))
        if value > target:
            lo, lo_keeps = mid, keeps
        else:
            hi, hi_keeps = mid, keeps
    if best.within_tolerance:
        return best
    best = _closer(best, _move_groups(lo_keeps, hi_keeps, hi, size, target))
    if best.within_tolerance or step_moves is None:
        return best
    return _step_any_group(best, step_moves, size)


def _step_any_group(best: Solution, step_moves: StepMoves, size) -> Solution:
    """Greedy: the one-step move of any not yet moved group that lands closest, while it helps."""
    moved: set[str] = set()
    for _ in range(MAX_STEP_ROUNDS):
        if best.within_tolerance:
            break
        tries = [(name, Solution(keeps, best.ratio, size(keeps), best.target))
                 for name, keeps in step_moves(best.keeps) if name not in moved]
        if not tries:
            break
        name, closest = min(tries, key=lambda t: t[1].error)
        if closest.error >= best.error:
            break
        best = closest
        moved.add(name)
    return best


def _closer(a: Solution, b: Solution) -> Solution:
    return b if b.error < a.error else a


def _move_groups(lo_keeps: Keeps, hi_keeps: Keeps, ratio: float, size, target: float) -> Solution:
    """Move groups from their `lo_keeps` width to their `hi_keeps` width, bisecting on how many."""
    moved = [name for name in lo_keeps if lo_keeps[name] != hi_keeps.get(name, lo_keeps[name])]
    moved.sort(key=lambda name: lo_keeps[name] - hi_keeps[name])  # smallest steps first

    def keeps_with(count: int) -> Keeps:
        return {**lo_keeps, **{name: hi_keeps[name] for name in moved[:count]}}

    left, right = 0, len(moved)  # size(keeps_with(left)) > target >= size(keeps_with(right))
    while right - left > 1:
        mid = (left + right) // 2
        if size(keeps_with(mid)) > target:
            left = mid
        else:
            right = mid
    candidates = [Solution(keeps_with(n), ratio, size(keeps_with(n)), target) for n in (left, right)]
    best = min(candidates, key=lambda s: s.error)
    if best.within_tolerance:
        return best
    # One more group moved (from just above the target) or one moved back (from just below) can land
    # closer than the next group in the fixed order did.
    above, below = keeps_with(left), keeps_with(right)
    tries = [{**above, name: hi_keeps[name]} for name in moved[left:]]
    tries += [{**below, name: lo_keeps[name]} for name in moved[:right]]
    for keeps in tries[:MAX_SINGLE_MOVES]:
        best = _closer(best, Solution(keeps, ratio, size(keeps), target))
        if best.within_tolerance:
            break
    return best
