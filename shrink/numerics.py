"""Comparing two sets of logits: SQNR, elementwise closeness, top-1 agreement.

Pure numpy functions over (N, classes) arrays; the export and quantize stages both report these.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shrink.errors import ShrinkValueError


def _pair(reference: np.ndarray, other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ref = np.asarray(reference, dtype=np.float64)
    out = np.asarray(other, dtype=np.float64)
    if ref.shape != out.shape:
        raise ShrinkValueError(f"cannot compare outputs of shapes {ref.shape} and {out.shape}")
    return ref, out


def sqnr_db(reference: np.ndarray, other: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio in dB: 10 log10(sum ref^2 / sum (ref - other)^2).

    Identical arrays give +inf; higher is better (torchao's compute_error)."""
    ref, out = _pair(reference, other)
    noise = float(np.sum((ref - out) ** 2))
    signal = float(np.sum(ref**2))
    if noise == 0.0:
        return float("inf")
    if signal == 0.0:
        return float("-inf")
    return 10.0 * float(np.log10(signal / noise))


def max_abs_diff(reference: np.ndarray, other: np.ndarray) -> float:
    ref, out = _pair(reference, other)
    return float(np.max(np.abs(ref - out))) if ref.size else 0.0


def max_tolerance_ratio(reference: np.ndarray, other: np.ndarray, rtol: float, atol: float) -> float:
    """max |other - ref| / (atol + rtol |ref|): <= 1 means every element is within numpy.allclose."""
    ref, out = _pair(reference, other)
    return float(np.max(np.abs(out - ref) / (atol + rtol * np.abs(ref)))) if ref.size else 0.0


@dataclass(frozen=True)
class Agreement:
    """Top-1 agreement of `other` with `reference` over `total` samples.

    A *near tie* is a disagreement on a sample whose two best reference logits are closer than the
    comparison tolerance: the flip says nothing about the export, so it is counted apart."""

    total: int
    agree: int
    near_ties: int

    @property
    def disagree(self) -> int:
        return self.total - self.agree

    @property
    def rate(self) -> float:
        return self.agree / self.total if self.total else 1.0

    @property
    def rate_excluding_ties(self) -> float:
        counted = self.total - self.near_ties
        return self.agree / counted if counted else 1.0

    def __add__(self, other: "Agreement") -> "Agreement":
        return Agreement(self.total + other.total, self.agree + other.agree, self.near_ties + other.near_ties)


def top1_agreement(reference: np.ndarray, other: np.ndarray, tie_tolerance: float = 0.0) -> Agreement:
    ref, out = _pair(reference, other)
    if ref.ndim != 2:
        raise ShrinkValueError(f"top-1 agreement needs (N, classes) logits, got shape {ref.shape}")
    same = ref.argmax(1) == out.argmax(1)
    if ref.shape[1] >= 2:
        top2 = np.sort(ref, axis=1)[:, -2:]
        tie = (top2[:, 1] - top2[:, 0]) <= tie_tolerance
    else:
        tie = np.zeros(len(ref), dtype=bool)
    return Agreement(total=len(ref), agree=int(same.sum()), near_ties=int((~same & tie).sum()))
