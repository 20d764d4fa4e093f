"""The ship gate's warnings, from what the run measured."""

import pytest

from shrink.errors import ShrinkValueError
from shrink.run.gate import GateConfig, gate_warnings, step_warnings

HURT = {"recovered": True, "shipped_step": "reconstructed",
        "selection": [{"step": "pruned", "accuracy": 33.3}, {"step": "reconstructed", "accuracy": 81.1},
                      {"step": "distilled", "accuracy": 33.3}]}


def test_a_step_that_hurts_is_named_with_what_ships_instead():
    (warning,) = step_warnings(HURT["selection"], "reconstructed", 0.5)
    assert warning.startswith("recovery step distilled made the model worse")
    assert "81.10% after reconstructed -> 33.30%" in warning and warning.endswith("ships the reconstructed weights")
    noise = [{"step": "bn-recal", "accuracy": 90.0}, {"step": "distilled", "accuracy": 89.7}]
    assert step_warnings(noise, "bn-recal", 0.5) == []  # within the tolerance: not a regression


def test_a_shipped_file_far_below_dense_is_a_warning():
    good = {"recovered": True, "shipped_step": "distilled",
            "selection": [{"step": "pruned", "accuracy": 10.0}, {"step": "distilled", "accuracy": 93.0}]}
    assert gate_warnings(good, 94.1, 93.0, "model.int8.onnx", GateConfig(), synthetic=False) == []
    (warning,) = gate_warnings(good, 73.3, 33.3, "model.onnx", GateConfig(), synthetic=False)
    assert "model.onnx is 40.00 pt below dense (top-1 33.30% vs 73.30%), more than gate.max_drop_pt 3" in warning
    assert len(gate_warnings(HURT, 73.3, 33.3, "model.onnx", GateConfig(), synthetic=False)) == 2


def test_no_held_out_split_is_said_and_a_synthetic_run_has_no_gate():
    unchosen = {"recovered": True, "selection": [], "shipped_step": "distilled"}
    (warning,) = gate_warnings(unchosen, 94.0, 93.5, "model.onnx", GateConfig(), synthetic=False)
    assert "no training images were held out" in warning
    assert gate_warnings(HURT, None, None, "model.onnx", GateConfig(), synthetic=True) == []


def test_gate_config_is_validated():
    with pytest.raises(ShrinkValueError, match="gate.max_drop_pt must be a number >= 0"):
        GateConfig(max_drop_pt=-1)
    with pytest.raises(ShrinkValueError, match="unknown gate keys: max_drop"):
        GateConfig.from_dict({"max_drop": 1})
    assert GateConfig.from_dict(GateConfig().to_dict()) == GateConfig()
