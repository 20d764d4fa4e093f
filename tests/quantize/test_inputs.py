"""Bad input: each a clear one-line error, and the input file is never touched."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from shrink.errors import ShrinkError
from shrink.quantize import QuantizeConfig, quantize
from shrink.quantize.inputs import check_calibration, load_onnx_input


def _one_line(exc_info) -> str:
    text = str(exc_info.value)
    assert "\n" not in text
    return text


def _graph_model(nodes, opsets, inputs=None, path=None, elem=TensorProto.FLOAT):
    inputs = inputs or [helper.make_tensor_value_info("input", elem, ["batch", 1, 4, 4])]
    graph = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info("logits", elem, ["batch", 1, 4, 4])])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets])
    onnx.save(proto, str(path))
    return path


def test_a_file_that_is_not_onnx(tmp_path):
    path = tmp_path / "notes.onnx"
    path.write_text("these are not the weights you are looking for\n" * 20)
    with pytest.raises(ShrinkError, match="cannot be read as ONNX: not an ONNX file, or truncated") as info:
        load_onnx_input(path)
    _one_line(info)


def test_a_truncated_file(fp32_onnx, tmp_path):
    data = fp32_onnx.read_bytes()
    path = tmp_path / "truncated.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ShrinkError, match="truncated") as info:
        load_onnx_input(path)
    _one_line(info)


def test_a_missing_file(tmp_path):
    with pytest.raises(ShrinkError, match="ONNX file not found"):
        load_onnx_input(tmp_path / "nope.onnx")


def test_unsupported_operators(tmp_path):
    nodes = [helper.make_node("FrobnicateConv", ["input"], ["x"]),
             helper.make_node("Magic", ["x"], ["logits"], domain="acme.ops")]
    path = _graph_model(nodes, [("", 18), ("acme.ops", 1)], path=tmp_path / "custom.onnx")
    with pytest.raises(ShrinkError, match=r"do not implement: acme\.ops::Magic, ai\.onnx::FrobnicateConv") as info:
        load_onnx_input(path)
    _one_line(info)


def test_an_already_quantized_model(tmp_path):
    scale = helper.make_tensor("s", TensorProto.FLOAT, [], [0.1])
    zp = helper.make_tensor("z", TensorProto.UINT8, [], [0])
    nodes = [helper.make_node("QuantizeLinear", ["input", "s", "z"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["logits"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["b", 1, 4, 4])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["b", 1, 4, 4])], [scale, zp])
    path = tmp_path / "q.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    with pytest.raises(ShrinkError, match="already quantized"):
        load_onnx_input(path)


def test_an_fp16_model(tmp_path):
    path = _graph_model([helper.make_node("Relu", ["input"], ["logits"])], [("", 18)], path=tmp_path / "h.onnx",
                        elem=TensorProto.FLOAT16)
    with pytest.raises(ShrinkError, match="FLOAT16; quantize needs an fp32 model"):
        load_onnx_input(path)


def test_calibration_data_of_the_wrong_shape_or_dtype(fp32_onnx):
    model = load_onnx_input(fp32_onnx)
    good = np.zeros((4, *model.image_shape), np.float32)
    check_calibration([good], model)
    with pytest.raises(ShrinkError, match=r"images of shape 3x12x12; model input 'input' takes 1x12x12"):
        check_calibration([np.zeros((4, 3, 12, 12), np.float32)], model)
    with pytest.raises(ShrinkError, match="is float64; model input 'input' takes float32"):
        check_calibration([good.astype(np.float64)], model)
    with pytest.raises(ShrinkError, match="is uint8"):
        check_calibration([good.astype(np.uint8)], model)


def test_calibration_split_of_the_wrong_shape_is_refused_before_any_work(model_copy):
    from shrink.data import load_data

    before = model_copy.read_bytes()
    wrong = load_data("synthetic:3x12x12", "train")
    with pytest.raises(ShrinkError, match="images of shape 3x12x12"):
        quantize(model_copy, QuantizeConfig(force_random_calibration=True), model_copy.with_name("out.onnx"),
                 calibration_split=wrong, eval_split=wrong)
    assert model_copy.read_bytes() == before and not model_copy.with_name("out.onnx").exists()


def test_output_path_equal_to_input(model_copy, real_split):
    before = model_copy.read_bytes()
    with pytest.raises(ShrinkError, match="is an input of this command") as info:
        quantize(model_copy, QuantizeConfig(), model_copy.parent / "." / model_copy.name,
                 calibration_split=real_split, eval_split=real_split)
    _one_line(info)
    assert model_copy.read_bytes() == before
