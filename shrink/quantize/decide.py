"""The auto-mode decision, as pure functions of what was measured.

An int8 candidate qualifies when
  1. it was produced (no error);
  2. it is measurably faster: the lower end of the 95% interval of its speedup is above 1.0, so it
     is not slower than the fp32 file it replaces, and its median speedup reaches `min_speedup`;
  3. its top-1 accuracy is at most `budget_pt` points below the fp32 ONNX file's (when accuracy is
     required; a latency-only run on synthetic data waives this, and says so).
The fastest qualifying candidate ships. A candidate whose 95% speedup interval reaches the fastest's
median speedup is statistically tied with it; among those the most accurate ships, since the speed
difference may be noise and the accuracy difference is not. Without an accuracy difference, a tied
candidate ships instead of the fastest only if its logits SQNR against fp32 is at least
`SQNR_MARGIN_DB` higher: smaller SQNR differences change no prediction (a ResNet-50 run on the
development VM shipped a recipe 0.2 dB "more faithful" that a longer re-timing found 8% slower than
the naive one). When none qualifies, the fp32 file ships, and the reason names the closest miss.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

from shrink.quantize.result import FP32, Decision, Measured, Verdict

SQNR_MARGIN_DB = 1.0  # a tied recipe must be this much more faithful to ship over the fastest


def is_fast(candidate: Measured, min_speedup: float) -> bool:
    return (candidate.speedup is not None and candidate.speedup_ci_low is not None
            and candidate.speedup_ci_low > 1.0 and candidate.speedup >= min_speedup)


def _speed(c: Measured) -> str:
    return f"{c.speedup:.2f}x (95% CI {c.speedup_ci_low:.2f}-{c.speedup_ci_high or 0:.2f}x)"


def verdict(candidate: Measured, fp32: Measured, budget_pt: float, min_speedup: float,
            accuracy_required: bool = True) -> Verdict:
    name = candidate.name
    if candidate.error:
        return Verdict(name, False, f"not produced: {candidate.error}")
    if candidate.speedup is None or candidate.speedup_ci_low is None:
        return Verdict(name, False, "latency not measured")
    if candidate.speedup_ci_low <= 1.0:
        return Verdict(name, False, f"not measurably faster than fp32: {_speed(candidate)}")
    if candidate.speedup < min_speedup:
        return Verdict(name, False, f"only {_speed(candidate)} faster, below the {min_speedup:g}x worth shipping")
    if accuracy_required:
        if candidate.accuracy is None or fp32.accuracy is None:
            return Verdict(name, False, f"{_speed(candidate)} faster; accuracy not measured (a faster or "
                                        "more faithful recipe was measured first and is within budget)")
        drop = fp32.accuracy - candidate.accuracy
        if drop > budget_pt + 1e-9:
            return Verdict(name, False, f"{_speed(candidate)} faster, but top-1 {candidate.accuracy:.2f}% is "
                                        f"{drop:.2f} pt below fp32 {fp32.accuracy:.2f}% (budget {budget_pt:g} pt)")
    accuracy = f", top-1 {candidate.accuracy:.2f}%" if candidate.accuracy is not None else ""
    return Verdict(name, True, f"{_speed(candidate)} faster{accuracy}")


def tied_with(fastest: Measured, candidates: Sequence[Measured]) -> list[Measured]:
    """Candidates that may be as fast as the fastest: the upper end of their speedup interval reaches
    the fastest's median speedup (the fastest included)."""
    return [c for c in candidates if c.speedup_ci_high is not None and fastest.speedup is not None
            and c.speedup_ci_high >= fastest.speedup]


def _sqnr(c: Measured) -> float:
    return c.logits_sqnr_db if c.logits_sqnr_db is not None else -math.inf


def by_fidelity(tied: Sequence[Measured], fastest: Measured) -> list[Measured]:
    """Tied candidates in order of preference when accuracy does not separate them: those at least
    SQNR_MARGIN_DB more faithful than the fastest (most faithful first), then the fastest, then the
    rest, faster first."""
    def clearly_more_faithful(c: Measured) -> bool:
        return c is not fastest and _sqnr(c) > -math.inf and _sqnr(c) >= _sqnr(fastest) + SQNR_MARGIN_DB

    better = sorted((c for c in tied if clearly_more_faithful(c)), key=_sqnr, reverse=True)
    rest = sorted((c for c in tied if c is not fastest and c not in better), key=lambda c: -(c.speedup or 0.0))
    return better + [fastest] + rest


def accuracy_order(candidates: Sequence[Measured], min_speedup: float) -> list[Measured]:
    """The order in which to measure accuracy, so that the first candidate within budget is the one
    decide() ships: the fast candidates tied with the fastest in by_fidelity order, then the
    remaining fast candidates, fastest first."""
    fast = sorted((c for c in candidates if not c.error and is_fast(c, min_speedup)), key=lambda c: -c.speedup)
    if not fast:
        return []
    tied = by_fidelity(tied_with(fast[0], fast), fast[0])
    return tied + [c for c in fast if c not in tied]


