"""docs/own-model.md's Python API example runs as printed: plain nn.Modules into prune, export and
bench, no wrappers."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "own-model.md"


def _python_api_block() -> str:
    text = GUIDE.read_text(encoding="utf-8")
    section = text[text.index("## The Python API"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_python_api_example_runs_as_printed(tmp_path, capsys):
    code = _python_api_block()
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(code, str(GUIDE), "exec"), {"__name__": "own_model_example"})  # the guide's own code
    finally:
        os.chdir(cwd)
    printed = capsys.readouterr().out
    assert (tmp_path / "dense.onnx").is_file() and (tmp_path / "pruned.onnx").is_file()
    assert "ratio=" in printed  # the pruned file's speedup over the dense one


def test_export_takes_a_plain_module_and_refuses_one_without_a_shape(tmp_path):
    import torch.nn as nn

    from shrink.errors import ShrinkValueError
    from shrink.export import ExportConfig, export

    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))
    result = export(model, ExportConfig(exporter="torchscript"), tmp_path / "m.onnx", input_shape=(3, 16, 16))
    assert result.input_shape[1:] == (3, 16, 16) and result.metadata["source_model"] == "in-memory Sequential"
    with pytest.raises(ShrinkValueError, match=r"needs input_shape=\(C, H, W\) or example_input"):
        export(model, ExportConfig(exporter="torchscript"), tmp_path / "n.onnx")
