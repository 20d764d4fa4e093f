"""Real processes: a training killed mid-run resumes to the same accuracy, and 2 processes under
`torchrun` (gloo) reach the accuracy of 1 process. Both drive tests/recover/worker.py; the
uninterrupted / 1-process reference runs the same worker in this process (one start-up less)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import worker
from recover_fixtures import WORKER, digits, save_split

from shrink.recover.checkpoint import CHECKPOINT_NAME

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """digits written once as tensors, so each worker process skips scikit-learn."""
    path = tmp_path_factory.mktemp("digits")
    save_split(digits("train", 640), path / "train.pt")
    save_split(digits("test"), path / "test.pt")
    return path


def _start(args, **kwargs):
    return subprocess.Popen(args, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **kwargs)


def _finish(proc, timeout=300):
    _, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return err


def _in_process(args):
    """worker.main here, on one thread like the subprocesses (restored afterwards)."""
    threads = torch.get_num_threads()
    try:
        worker.main(args)
    finally:
        torch.set_num_threads(threads)


def _result(out, rank=0):
    return json.loads((out / f"result-rank{rank}.json").read_text())


@pytest.mark.slow  # 9 s: resume is covered in-process by test_loop and test_finetune_cli; torchrun stays fast
def test_killed_run_resumes_to_the_same_accuracy(tmp_path, data_dir):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    args = ["--epochs", "3", "--batch-size", "4", "--data", str(data_dir)]  # many short steps per epoch
    victim = _start([sys.executable, str(WORKER), "--out", str(killed), *args])
    checkpoint = killed / "checkpoints" / CHECKPOINT_NAME
    deadline = time.monotonic() + 180
    while not checkpoint.exists() and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert checkpoint.exists(), victim.stderr.read()[-2000:]
    epoch_at_kill = torch.load(checkpoint, weights_only=True)["epoch"]
    assert epoch_at_kill < 3, "the run finished before it could be killed"
    assert not (killed / "result-rank0.json").exists()

    resuming = _start([sys.executable, str(WORKER), "--out", str(killed), *args])
    _in_process(["--out", str(straight), *args])  # the uninterrupted run, meanwhile
    assert f"resuming after epoch {epoch_at_kill}/3" in _finish(resuming)
    a, b = _result(straight), _result(killed)
    assert b["resumed"] == epoch_at_kill and b["epochs_run"] == 3 - epoch_at_kill
    # One process on one CPU thread is bitwise reproducible, so "within noise" is exact here.
    assert b["accuracy_after"] == pytest.approx(a["accuracy_after"], abs=0.3)
    assert b["param_sum"] == pytest.approx(a["param_sum"], rel=1e-6)


def test_torchrun_two_gloo_processes_match_one_process(tmp_path, data_dir):
    one, two = tmp_path / "one", tmp_path / "two"
    args = ["--epochs", "4", "--data", str(data_dir)]
    pair = _start([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                   str(WORKER), "--out", str(two), *args])
    _in_process(["--out", str(one), *args])
    _finish(pair)
    single, rank0, rank1 = _result(one), _result(two, 0), _result(two, 1)
    assert single["world_size"] == 1 and rank0["world_size"] == 2
    # Metrics are all-reduced and DDP keeps the replicas in step: both ranks agree exactly.
    assert rank0["accuracy_after"] == rank1["accuracy_after"]
    assert rank0["param_sum"] == pytest.approx(rank1["param_sum"], rel=1e-9)
    assert single["accuracy_after"] > 90
    assert abs(rank0["accuracy_after"] - single["accuracy_after"]) <= 3.0  # same recipe, other sample order
    assert sorted(p.name for p in (two / "checkpoints").iterdir()) == [CHECKPOINT_NAME]  # rank 0 wrote it
