"""GPU engines: ORT CUDA EP with IO binding (and CUDA graphs), PyTorch CUDA graphs.

Run on the GPU machine with `pytest -m gpu tests/bench`. Skipped with a reason where there is no
CUDA; the ORT tests also need onnxruntime-gpu (CUDAExecutionProvider).
"""

import dataclasses

import numpy as np
import pytest
import torch

from shrink.bench import BenchConfig, OnnxCandidate, TorchCandidate, run_bench
from shrink.bench.engines import OrtCpuEngine, OrtGpuEngine, TorchEngine

from bench_fixtures import FAST, export_onnx, tiny_convnet

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU visible to PyTorch"),
]


def _ort_cuda_or_skip():
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip(f"onnxruntime {ort.__version__} has no CUDAExecutionProvider (install onnxruntime-gpu)")


def _cpu_output(path, config) -> np.ndarray:
    engine = OrtCpuEngine(str(path), dataclasses.replace(config, provider="cpu", cuda_graphs=False), threads=1)
    return engine.session.run(None, engine.feeds)[0]


@pytest.mark.parametrize("cuda_graphs", [False, True], ids=["iobinding", "iobinding-cudagraph"])
def test_ort_cuda_io_binding_keeps_outputs_on_the_gpu(onnx_pair, cuda_graphs):
    _ort_cuda_or_skip()
    dense, _ = onnx_pair
    config = BenchConfig(provider="cuda", batch=4, cuda_graphs=cuda_graphs, **FAST)
    engine = OrtGpuEngine(str(dense), config, threads=1)
    for _ in range(3):  # with CUDA graphs the first runs capture, later ones replay
        engine.run_once()
    assert engine.info.providers[0] == "CUDAExecutionProvider"
    assert engine.info.engine == "ort-cuda-iobinding" + ("-cudagraph" if cuda_graphs else "")
    assert all(device.lower() == "cuda" for device in engine.output_devices())
    gpu_out = engine.binding.copy_outputs_to_cpu()[0]
    np.testing.assert_allclose(gpu_out, _cpu_output(dense, config), rtol=1e-3, atol=1e-3)
    engine.close()


def test_ort_cuda_bench_end_to_end_with_device_memory(onnx_pair):
    _ort_cuda_or_skip()
    dense, pruned = onnx_pair
    config = dataclasses.replace(BenchConfig(provider="cuda", batch=8, **FAST), measure_memory=True, profile=True, profile_runs=3)
    record = run_bench([OnnxCandidate(str(dense)), OnnxCandidate(str(pruned))], config).to_dict()
    first, second = record["candidates"]
    assert first["engine"] == "ort-cuda-iobinding" and first["providers"][0] == "CUDAExecutionProvider"
    assert second["speedup"]["ratio"] > 0
    assert first["memory"]["device_mb"] is not None and first["memory"]["device_mb"] >= 0, first["memory"]
    assert record["machine"]["gpu_name"]
    assert {c["provider"] for c in record["profile"]["candidates"]} == {"cuda"}


def test_ort_fp16_model_gets_fp16_inputs(tmp_path):
    _ort_cuda_or_skip()
    path = export_onnx(tiny_convnet(16), tmp_path / "fp16.onnx", device="cuda", dtype=torch.float16)
    engine = OrtGpuEngine(str(path), BenchConfig(provider="cuda", batch=2, **FAST), threads=1)
    engine.run_once()
    assert engine.info.input_dtypes == {"input": "float16"}
    assert engine.info.input_shapes == {"input": (2, 3, 16, 16)}


@pytest.mark.parametrize("dtype", ["fp32", "fp16", "bf16"])
def test_torch_cuda_graph_replay_matches_eager(dtype):
    module = tiny_convnet(16)
    graphed = TorchEngine(module, (3, 16, 16), BenchConfig(provider="cuda", cuda_graphs=True, torch_dtype=dtype, **FAST), 1)
    eager = TorchEngine(module, (3, 16, 16), BenchConfig(provider="cuda", torch_dtype=dtype, **FAST), 1)
    for _ in range(3):
        graphed.run_once()
        eager.run_once()
    assert graphed.info.engine == f"torch-cudagraph-cuda-{dtype}"
    assert eager.info.engine == f"torch-eager-cuda-{dtype}"
    tolerance = {"fp32": 1e-4, "fp16": 1e-2, "bf16": 5e-2}[dtype]
    torch.testing.assert_close(graphed.output.float(), eager.output.float(), rtol=tolerance, atol=tolerance)
    # A new input copied into the captured buffer changes the replayed output: the graph is live.
    before = graphed.output.clone()
    graphed.input.copy_(torch.randn_like(graphed.input))
    graphed.run_once()
    assert not torch.equal(before, graphed.output)


def test_torch_cuda_graphs_bench_with_channels_last():
    candidates = [
        TorchCandidate(module=tiny_convnet(16), input_shape=(3, 16, 16), name="dense"),
        TorchCandidate(module=tiny_convnet(8), input_shape=(3, 16, 16), name="pruned"),
    ]
    config = BenchConfig(provider="cuda", batch=64, cuda_graphs=True, torch_dtype="fp16", channels_last=True, **FAST)
    record = run_bench(candidates, config).to_dict()
    assert [c["engine"] for c in record["candidates"]] == ["torch-cudagraph-cuda-fp16-channels_last"] * 2
    assert record["candidates"][1]["speedup"]["ratio"] > 0
    assert record["candidates"][0]["latency"]["throughput_per_s"] > 0
