"""Atomic, verified writes: a failed export leaves nothing behind and never touches the input."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from export_fixtures import tiny_loaded, tiny_split

from shrink.errors import ShrinkError
from shrink.export import ExportConfig, export
from shrink.export import parity as parity_module
from shrink.onnxio.checks import check_onnx_file
from shrink.onnxio.writing import save_model, staged_output
from shrink.ort_session import create_session


def _leftovers(directory):
    return sorted(p.name for p in directory.iterdir())


def test_exception_mid_write_leaves_no_file(tmp_path):
    dest = tmp_path / "model.onnx"
    with pytest.raises(RuntimeError, match="interrupted"):
        with staged_output(dest) as staged:
            staged.write_bytes(b"half a model")
            raise RuntimeError("interrupted")
    assert _leftovers(tmp_path) == []


def test_failed_parity_writes_nothing_and_keeps_the_old_file(tmp_path, monkeypatch):
    dest = tmp_path / "model.onnx"
    dest.write_bytes(b"previous good file")
    real = parity_module._ort_outputs
    monkeypatch.setattr(parity_module, "_ort_outputs", lambda s, x: [o + 0.01 for o in real(s, x)])
    with pytest.raises(ShrinkError, match="parity with PyTorch failed: batch 1: outputs differ"):
        export(tiny_loaded(), ExportConfig(), dest, eval_split=tiny_split(8))
    assert dest.read_bytes() == b"previous good file"
    assert _leftovers(tmp_path) == ["model.onnx"]


def test_output_equal_to_input_is_refused(tmp_path):
    src = tmp_path / "model.onnx"
    src.write_bytes(b"input")
    with pytest.raises(ShrinkError, match="is an input of this command"):
        with staged_output(tmp_path / "." / "model.onnx", forbid=(src,)):
            pass
    assert src.read_bytes() == b"input"


def test_large_models_get_external_data(tmp_path):
    proto = onnx.helper.make_model(
        onnx.helper.make_graph(
            [onnx.helper.make_node("MatMul", ["input", "w"], ["logits"])],
            "g",
            [onnx.helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, ["batch", 64])],
            [onnx.helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, ["batch", 4])],
            [onnx.numpy_helper.from_array(np.ones((64, 4), np.float32), "w")],
        ),
        opset_imports=[onnx.helper.make_opsetid("", 18)],
    )
    dest = tmp_path / "big.onnx"
    with staged_output(dest) as staged:
        assert save_model(proto, staged, threshold=0)  # every model counts as "large" here
        check_onnx_file(staged)
    assert _leftovers(tmp_path) == ["big.onnx", "big.onnx.data"]
    out = create_session(dest, "cpu").run(None, {"input": np.ones((2, 64), np.float32)})[0]
    assert np.allclose(out, 64.0)
    # A later small export replaces the file and removes the now-orphaned data file.
    with staged_output(dest) as staged:
        assert not save_model(proto, staged)
    assert _leftovers(tmp_path) == ["big.onnx"]


def test_a_data_file_no_export_wrote_is_never_replaced_or_deleted(tmp_path):
    data = tmp_path / "model.onnx.data"
    data.write_bytes(b"the user's")
    with pytest.raises(ShrinkError, match=r"model\.onnx\.data exists, but no ONNX file at .* uses it"):
        with staged_output(tmp_path / "model.onnx"):
            pass
    (tmp_path / "model.onnx").write_bytes(b"an unrelated file, not ONNX")  # an .onnx that does not use it
    with pytest.raises(ShrinkError, match="not ours to replace or delete"):
        with staged_output(tmp_path / "model.onnx"):
            pass
    assert data.read_bytes() == b"the user's"
