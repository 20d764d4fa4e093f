"""`shrink export` through main([...])."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shrink.cli import main
from shrink.export import read_metadata

MODEL = f"{Path(__file__).parent / 'export_fixtures.py'}:build"


def test_cli_export_writes_a_verified_file(tmp_path, capsys):
    out = tmp_path / "m.onnx"
    assert main(["export", MODEL, "--out", str(out), "--slim"]) == 0
    text = capsys.readouterr().out
    assert f"wrote {out}" in text and "batch 3" in text and "verified again" in text
    assert "random inputs only" in text
    assert json.loads(read_metadata(out)["input_shape"]) == ["batch", 3, 224, 224]


def test_cli_export_json(tmp_path, capsys):
    out = tmp_path / "m.onnx"
    assert main(["export", MODEL, "--out", str(out), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["parity"]["passed"] is True and record["path"] == str(out)


def test_cli_export_bad_input_is_one_line(tmp_path, capsys):
    assert main(["export", "tv:resnet_nope", "--out", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("shrink export: error: unknown model") and "\n" not in err
    assert main(["export", str(tmp_path / "m.onnx"), "--out", str(tmp_path / "n.onnx")]) == 2
    assert "ONNX file" in capsys.readouterr().err


def test_cli_export_help_ends_with_example(capsys):
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    assert capsys.readouterr().out.rstrip().splitlines()[-1].strip().startswith("shrink export ")
