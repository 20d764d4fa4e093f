"""Real worker processes: one candidate each, quiet between blocks, fresh every round."""

from __future__ import annotations

import pytest

from shrink.bench import BenchConfig, OnnxCandidate, run_bench
from shrink.bench.runner import TimingSettings, measure_in_processes
from shrink.bench.worker import WorkerProcess, thread_cpu_ns
from shrink.errors import ShrinkError

from bench_fixtures import FAST

# CPU a quiet, blocked worker may use while another one runs a block (a spinning pool uses ~25 ms).
IDLE_CPU_NS = 5_000_000


def test_a_worker_times_its_candidate_and_goes_quiet(onnx_pair):
    dense, _ = onnx_pair
    worker = WorkerProcess(OnnxCandidate(str(dense)), BenchConfig(threads=2, **FAST), 2, "dense")
    try:
        assert worker.info["engine"] == "ort-cpu" and worker.info["input_shapes"]["input"] == [1, 3, 16, 16]
        runs, seconds = worker.warm_up(5, 0.0)
        assert runs == 5 and seconds > 0
        samples = worker.run_block(20)
        assert len(samples) == 20 and all(s > 0 for s in samples)
        assert worker.settle() is True  # its threads stopped spinning
    finally:
        worker.close()
    assert worker.process.poll() is not None


def test_a_candidate_that_fails_in_its_worker_is_one_line(tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x08\x07 not a model")
    with pytest.raises(ShrinkError, match=r"^broken failed in its worker process: "):
        WorkerProcess(OnnxCandidate(str(broken)), BenchConfig(**FAST), 1, "broken")


class Watched:
    """A real worker whose every block is watched: the other workers must stay quiet meanwhile."""

    def __init__(self, worker: WorkerProcess, everyone: list, busy_others: list):
        self.worker, self.everyone, self.busy_others = worker, everyone, busy_others

    def warm_up(self, runs, seconds):
        return self.worker.warm_up(runs, seconds)

    def run_block(self, runs):
        others = [w for w in self.everyone if w is not self and w.worker.process.poll() is None]
        before = [thread_cpu_ns(w.worker.process.pid) for w in others]
        samples = self.worker.run_block(runs)
        after = [thread_cpu_ns(w.worker.process.pid) for w in others]
        self.busy_others += [b - a for a, b in zip(before, after) if a is not None and b is not None]
        return samples

    def settle(self):
        return self.worker.settle()

    def close(self):
        self.worker.close()


def test_no_other_workers_pool_runs_during_a_block(onnx_pair):
    everyone, busy_others, pids = [], [], []

    def spawn(index):
        worker = WorkerProcess(OnnxCandidate(str(onnx_pair[index])), BenchConfig(threads=2, **FAST), 2, str(index))
        pids.append(worker.process.pid)
        everyone.append(Watched(worker, everyone, busy_others))
        return everyone[-1]

    settings = TimingSettings(warmup_runs=20, warmup_seconds=0.0, min_runs=200, min_seconds=0.0, block_runs=50)
    run = measure_in_processes(spawn, 2, settings, processes=2)
    assert len(set(pids)) == 4  # a fresh process per candidate per round
    assert busy_others and max(busy_others) < IDLE_CPU_NS, busy_others
    assert all(run.settled)


def test_the_default_method_runs_in_processes_with_the_null_test(onnx_pair):
    dense, pruned = onnx_pair
    config = BenchConfig(threads=1, processes=2, self_check=True, **FAST)
    record = run_bench([OnnxCandidate(str(dense)), OnnxCandidate(str(pruned))], config).to_dict()
    assert record["method"] == "processes" and record["processes"] == 2
    assert [c["label"] for c in record["candidates"]] == ["dense.onnx", "pruned.onnx"]  # the twin is not a candidate
    for cand in record["candidates"]:
        assert len(cand["process_runs"]) == 2 and sum(cand["process_runs"]) == len(cand["samples_ms"])
        assert cand["spread"]["processes"] == 2 and len(cand["spread"]["medians_ms"]) == 2
    check = record["self_check"]
    assert check["label"] == "dense.onnx" and check["tolerance"] == 0.03
    assert check["ci_low"] <= check["ci_high"] and check["ratio"] > 0 and isinstance(check["passed"], bool)
    assert any(note.startswith("null test ") for note in record["notes"])
    assert record["load"]["load_average_1m"] == record["load_average_1m"]
    assert record["settled_share"] is not None
