"""Engines: input shapes from the graph, bad files, provider detection, refusal of silent fallback."""

import numpy as np
import onnxruntime as ort
import pytest
import torch

from shrink.bench.config import BenchConfig, OnnxCandidate, TorchCandidate
from shrink.bench.engines import (
    OrtCpuEngine,
    TorchEngine,
    check_onnx_file,
    check_runtime,
    create_engine,
    resolve_input_shape,
)
from shrink.errors import ShrinkError

from bench_fixtures import FAST, tiny_convnet


def test_dynamic_batch_axis_takes_the_batch_size():
    assert resolve_input_shape("input", ["batch", 3, 224, 224], 64) == (64, 3, 224, 224)
    assert resolve_input_shape("input", [None, 3, 8, 8], 2) == (2, 3, 8, 8)
    assert resolve_input_shape("input", [4, 3, 8, 8], 4) == (4, 3, 8, 8)


def test_fixed_batch_that_differs_is_an_error():
    with pytest.raises(ShrinkError, match="fixed batch size of 1 but batch 8 was asked; use --batch 1"):
        resolve_input_shape("input", [1, 3, 8, 8], 8)


def test_dynamic_spatial_axis_is_an_error():
    with pytest.raises(ShrinkError, match="dynamic dimension 'height' at axis 2"):
        resolve_input_shape("input", ["batch", 3, "height", 224], 1)


def test_a_dynamic_spatial_axis_takes_the_size_the_file_declares():
    from shrink.bench.engines import declared_shape
    from shrink.data.preprocessing import Preprocessing

    declared = declared_shape({"input_shape": '["batch", 3, 64, 48]'})
    assert resolve_input_shape("input", ["batch", 3, "height", "width"], 2, declared) == (2, 3, 64, 48)
    record = Preprocessing(color="L", crop=(32, 32), mean=(0.5,), std=(0.5,))
    assert declared_shape({"preprocessing": record.to_json()}) == [None, 1, 32, 32]
    assert declared_shape({}) is None  # a file that declares nothing: the axis stays an error


def test_missing_and_non_onnx_files(tmp_path):
    with pytest.raises(ShrinkError, match="ONNX file not found"):
        check_onnx_file(tmp_path / "nope.onnx")
    text = tmp_path / "notes.onnx"
    text.write_text("this is not a model\n")
    with pytest.raises(ShrinkError, match="is not an ONNX model"):
        check_onnx_file(text)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(ShrinkError, match="is not an ONNX model"):
        check_onnx_file(empty)


def test_cpu_engine_runs_on_cpu_with_graph_shapes(onnx_pair):
    dense, _ = onnx_pair
    engine = OrtCpuEngine(str(dense), BenchConfig(batch=3, **FAST), threads=1)
    engine.run_once()
    assert engine.info.engine == "ort-cpu"
    assert engine.info.providers[0] == "CPUExecutionProvider"
    assert engine.info.input_shapes == {"input": (3, 3, 16, 16)}
    assert engine.info.input_dtypes == {"input": "float32"}
    engine.close()


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="this install has the CUDA EP")
def test_missing_provider_lists_the_available_ones(onnx_pair):
    dense, _ = onnx_pair
    config = BenchConfig(provider="cuda", **FAST)
    with pytest.raises(ShrinkError, match=r"provider 'cuda' is not available .*available: .*CPUExecutionProvider"):
        check_runtime([OnnxCandidate(str(dense))], config)
    with pytest.raises(ShrinkError, match="available: .*CPUExecutionProvider"):
        create_engine(OnnxCandidate(str(dense)), config, threads=1)


def test_silent_fallback_is_refused(onnx_pair, monkeypatch):
    """onnxruntime reports CUDA as available but the session ends up on the CPU: refuse it."""
    dense, _ = onnx_pair
    real_session = ort.InferenceSession

    def session_that_falls_back(path, sess_options=None, providers=None):
        return real_session(path, sess_options=sess_options, providers=["CPUExecutionProvider"])

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "InferenceSession", session_that_falls_back)
    with pytest.raises(ShrinkError, match="silently fell back: asked for CUDAExecutionProvider"):
        create_engine(OnnxCandidate(str(dense)), BenchConfig(provider="cuda", **FAST), threads=1)


def test_torch_engine_on_cpu_matches_the_model_and_leaves_it_unchanged():
    module = tiny_convnet(8)
    engine = TorchEngine(module, (3, 16, 16), BenchConfig(channels_last=True, **FAST), threads=1)
    engine.run_once()
    with torch.no_grad():
        expected = module(engine.input.contiguous())
    torch.testing.assert_close(engine.output, expected, rtol=1e-4, atol=1e-5)
    assert engine.info.engine == "torch-eager-cpu-fp32-channels_last"
    first_conv = module[0].weight
    assert first_conv.is_contiguous() and first_conv.dtype == torch.float32  # caller's copy untouched


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_torch_on_cuda_without_a_gpu_is_a_clear_error():
    candidate = TorchCandidate(module=tiny_convnet(8), input_shape=(3, 16, 16))
    with pytest.raises(ShrinkError, match="PyTorch cannot use CUDA here"):
        check_runtime([candidate], BenchConfig(provider="cuda", **FAST))


def test_torch_candidate_from_the_registry(tmp_path):
    """A spec goes through shrink.models.load_model: here a file.py:factory the user named, so it runs."""
    (tmp_path / "net.py").write_text(
        "import torch.nn as nn\n"
        "def tiny(num_classes, in_chans):\n"
        "    return nn.Sequential(nn.Conv2d(in_chans, 8, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes))\n"
    )
    candidate = TorchCandidate(spec=f"{tmp_path}/net.py:tiny", input_shape=(3, 16, 16))
    engine = create_engine(candidate, BenchConfig(**FAST), threads=1)
    engine.run_once()
    assert engine.info.input_shapes == {"input": (1, 3, 16, 16)}
    assert engine.output.shape == (1, 1000)
    assert np.isfinite(engine.output.numpy()).all()


def test_cuda_graph_outputs_take_the_batch_and_refuse_other_dynamic_axes():
    from types import SimpleNamespace

    from shrink.bench.engines import _output_shape

    assert _output_shape(SimpleNamespace(name="logits", shape=["batch", 10]), 4) == (4, 10)
    with pytest.raises(ShrinkError, match="'logits' has a dynamic dimension at axis 1; CUDA graphs need static"):
        _output_shape(SimpleNamespace(name="logits", shape=["batch", "classes"]), 4)
