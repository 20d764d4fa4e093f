"""Prune tests run single-threaded: on a busy 2-core machine OpenMP's spinning makes two threads
several times slower than one, and these tests are dominated by small forward passes."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
