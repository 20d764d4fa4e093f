"""--profile: per-operator diff on two small models, SIMD-width, layout and QDQ flags."""

import dataclasses
import json

import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import numpy as np

from shrink.bench import BenchConfig, OnnxCandidate, run_bench
from shrink.bench.output import format_profile
from shrink.bench.profile import conv_widths, misaligned, node_events, op_type_times, summarize_profile

from bench_fixtures import FAST


@pytest.fixture(scope="module")
def profiled(onnx_pair):
    dense, pruned = onnx_pair
    config = dataclasses.replace(BenchConfig(threads=1, **FAST), profile=True, profile_runs=3)
    result = run_bench([OnnxCandidate(str(dense)), OnnxCandidate(str(pruned))], config).to_dict()
    return json.loads(json.dumps(result))  # as saved: lists, not tuples


def test_profile_diff_table_on_two_models(profiled):
    profile = profiled["profile"]
    assert profile["labels"] == ["dense.onnx", "pruned.onnx"]
    rows = {row["op_type"]: row for row in profile["diff"]}
    assert "Conv" in rows and "Gemm" in rows
    conv = rows["Conv"]
    assert len(conv["ms_per_run"]) == 2 and all(ms > 0 for ms in conv["ms_per_run"])
    assert conv["delta_ms"][0] == 0.0
    assert conv["delta_ms"][1] == pytest.approx(conv["ms_per_run"][1] - conv["ms_per_run"][0])
    assert conv["nodes"][0] == conv["nodes"][1] >= 1
    for cand in profile["candidates"]:
        assert cand["runs"] == 3
        assert sum(op["share"] for op in cand["op_types"]) == pytest.approx(1.0)
    text = format_profile(profile)
    assert "| Conv |" in text and "Δ pruned.onnx" in text


def test_width_flags_follow_the_machine_simd_block(profiled):
    block = profiled["machine"]["simd_block"]
    dense, pruned = profiled["profile"]["candidates"]
    assert dense["simd_block"] == block
    # 16 channels is a multiple of 4, 8 and 16; 12 is a multiple of 4 only.
    assert dense["misaligned_convs"] == []
    assert len(pruned["misaligned_convs"]) == (2 if block in (8, 16) else 0)
    if block in (8, 16):
        assert any("not multiples of" in flag for flag in pruned["flags"])


def test_conv_widths_exempt_the_rgb_input(onnx_pair):
    _, pruned = onnx_pair
    widths = conv_widths(onnx.load(str(pruned)))
    assert [(w.in_channels, w.out_channels, w.reads_graph_input) for w in widths] == [(3, 12, True), (12, 12, False)]
    assert [w.in_channels for w in misaligned(widths, 8)] == [3, 12]  # flagged for out=12, not in=3
    assert misaligned(widths, 4) == ()


def _qdq_conv_model() -> onnx.ModelProto:
    """x -> Q -> DQ -> Conv(W = DQ(int8 weight)) -> y : the weight hides behind a DequantizeLinear."""
    weight = numpy_helper.from_array(np.ones((24, 8, 1, 1), dtype=np.int8), "w_q")
    scale = numpy_helper.from_array(np.array(0.1, dtype=np.float32), "s")
    zero = numpy_helper.from_array(np.array(0, dtype=np.int8), "z")
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["x_q"]),
        helper.make_node("DequantizeLinear", ["x_q", "s", "z"], ["x_dq"]),
        helper.make_node("DequantizeLinear", ["w_q", "s", "z"], ["w"]),
        helper.make_node("Conv", ["x_dq", "w"], ["y"], name="conv_qdq"),
    ]
    graph = helper.make_graph(
        nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 24, 4, 4])], [weight, scale, zero],
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_conv_width_through_dequantize_linear():
    (width,) = conv_widths(_qdq_conv_model())
    assert (width.in_channels, width.out_channels, width.reads_graph_input) == (8, 24, True)
    assert misaligned([width], 16) == (width,)  # 24 is not a multiple of 16


def _event(name, op, ts, dur, provider="CPUExecutionProvider"):
    return {"cat": "Node", "name": f"{name}_kernel_time", "ts": ts, "dur": dur, "args": {"op_name": op, "provider": provider}}


def _run(ts, dur):
    return {"cat": "Session", "name": "model_run", "ts": ts, "dur": dur}


def test_trace_parsing_skips_warmup_runs_and_flags_unfused_qdq_and_cpu_fallback():
    events = [
        _run(0, 100), _event("conv", "Conv", 10, 500),  # warmup run: skipped
        _run(200, 100), _event("conv", "Conv", 210, 40, "CUDAExecutionProvider"),
        _event("q1", "QuantizeLinear", 250, 5), _event("dq1", "DequantizeLinear", 260, 5),
        _event("q2", "QuantizeLinear", 270, 5), _event("dq2", "DequantizeLinear", 280, 5),
        _event("t", "Transpose", 290, 10),
    ]  # fmt: skip
    kernels, runs = node_events(events, skip_runs=1)
    assert runs == 1 and len(kernels) == 6
    rows = {r.op_type: r for r in op_type_times(kernels, runs)}
    assert rows["Conv"].ms_per_run == pytest.approx(0.040)
    assert rows["QuantizeLinear"].nodes == 2
    profile = summarize_profile("m", events, _qdq_conv_model(), "cuda", 16, skip_runs=1)
    assert any("4 QuantizeLinear/DequantizeLinear nodes ran unfused" in f for f in profile.flags)
    assert any("layout transform Transpose" in f for f in profile.flags)
    assert profile.cpu_fallback_nodes == 5
    assert any("ran on the CPU EP despite the GPU provider" in f for f in profile.flags)
