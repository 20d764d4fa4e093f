"""`shrink bench` and `shrink bench-compare` through shrink.cli.main."""

import json

import onnxruntime as ort
import pytest

from shrink.cli import main

FAST_ARGS = ["--warmup-runs", "2", "--warmup-seconds", "0", "--min-runs", "6", "--min-seconds", "0",
             "--block-runs", "3", "--threads", "1", "--no-memory", "--quiet"]  # fmt: skip


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err  # one clear line, no traceback
    return err[0]


def test_bench_json_on_stdout(onnx_pair, capsys):
    dense, pruned = onnx_pair
    assert main(["bench", str(dense), str(pruned), *FAST_ARGS, "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert [c["label"] for c in record["candidates"]] == ["dense.onnx", "pruned.onnx"]
    assert record["config"]["min_runs"] == 6


def test_bench_markdown_and_out_dir_then_compare(onnx_pair, tmp_path, capsys):
    dense, pruned = onnx_pair
    out = tmp_path / "bench"
    assert main(["bench", str(dense), str(pruned), *FAST_ARGS, "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "| pruned.onnx | ort-cpu |" in stdout
    assert sorted(p.name for p in out.iterdir()) == ["bench.csv", "bench.json", "bench.md", "latency.png"]
    assert main(["bench-compare", str(out / "bench.json"), str(out / "bench.json")]) == 0
    assert "Both results come from the same machine." in capsys.readouterr().out


def test_help_ends_with_an_example(capsys):
    for command in ("bench", "bench-compare"):
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0
        lines = capsys.readouterr().out.strip().splitlines()
        assert lines[-2] == "example:" and lines[-1].strip().startswith(f"shrink {command} ")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["bench", "missing.onnx"], "ONNX file not found: missing.onnx"),
        (["bench"], "give at least one ONNX file or --torch MODEL"),
        (["bench", "{dense}", "--provider", "tpu"], "provider must be one of cpu, cuda, tensorrt"),
        (["bench", "{dense}", "--min-runs", "0"], "min_runs must be a positive integer, got 0"),
        (["bench", "{dense}", "--warmup-runs", "-1"], "warmup_runs must be a positive integer, got -1"),
        (["bench", "{dense}", "--threads", "0"], "threads must be a positive integer, got 0"),
        (["bench", "{dense}", "--min-seconds", "-2"], "min_seconds must be a number >= 0"),
        (["bench", "{dense}", "--batch", "0"], "batch must be a positive integer, got 0"),
    ],
)
def test_bad_input_is_one_error_line(argv, message, onnx_pair, capsys):
    argv = [a.format(dense=onnx_pair[0]) for a in argv]
    assert main(argv) == 2
    line = _error_line(capsys)
    assert line.startswith("shrink bench: error: ") and message in line


def test_non_onnx_file_is_one_error_line(tmp_path, capsys):
    bogus = tmp_path / "model.onnx"
    bogus.write_text("not a model")
    assert main(["bench", str(bogus)]) == 2
    assert "is not an ONNX model" in _error_line(capsys)


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="this install has the CUDA EP")
def test_unavailable_provider_lists_available_ones(onnx_pair, capsys):
    assert main(["bench", str(onnx_pair[0]), "--provider", "cuda", "--no-memory"]) == 2
    line = _error_line(capsys)
    assert "provider 'cuda' is not available" in line and "available: " in line and "CPUExecutionProvider" in line


def test_compare_refuses_a_file_that_is_not_a_result(tmp_path, capsys):
    other = tmp_path / "x.json"
    other.write_text("[]")
    assert main(["bench-compare", str(other), str(other)]) == 2
    assert "not a shrink bench result" in _error_line(capsys)
