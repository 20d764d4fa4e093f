"""The quantize stage end to end on a tiny model: what ships, what is recorded, what is refused."""

from __future__ import annotations

import json

import onnx
import pytest

from shrink.data import BatchOptions
from shrink.errors import ShrinkError
from shrink.export import read_metadata
from shrink.quantize import QuantizeConfig, QuantRecipe, quantize
from shrink.quantize import stage as stage_module
from shrink.quantize.portability import operator_domains, runtime_specific
from shrink.quantize.search import search_space

FAST = dict(calibration_images=64, bench_seconds=0.2, bench_min_runs=10, bench_warmup_seconds=0.1, threads=1)


def _ops(path) -> set[str]:
    return {n.op_type for n in onnx.load(str(path)).graph.node}


def test_random_calibration_is_refused(model_copy, random_split):
    with pytest.raises(ShrinkError, match="refusing to calibrate on synthetic"):
        quantize(model_copy, QuantizeConfig(mode="static", **FAST), model_copy.with_name("q.onnx"),
                 calibration_split=random_split, eval_split=random_split)
    assert not model_copy.with_name("q.onnx").exists()


def test_synthetic_eval_data_is_refused_without_force(model_copy, real_split, random_split):
    with pytest.raises(ShrinkError, match="eval data is synthetic"):
        quantize(model_copy, QuantizeConfig(mode="static", **FAST), model_copy.with_name("q.onnx"),
                 calibration_split=real_split, eval_split=random_split)


@pytest.mark.slow  # 8 s: test_quantize_cli covers the same forced-random run through the CLI
def test_forced_random_calibration_is_flagged_everywhere(model_copy, random_split):
    out = model_copy.with_name("q.onnx")
    result = quantize(model_copy, QuantizeConfig(mode="static", force_random_calibration=True, **FAST), out,
                      calibration_split=random_split, eval_split=random_split)
    assert any("SYNTHETIC random data" in f for f in result.flags)
    assert any("accuracy was NOT measured" in f for f in result.flags)
    assert "SYNTHETIC" in read_metadata(out)["warnings"]
    record = json.loads(result_record(result))
    assert record["calibration"]["synthetic"] is True and record["flags"] == list(result.flags)


def result_record(result) -> str:
    with open(result.record_path, encoding="utf-8") as f:
        return f.read()


def test_fp32_ships_with_an_ort_profile_when_no_int8_is_fast_enough(model_copy, real_split):
    # A host where int8 does not pay, made deterministic: no int8 file can be 1000x faster.
    out = model_copy.with_name("q.onnx")
    result = quantize(model_copy, QuantizeConfig(mode="static", min_speedup=1000.0, **FAST), out,
                      calibration_split=real_split, eval_split=real_split)
    assert not result.int8 and result.shipped == "fp32" and "shipping fp32" in result.reason
    assert "QuantizeLinear" not in _ops(out) and read_metadata(out)["quantization"] == "none"
    labels = [c["label"] for c in result.profile["candidates"]]
    assert labels[0] == "fp32" and labels[1] == QuantRecipe().name
    assert all(c["kernel_ms_per_run"] > 0 for c in result.profile["candidates"])


def test_static_mode_ships_only_what_is_faster(model_copy, real_split):
    before = model_copy.read_bytes()
    out = model_copy.with_name("q.onnx")
    result = quantize(model_copy, QuantizeConfig(mode="static", **FAST), out, calibration_split=real_split,
                      eval_split=real_split)
    assert model_copy.read_bytes() == before
    assert [c.name for c in result.candidates] == [QuantRecipe().name]
    cand = result.candidates[0]
    assert cand.speedup is not None and result.fp32.latency_ms > 0
    assert result.confirmation is None  # a single candidate was already timed against fp32 alone
    meta = read_metadata(out)
    assert meta["input_layout"] == "NCHW"  # the export metadata is carried over
    assert result.machine["cpu_model"] and meta["quantization_measured_on"].startswith(result.machine["cpu_model"])
    if result.int8:  # shipped int8 is never slower than fp32
        assert cand.speedup_ci_low > 1.0 and "QuantizeLinear" in _ops(out)
        assert meta["quantization"] == cand.name and meta["precision"] == "int8"
    else:
        assert "shipping fp32" in result.reason and "QuantizeLinear" not in _ops(out)
        assert meta["quantization"] == "none" and result.profile is not None
    assert json.loads(result_record(result))["shipped"] == result.shipped


