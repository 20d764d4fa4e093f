"""Recovery configs: validated when made, round-trip through dicts/JSON."""

from __future__ import annotations

import json

import pytest

from shrink.errors import ShrinkValueError
from shrink.recover import DistillConfig, RecoverConfig, TrainConfig


def test_recover_config_round_trips_through_json():
    config = RecoverConfig(train=TrainConfig(epochs=2, early_stopping_patience=1), val_fraction=0.1,
                           distill=DistillConfig(temperature=2.0, alpha=0.5, feature_layers=("layer4",),
                                                 feature_weight=10.0))
    assert RecoverConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_bn_only_config_round_trips():
    config = RecoverConfig(train=None)
    assert RecoverConfig.from_dict(config.to_dict()) == config


def test_reconstruction_config_round_trips():
    config = RecoverConfig(reconstruct_images=512)
    assert RecoverConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: TrainConfig(epochs=0), "epochs"),
        (lambda: TrainConfig(optimizer="lamb"), "optimizer must be one of"),
        (lambda: TrainConfig(early_stopping_patience=0), "early_stopping_patience"),
        (lambda: DistillConfig(temperature=0), "temperature"),
        (lambda: DistillConfig(alpha=1.5), "alpha"),
        (lambda: DistillConfig(feature_weight=1.0), "needs feature_layers"),
        (lambda: RecoverConfig(bn_recal_images=5000), "bn_recal_images"),
        (lambda: RecoverConfig(reconstruct_images=2001), "reconstruct_images"),
        (lambda: RecoverConfig(reconstruct_images=1), "reconstruct_images"),
        (lambda: RecoverConfig(train=None, distill=DistillConfig()), "needs training"),
        (lambda: RecoverConfig(train=TrainConfig(early_stopping_patience=2)), "validation split"),
        (lambda: RecoverConfig.from_dict({"epochs": 3}), "unknown recovery options"),
    ],
)
def test_bad_values_are_value_errors(make, match):
    with pytest.raises(ShrinkValueError, match=match):
        make()
