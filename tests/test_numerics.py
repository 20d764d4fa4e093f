"""SQNR, tolerance ratio and top-1 agreement on known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shrink.errors import ShrinkValueError
from shrink import numerics


def test_sqnr_known_values():
    ref = np.array([[1.0, -1.0, 1.0, -1.0]])
    assert numerics.sqnr_db(ref, ref) == math.inf
    assert numerics.sqnr_db(ref, ref * 1.1) == pytest.approx(20.0)  # noise = 10% of the signal amplitude
    assert numerics.sqnr_db(ref, ref * 1.01) == pytest.approx(40.0)


def test_tolerance_ratio_matches_allclose():
    ref = np.array([[10.0, 0.0]])
    assert numerics.max_tolerance_ratio(ref, ref + [[0.0101, 0.0]], 1e-3, 1e-4) == pytest.approx(1.0)
    assert numerics.max_tolerance_ratio(ref, ref + [[0.0, 2e-4]], 1e-3, 1e-4) == pytest.approx(2.0)


def test_agreement_counts_near_ties_apart():
    ref = np.array([[1.0, 0.0], [0.5, 0.49999], [0.0, 1.0]])
    other = np.array([[1.0, 0.0], [0.49999, 0.5], [1.0, 0.0]])
    a = numerics.top1_agreement(ref, other, tie_tolerance=1e-4)
    assert (a.total, a.agree, a.near_ties, a.disagree) == (3, 1, 1, 2)
    assert a.rate == pytest.approx(1 / 3) and a.rate_excluding_ties == pytest.approx(1 / 2)
    assert (a + a).total == 6


def test_shape_mismatch_is_an_error():
    with pytest.raises(ShrinkValueError, match="shapes"):
        numerics.sqnr_db(np.zeros((2, 3)), np.zeros((3, 2)))