def test_auto_mode_searches_measures_and_records(model_copy, real_split):
    out = model_copy.with_name("auto.onnx")
    result = quantize(model_copy, QuantizeConfig(measure_all=True, **FAST), out, calibration_split=real_split,
                      eval_split=real_split)
    names = [c.name for c in result.candidates]
    expected = [r.name for r in search_space(QuantRecipe(), {"Conv": 3, "Gemm": 1})]
    assert names[: len(expected)] == expected
    assert any(n.endswith("excl2") or "excl" in n for n in names[len(expected):])  # the SQNR-driven recipe
    assert result.layer_sqnr and {"node", "weight_sqnr_db", "input_sqnr_db"} <= set(result.layer_sqnr[0])
    produced = [c for c in result.candidates if not c.error]
    assert all(c.accuracy is not None and c.logits_sqnr_db is not None for c in produced)
    assert result.fp32.accuracy is not None
    assert len(result.decision.verdicts) == len(result.candidates)
    shipped = next((c for c in result.candidates if c.name == result.shipped), None)
    if result.int8:
        assert shipped.speedup_ci_low > 1.0 and result.fp32.accuracy - shipped.accuracy <= 0.5
        # several candidates were timed together, so the choice was re-timed against fp32 alone
        alone = result.confirmation
        assert alone.name == result.shipped and alone.speedup_ci_low > 1.0
        assert "timed against fp32 alone" in result.reason
    else:
        assert result.shipped == "fp32" and "shipping fp32" in result.reason
    record = json.loads(result_record(result))
    assert record["machine"]["cpu_flags"] is not None and record["bench"]["threads"] == 1
    # By default what ships is standard ONNX: onnxruntime's own format is made, then refused.
    qop = next(c for c in result.candidates if c.recipe and c.recipe.quant_format == "qoperator")
    assert qop.error and "only onnxruntime loads" in qop.error and "com.microsoft::" in qop.error
    assert runtime_specific(operator_domains(result.output_path)) == []


@pytest.mark.slow  # 10 s: the static path, which auto mode takes, is covered by the fast tests
def test_dynamic_mode_quantizes_matmuls(tmp_path, real_split):
    import torch

    from shrink.export import ExportConfig, export
    from shrink.models import LoadedModel, ModelSpec

    mlp = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(144, 64), torch.nn.ReLU(), torch.nn.Linear(64, 4))
    spec = ModelSpec(name="mlp", num_classes=4, in_chans=1, input_size=(12, 12))
    fp32 = tmp_path / "mlp.onnx"
    export(LoadedModel(mlp.eval(), spec, "mlp"), ExportConfig(), fp32)
    result = quantize(fp32, QuantizeConfig(mode="dynamic", measure_all=True, **FAST), tmp_path / "mlp.q.onnx",
                      calibration_split=None, eval_split=real_split)
    cand = result.candidates[0]
    assert cand.name.startswith("dynamic-") and not cand.error and cand.accuracy is not None
    assert result.calibration["images"] == 0


def test_a_failure_while_shipping_leaves_no_file(model_copy, real_split, monkeypatch):
    out = model_copy.with_name("q.onnx")
    out.write_bytes(b"previous")

    def broken(*args, **kwargs):
        raise ShrinkError("disk full (simulated)")

    monkeypatch.setattr(stage_module, "check_onnx_file", broken)
    with pytest.raises(ShrinkError, match="simulated"):
        quantize(model_copy, QuantizeConfig(mode="static", **FAST), out, calibration_split=real_split,
                 eval_split=real_split)
    assert out.read_bytes() == b"previous"
    assert sorted(p.name for p in out.parent.iterdir()) == ["model.onnx", "q.onnx"]


def test_onnxruntime_only_operators_ship_only_when_onnxruntime_is_the_only_runtime(model_copy, real_split, tmp_path):
    """The QOperator format writes com.microsoft operators: refused by default, allowed for
    quantize.runtimes [onnxruntime]. (The default search's shipped file: the auto-mode test.)"""
    import numpy as np

    from shrink.quantize.ptq import preprocess, quantize_recipe
    from shrink.quantize.stage import check_portable

    pre = preprocess(model_copy, tmp_path / "pre.onnx")
    batches = [x.numpy().astype(np.float32) for x, _ in real_split.batches(BatchOptions(batch_size=32))]
    qop = quantize_recipe(pre, QuantRecipe(quant_format="qoperator"), tmp_path / "qop.onnx", "input", batches)
    qdq = quantize_recipe(pre, QuantRecipe(), tmp_path / "qdq.onnx", "input", batches)
    assert any(op.startswith("com.microsoft::") for op in runtime_specific(operator_domains(qop)))
    with pytest.raises(ShrinkError, match="uses operators only onnxruntime loads .*com.microsoft::"):
        check_portable(qop, ())
    with pytest.raises(ShrinkError, match="only onnxruntime loads"):
        check_portable(qop, ("onnxruntime", "tensorrt"))  # another runtime must load it too
    check_portable(qop, ("onnxruntime",))
    assert runtime_specific(operator_domains(qdq)) == [] and check_portable(qdq, ()) is None


def test_forced_int8_ships_int8_and_every_record_says_so(model_copy, real_split):
    out = model_copy.with_name("forced.onnx")
    result = quantize(model_copy, QuantizeConfig(mode="static", force_int8=True, budget_pt=100.0, **FAST), out,
                      calibration_split=real_split, eval_split=real_split)
    assert result.int8 and "FORCED" in result.reason
    assert any("forced (--force-int8)" in flag for flag in result.flags)
    assert "forced (--force-int8)" in read_metadata(out)["warnings"]
    assert {"QuantizeLinear", "DequantizeLinear"} <= _ops(out)