def forced_order(candidates: Sequence[Measured]) -> list[Measured]:
    """--force-int8: the produced candidates, most faithful to fp32 first (speed here is not the
    target's, so it does not rank them)."""
    return sorted((c for c in candidates if c.path and not c.error), key=lambda c: -_sqnr(c))


def decide_forced(fp32: Measured, candidates: Sequence[Measured], budget_pt: float,
                  accuracy_required: bool = True) -> Decision:
    """--force-int8: the most accurate produced candidate within the accuracy budget, whatever its
    speed on this machine (the deployment CPU is another one); fp32 when none is within budget."""
    verdicts = tuple(verdict(c, fp32, budget_pt, 1.0, accuracy_required) for c in candidates)
    within = [c for c in forced_order(candidates) if not accuracy_required or (
        c.accuracy is not None and fp32.accuracy is not None and fp32.accuracy - c.accuracy <= budget_pt + 1e-9)]
    if not within:
        return Decision(FP32, False, f"--force-int8: no int8 recipe is within the {budget_pt:g} pt accuracy budget; "
                                     "shipping fp32", verdicts)
    best = max(within, key=lambda c: (c.accuracy if c.accuracy is not None else -math.inf, -within.index(c)))
    here = _speed(best) if best.speedup is not None and best.speedup_ci_low is not None else "not timed"
    accuracy = f", top-1 {best.accuracy:.2f}%" if best.accuracy is not None else " (accuracy NOT checked)"
    return Decision(best.name, True, f"int8 {best.name} FORCED (--force-int8, for another CPU){accuracy}; on this "
                                     f"machine it is {here} faster than fp32: time it on the target", verdicts)


def decide(fp32: Measured, candidates: Sequence[Measured], budget_pt: float, min_speedup: float,
           accuracy_required: bool = True) -> Decision:
    """Pick the int8 candidate to ship, else fp32 (see the module docstring)."""
    verdicts = tuple(verdict(c, fp32, budget_pt, min_speedup, accuracy_required) for c in candidates)
    qualifying = [c for c, v in zip(candidates, verdicts) if v.qualifies]
    if qualifying:
        fastest = max(qualifying, key=lambda c: c.speedup)
        preferred = by_fidelity(tied_with(fastest, qualifying), fastest)
        # The most accurate tied candidate; equal accuracy (or none measured) falls back on preference.
        best = max(preferred, key=lambda c: (c.accuracy if c.accuracy is not None else -math.inf,
                                             -preferred.index(c)))
        why = next(v.reason for v in verdicts if v.name == best.name)
        if best is not fastest:
            better = ("more accurate" if best.accuracy is not None and fastest.accuracy is not None
                      and best.accuracy > fastest.accuracy else
                      f"more faithful to fp32 (logits SQNR {best.logits_sqnr_db or 0:.1f} vs "
                      f"{fastest.logits_sqnr_db or 0:.1f} dB)")
            why += f"; statistically tied with the fastest ({fastest.name}, {fastest.speedup:.2f}x) and {better}"
        note = "" if accuracy_required else " (accuracy NOT checked: synthetic eval data)"
        return Decision(best.name, True, f"int8 {best.name}: {why}{note}", verdicts)
    if not candidates:
        return Decision(FP32, False, "no int8 candidate was produced; shipping fp32", verdicts)
    timed = [c for c in candidates if c.speedup is not None and not c.error]
    if timed:
        fastest = max(timed, key=lambda c: c.speedup)
        why = next(v.reason for v in verdicts if v.name == fastest.name)
        reason = f"no int8 recipe is faster than fp32 within the accuracy budget; fastest int8 {fastest.name}: {why}"
    else:
        reason = "no int8 recipe qualified: " + "; ".join(f"{v.name}: {v.reason}" for v in verdicts)
    return Decision(FP32, False, reason + "; shipping fp32", verdicts)


def confirm(decision: Decision, alone: Measured, min_speedup: float) -> Decision:
    """The int8 decision after the chosen file is timed against fp32 alone. The search times every
    recipe in one interleaved run, which can flatter int8 (Fashion-MNIST ResNet-18 on the
    development VM: 1.50x in the 8-way search, 1.17x re-timed 3-way; docs/measured/
    local-int8-cpu-before-confirmation.md), so the choice ships only if it is still measurably
    faster on its own."""
    if not decision.int8:
        return decision
    if is_fast(alone, min_speedup):
        return dataclasses.replace(decision, reason=f"{decision.reason}; timed against fp32 alone: {_speed(alone)} faster")
    return Decision(FP32, False, f"{decision.shipped} won the joint timing, but timed against fp32 alone it is "
                                 f"{_speed(alone)} faster, not measurably faster by at least {min_speedup:g}x; "
                                 "shipping fp32", decision.verdicts)
