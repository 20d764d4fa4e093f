"""The bench stage end to end on tiny models: JSON schema, outputs, memory, comparisons."""

import copy
import csv
import dataclasses
import io
import json

import pytest
import torch

from shrink.bench import BenchConfig, OnnxCandidate, TorchCandidate, compare_results, load_result, run_bench
from shrink.bench.compare import format_comparison
from shrink.bench.output import CSV_COLUMNS, format_csv, format_markdown, write_outputs
from shrink.bench.results import SCHEMA
from shrink.errors import ShrinkError, ShrinkValueError

from bench_fixtures import FAST, tiny_convnet

LATENCY_KEYS = {
    "runs": int, "total_s": float, "mean_ms": float, "std_ms": float, "p50_ms": float, "p90_ms": float,
    "p99_ms": float, "min_ms": float, "max_ms": float, "median_ci_low_ms": float, "median_ci_high_ms": float,
    "cv": float, "noisy": bool, "throughput_per_s": float,
}  # fmt: skip
CANDIDATE_KEYS = {
    "label", "kind", "source", "file_bytes", "engine", "providers", "input_shapes", "input_dtypes",
    "warmup_runs", "warmup_s", "latency", "speedup", "memory", "samples_ms", "spread", "process_runs",
}  # fmt: skip
RESULT_KEYS = {
    "schema", "created_utc", "config", "threads", "batch", "machine", "inputs", "load_average_1m", "rounds", "schedule",
    "candidates", "profile", "notes", "block_runs", "capped", "method", "processes", "settled_share", "load",
    "self_check", "caveats",
}  # fmt: skip


@pytest.fixture(scope="module")
def result(onnx_pair):
    """Two ONNX files and one in-memory PyTorch model, timed together."""
    dense, pruned = onnx_pair
    candidates = [
        OnnxCandidate(str(dense)),
        OnnxCandidate(str(pruned)),
        TorchCandidate(module=tiny_convnet(16), input_shape=(3, 16, 16), name="torch-dense"),
    ]
    return run_bench(candidates, BenchConfig(threads=1, batch=2, **FAST)).to_dict()


def test_result_record_schema(result):
    record = json.loads(json.dumps(result))  # what lands on disk
    assert set(record) == RESULT_KEYS
    assert record["schema"] == SCHEMA
    assert len(record["block_runs"]) == 3 and not record["capped"]
    # An in-memory module cannot go to a worker process: all three were timed in this one, and it says so.
    assert record["method"] == "interleaved" and record["processes"] == 1
    assert "in-memory module" in record["notes"][0]
    assert record["threads"] == 1 and record["batch"] == 2
    assert "synthetic" in record["inputs"]
    assert len(record["load_average_1m"]) == 2
    assert BenchConfig.from_dict(record["config"]).batch == 2
    assert record["machine"]["cpu_model"] and isinstance(record["machine"]["cpu_flags"], list)
    assert len(record["candidates"]) == 3
    for cand in record["candidates"]:
        assert set(cand) == CANDIDATE_KEYS
        for key, kind in LATENCY_KEYS.items():
            assert isinstance(cand["latency"][key], kind), key
        assert len(cand["samples_ms"]) == cand["latency"]["runs"] >= FAST["min_runs"]
        assert cand["latency"]["min_ms"] <= cand["latency"]["p50_ms"] <= cand["latency"]["p99_ms"]
        assert cand["latency"]["median_ci_low_ms"] <= cand["latency"]["p50_ms"] <= cand["latency"]["median_ci_high_ms"]
    first, second, third = record["candidates"]
    assert first["speedup"] is None
    assert set(second["speedup"]) == {"baseline", "ratio", "ci_low", "ci_high"}
    assert second["speedup"]["baseline"] == "dense.onnx"
    assert first["kind"] == "onnx" and isinstance(first["file_bytes"], int)
    assert third["kind"] == "torch" and third["file_bytes"] is None and third["engine"] == "torch-eager-cpu-fp32"
    assert record["schedule"] == [0, 1, 2] * record["rounds"]


def test_outputs_json_csv_markdown_plot(result, tmp_path):
    paths = write_outputs(result, tmp_path / "out")
    assert set(paths) == {"json", "csv", "markdown", "plot"}
    assert load_result(paths["json"])["candidates"][1]["label"] == "pruned.onnx"
    rows = list(csv.DictReader(io.StringIO(paths["csv"].read_text())))
    assert tuple(rows[0]) == CSV_COLUMNS and len(rows) == 3
    markdown = paths["markdown"].read_text()
    assert "| dense.onnx | ort-cpu |" in markdown and "1.00× (baseline)" in markdown
    assert "Machine:" in markdown and "synthetic" in markdown
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert format_csv(result).count("\n") == 4


def test_warmup_below_recommended_is_noted(result):
    assert any("below the recommended" in note for note in result["notes"])


def test_compare_same_machine(result):
    comparison = compare_results(result, result)
    assert comparison.same_machine and comparison.warning is None
    assert [row.label for row in comparison.candidates] == ["dense.onnx", "pruned.onnx", "torch-dense"]
    assert all(row.speedup == pytest.approx(1.0) for row in comparison.candidates)


def test_compare_different_machines_is_flagged(result):
    other = copy.deepcopy(result)
    other["machine"]["cpu_model"] = "AMD EPYC 9654"
    other["threads"] = 4
    comparison = compare_results(result, other)
    assert not comparison.same_machine
    assert "different machines" in comparison.warning and "cpu_model" in comparison.warning
    assert any(d.startswith("threads") for d in comparison.setting_differences)
    assert "**Warning: these results come from different machines" in format_comparison(comparison, "a", "b")


def test_load_result_refuses_other_json(tmp_path):
    path = tmp_path / "other.json"
    path.write_text('{"hello": 1}')
    with pytest.raises(ShrinkError, match="not a shrink bench result"):
        load_result(path)


def test_memory_is_measured_per_candidate_in_a_fresh_process(onnx_pair):
    dense, _ = onnx_pair
    config = dataclasses.replace(BenchConfig(threads=1, **FAST), measure_memory=True)
    record = run_bench([OnnxCandidate(str(dense))], config).to_dict()
    memory = record["candidates"][0]["memory"]
    assert memory["method"].startswith("subprocess"), memory
    assert memory["peak_rss_mb"] > memory["candidate_rss_mb"] >= 0
    assert memory["device_mb"] is None


def test_in_memory_module_memory_is_reported_as_not_measured():
    candidate = TorchCandidate(module=tiny_convnet(4), input_shape=(3, 8, 8))
    config = dataclasses.replace(BenchConfig(threads=1, **FAST), measure_memory=True)
    memory = run_bench([candidate], config).to_dict()["candidates"][0]["memory"]
    assert memory["method"] == "not measured" and "model spec" in memory["note"]


def test_no_candidates_is_an_error():
    with pytest.raises(ShrinkValueError, match="at least one candidate"):
        run_bench([], BenchConfig(**FAST))


def test_markdown_of_a_loaded_result_renders(result, tmp_path):
    path = write_outputs(result, tmp_path)["json"]
    assert format_markdown(load_result(path)).startswith("## shrink bench: provider cpu, 1 threads, batch 2")


def test_a_candidate_that_fails_to_run_is_one_error_naming_it():
    class Broken(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("no kernel for this op\nsecond line")

    candidate = TorchCandidate(module=Broken(), input_shape=(3, 4, 4), name="broken")
    with pytest.raises(ShrinkError, match="^broken failed on its first run: no kernel for this op$"):
        run_bench([candidate], BenchConfig(**FAST))
