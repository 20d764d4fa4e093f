"""`shrink quantize` through main([...])."""

from __future__ import annotations

import json

import pytest

from shrink.cli import main

FAST = ["--calibration-images", "32", "--bench-seconds", "0.2", "--bench-warmup-seconds", "0.1", "--threads", "1",
        "--quiet"]


def test_cli_refuses_random_calibration_in_one_line(model_copy, capsys):
    before = model_copy.read_bytes()
    code = main(["quantize", str(model_copy), "--data", "synthetic:1x12x12", "--out", str(model_copy.with_name("q.onnx")),
                 *FAST])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("shrink quantize: error: refusing to calibrate on synthetic") and "\n" not in err
    assert model_copy.read_bytes() == before


def test_cli_forced_random_run_prints_decision_and_flags(model_copy, capsys):
    out = model_copy.with_name("q.onnx")
    code = main(["quantize", str(model_copy), "--data", "synthetic:1x12x12", "--static", "--force-random-calibration",
                 "--out", str(out), *FAST])
    text = capsys.readouterr().out
    assert code == 0 and out.is_file()
    assert "WARNING: calibrated on SYNTHETIC random data" in text and "decision record:" in text
    assert "static-qdq-u8s8-pc-minmax" in text and "machine:" in text


def test_cli_json_and_recipe_options(model_copy, capsys):
    out = model_copy.with_name("q.onnx")
    code = main(["quantize", str(model_copy), "--data", "synthetic:1x12x12", "--static", "--force-random-calibration",
                 "--out", str(out), "--no-per-channel", "--reduce-range", "--method", "percentile",
                 "--exclude", "node_linear", "--budget", "0.2", "--json", *FAST])
    record = json.loads(capsys.readouterr().out)
    assert code == 0
    recipe = record["config"]["recipe"]
    assert (recipe["per_channel"], recipe["reduce_range"], recipe["method"], recipe["exclude"]) == (
        False, True, "percentile", ["node_linear"])
    assert record["config"]["budget_pt"] == 0.2 and record["candidates"][0]["name"].endswith("-excl1")


def test_cli_bad_file_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage" * 10)
    assert main(["quantize", str(bad), "--data", "fmnist", "--out", str(tmp_path / "q.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot be read as ONNX" in err and "\n" not in err
    assert bad.read_bytes() == b"\x08\x07garbage" * 10 and not (tmp_path / "q.onnx").exists()


def test_cli_output_equal_to_input(model_copy, capsys):
    assert main(["quantize", str(model_copy), "--data", "synthetic:1x12x12", "--out", str(model_copy), *FAST]) == 2
    assert "is an input of this command" in capsys.readouterr().err


def test_cli_help_ends_with_example(capsys):
    with pytest.raises(SystemExit):
        main(["quantize", "--help"])
    assert capsys.readouterr().out.rstrip().splitlines()[-1].strip().startswith("shrink quantize ")
