"""RunSummary, the typed record the manifest, the report and `shrink run --json` read."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "report"))
from report_fixtures import make_summary  # noqa: E402

from shrink.candidates import Candidate  # noqa: E402
from shrink.errors import ShrinkValueError  # noqa: E402
from shrink.run.summary import RunSummary  # noqa: E402


@pytest.mark.parametrize("int8", [True, False])
def test_a_summary_round_trips_through_json(int8):
    summary = RunSummary.from_dict(make_summary(int8=int8))
    text = json.dumps(summary.to_dict())
    assert RunSummary.from_dict(json.loads(text)) == summary
    assert json.dumps(RunSummary.from_dict(json.loads(text)).to_dict()) == text


def test_rows_are_found_by_candidate_and_the_shipped_one_is_flagged():
    summary = RunSummary.from_dict(make_summary(int8=False))
    assert summary.dense.name == Candidate.DENSE_FP32 and summary.dense.candidate is Candidate.DENSE_FP32
    assert summary.shipped_row.name == Candidate.PRUNED_FP32
    unmade = summary.row(Candidate.PRUNED_INT8)
    assert unmade.file is None and set(unmade.to_dict()) == {"name", "file", "shipped", "note"}


def test_another_kind_of_file_is_refused():
    with pytest.raises(ShrinkValueError, match="not a torch-shrink run manifest"):
        RunSummary.from_dict({**make_summary(), "format": "torch-shrink/prune-plan"})
