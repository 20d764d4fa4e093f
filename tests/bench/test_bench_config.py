"""BenchConfig validation and dict round-trip; candidate labels."""

import json

import pytest

from shrink.bench.config import BenchConfig, OnnxCandidate, TorchCandidate, unique_labels
from shrink.errors import ShrinkValueError


def test_defaults_follow_the_issue():
    config = BenchConfig()
    assert config.warmup_runs >= 10 and config.warmup_seconds >= 1.0
    assert config.provider == "cpu" and config.threads is None
    assert not config.below_recommended_warmup()


def test_round_trips_through_json():
    config = BenchConfig(provider="cuda", threads=4, batch=64, cuda_graphs=True, torch_dtype="fp16", min_seconds=2.5)
    assert BenchConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_unknown_keys_are_errors():
    with pytest.raises(ShrinkValueError, match="unknown bench config keys: bogus"):
        BenchConfig.from_dict({"bogus": 1})


@pytest.mark.parametrize("field", ["batch", "warmup_runs", "min_runs", "block_runs", "profile_runs", "threads"])
@pytest.mark.parametrize("value", [0, -3, 1.5, True])
def test_counts_must_be_positive_integers(field, value):
    with pytest.raises(ShrinkValueError, match=f"{field} must be a positive integer"):
        BenchConfig(**{field: value})


@pytest.mark.parametrize("field", ["warmup_seconds", "min_seconds"])
def test_durations_must_not_be_negative(field):
    with pytest.raises(ShrinkValueError, match=f"{field} must be a number >= 0"):
        BenchConfig(**{field: -1.0})


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"provider": "tpu"}, "provider must be one of cpu, cuda, tensorrt"),
        ({"graph_optimization": "max"}, "graph_optimization must be one of"),
        ({"torch_dtype": "int8"}, "torch_dtype must be one of fp32, fp16, bf16"),
        ({"cuda_graphs": True}, "cuda_graphs needs provider cuda"),
        ({"trt_fp16": True, "provider": "cuda"}, "trt_fp16 only applies"),
    ],
)
def test_bad_choices_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):  # ShrinkValueError is also a ValueError
        BenchConfig(**kwargs)


def test_torch_candidate_needs_spec_or_module_with_shape():
    with pytest.raises(ShrinkValueError, match="exactly one of spec or module"):
        TorchCandidate()
    with pytest.raises(ShrinkValueError, match="needs input_shape"):
        TorchCandidate(module=object())
    assert TorchCandidate(spec="tv:resnet18").label == "torch:tv:resnet18"


def test_labels_are_unique_and_readable():
    candidates = [OnnxCandidate("runs/a/model.onnx"), OnnxCandidate("runs/b/model.onnx"), OnnxCandidate("x.onnx", name="x")]
    assert unique_labels(candidates) == ["a/model.onnx", "b/model.onnx", "x"]
    same = [OnnxCandidate("m.onnx"), OnnxCandidate("m.onnx")]
    assert unique_labels(same) == ["m.onnx", "m.onnx#2"]
