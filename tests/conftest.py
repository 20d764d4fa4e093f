"""Shared fixtures. Tests never download: SHRINK_NO_DOWNLOAD is set for the whole session."""

from __future__ import annotations

import os
from pathlib import Path  # noqa: F401

import pytest

os.environ["SHRINK_NO_DOWNLOAD"] = "1"


@pytest.fixture(scope="session")
def fmnist_dir() -> Path:
    """The real Fashion-MNIST files; `make test` installs them (tools/install-dataset)."""
    from shrink.data.fmnist import find_fmnist

    return find_fmnist()


@pytest.fixture(scope="session")
def fmnist_test(fmnist_dir):
    from shrink.data import load_data

    return load_data("fmnist", "test", data_dir=fmnist_dir)
