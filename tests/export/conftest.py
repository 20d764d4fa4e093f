"""Fixtures for the export tests (the models themselves live in export_fixtures.py)."""

from __future__ import annotations

import pytest
from export_fixtures import tiny_loaded, tiny_split

from shrink.data.splits import TensorSplit
from shrink.models import LoadedModel


@pytest.fixture
def loaded() -> LoadedModel:
    return tiny_loaded()


@pytest.fixture
def split() -> TensorSplit:
    return tiny_split()
