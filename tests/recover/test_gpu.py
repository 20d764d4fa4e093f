"""Recovery on CUDA: bf16 autocast + channels_last training, distillation, and torchrun with one
process per GPU (DDP over nccl with 2 GPUs or more; with one GPU, the 1-process path on CUDA).

Run on the GPU machine with `pytest -m gpu tests/recover`. Skipped with a reason without CUDA.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from recover_fixtures import WORKER, digits, fast_train, save_split, tiny_net, trained_tiny

from shrink.recover import DistillConfig, RecoverConfig, recover

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU visible to PyTorch"),
]


def test_distillation_on_cuda_with_bf16_and_channels_last():
    teacher = trained_tiny(width=16)
    torch.manual_seed(0)
    student = tiny_net(8)
    config = RecoverConfig(train=fast_train(epochs=2, device="cuda"), distill=DistillConfig(temperature=2.0))
    result = recover(student, teacher, digits("train").to("cuda"), config, eval_split=digits("test").to("cuda"),
                     progress=False)
    assert result.accuracy_after > 85
    assert next(result.model.parameters()).device.type == "cpu"
    assert all(p.is_contiguous() for p in result.model.parameters())  # channels_last undone


def test_torchrun_nccl_one_process_per_gpu(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    save_split(digits("train", 640), data / "train.pt")
    save_split(digits("test"), data / "test.pt")
    n = min(torch.cuda.device_count(), 2)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}",
                           str(WORKER), "--out", str(out), "--data", str(data), "--device", "cuda", "--epochs", "3"],
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((out / "result-rank0.json").read_text())
    assert result["world_size"] == n and result["accuracy_after"] > 85
