"""Unstructured magnitude pruning: zeros, same shapes, masks folded, sparsity reported."""

import pytest
import torch
from prune_fixtures import tv_model

from shrink.errors import ShrinkValueError
from shrink.prune.unstructured import LABEL, magnitude_prune, zero_fraction


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_sparsity_and_shapes(scope):
    model, inputs = tv_model("resnet18", 32)
    sparse, report = magnitude_prune(model, 0.5, scope=scope)
    assert abs(report.sparsity - 0.5) < 0.01
    assert {k: v.shape for k, v in sparse.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    assert not any("weight_orig" in k or "weight_mask" in k for k in sparse.state_dict())  # masks folded
    assert zero_fraction(model) < 0.01  # the input is not changed
    assert sparse(*inputs).shape == (2, 10)
    assert "no speedup" in LABEL and report.to_dict()["mode"] == "unstructured"
    if scope == "layer":
        assert all(abs(layer.sparsity - 0.5) < 0.01 for layer in report.layers)


def test_bad_values():
    model, _ = tv_model("resnet18", 32)
    with pytest.raises(ShrinkValueError, match=r"sparsity must be in \(0, 1\)"):
        magnitude_prune(model, 1.5)
    with pytest.raises(ShrinkValueError, match="unknown unstructured scope 'row'; valid names: global, layer"):
        magnitude_prune(model, 0.5, scope="row")
