"""Failures become errors or partial plans, never hangs or crashes: torch-pruning #532,
shufflenet's channel shuffle, swin_t's runaway graph, and the time and memory guards."""

import time

import pytest
import torch
import torch.nn as nn
from prune_fixtures import FeatureConcat, MemoryHog, PythonLoop, RotaryBlock, tv_model
from torch_pruning import ops
from torch_pruning._helpers import _HybridIndex

from shrink.errors import ShrinkError
from shrink.prune import GuardLimits, PruneConfig, PruneWarning, check_exactness, plan
from shrink.prune.graph import UNSIGNED_NEGATIVE, signed_dim, trace_graph
from shrink.prune.groups import IncoherentGroup, walk


def test_signed_dim_reads_unsigned_minus_one():
    assert signed_dim(2**64 - 1, 4) == 3 and signed_dim(2**64 - 2, 3) == 1 and signed_dim(1, 4) == 1


def test_issue_532_torch_still_reports_the_unsigned_dim():
    a = torch.randn(1, 4, 8, requires_grad=True)
    assert torch.cat([a, a], dim=-1).grad_fn._saved_dim >= UNSIGNED_NEGATIVE  # the pitfall is real here


def test_issue_532_graph_never_sees_an_unsigned_dim():
    graph = trace_graph(FeatureConcat(), (torch.randn(2, 5, 16),))
    concats = [n for n in graph.module2node.values() if n.type == ops.OPTYPE.CONCAT]
    assert concats and all(n.grad_fn._saved_dim < UNSIGNED_NEGATIVE for n in concats)


def test_issue_532_channels_last_concat_is_mapped_and_exact():
    model, x = FeatureConcat(), torch.randn(2, 5, 16)
    result = plan(model, x, PruneConfig(ratio=0.5, round_to=4))
    mix_inputs = [layer for g in result.groups for layer in g.layers if layer.name == "mix" and layer.axis == "in"]
    removed = sorted(i for layer in mix_inputs for i in layer.removed)
    assert any(i < 24 for i in removed) and any(i >= 24 for i in removed)  # both concat inputs, at their offsets
    report = check_exactness(model, result, x)
    assert report.passed and report.kind == "exact", report.summary()


def test_issue_532_rotary_cycle_terminates_and_explains():
    model, x = RotaryBlock(), torch.randn(2, 6, 16)
    start = time.perf_counter()
    with pytest.warns(PruneWarning, match="keeping the widths of: q"):
        result = plan(model, x, PruneConfig(ratio=0.5, round_to=1), limits=GuardLimits(seconds=60))
    assert time.perf_counter() - start < 30
    assert [g.root for g in result.groups] == ["pre"]
    assert check_exactness(model, result, x).passed


def test_a_walk_whose_indices_keep_shifting_is_stopped():
    model, inputs = tv_model("resnet18", 32)
    graph = trace_graph(model, inputs)
    node = graph.module2node[model.layer1[0].conv1]
    for dep in node.dependencies:  # corrupt one edge: every pass around the residual cycle shifts by one
        dep.index_mapping[0] = lambda idxs: [_HybridIndex(i.idx + 1, i.root_idx) for i in idxs]
    with pytest.raises(IncoherentGroup, match="fall outside|did not converge|more than any layer"):
        walk(graph, model.conv1, graph.get_pruner_of_module(model.conv1).prune_out_channels, 64)


def test_shufflenet_prunes_the_rest_and_names_what_it_left_whole():
    model, inputs = tv_model("shufflenet_v2_x1_0", 64)
    with pytest.warns(PruneWarning, match=r"groups left whole, keeping the widths of: stage"):
        result = plan(model, inputs, PruneConfig(ratio=0.5))
    assert len(result.groups) >= 10 and result.mac_reduction > 1.5
    assert any("map" in n.reason for n in result.left_whole)
    assert check_exactness(model, result, inputs).passed


def test_swin_t_does_not_run_away():
    """torch-pruning alone grew to 24 GB here; we stop incoherent walks and prune the MLPs."""
    model, inputs = tv_model("swin_t", 64)
    with pytest.warns(PruneWarning, match="groups left whole"):
        result = plan(model, inputs, PruneConfig(ratio=0.5), limits=GuardLimits(seconds=300, memory_mb=4000))
    assert all(".mlp." in g.root for g in result.groups) and len(result.groups) == 12
    assert check_exactness(model, result, inputs).passed


def test_time_guard_turns_a_hang_into_an_error():
    start = time.perf_counter()
    with pytest.raises(ShrinkError, match="time limit of 1 s while building the dependency graph"):
        plan(PythonLoop(), torch.randn(1, 3, 8, 8), limits=GuardLimits(seconds=1))
    assert time.perf_counter() - start < 20


def test_memory_guard_turns_a_runaway_into_an_error():
    with pytest.raises(ShrinkError, match=r"grew memory by .* over the limit of 0\.2 GB while building"):
        plan(MemoryHog(), torch.randn(1, 3, 8, 8), limits=GuardLimits(memory_mb=200))


def test_a_model_that_cannot_be_traced_names_the_operation():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(8 * 6 * 6, 10))
    with pytest.raises(ShrinkError, match="could not build the dependency graph: RuntimeError"):
        plan(model, torch.randn(1, 3, 16, 16))  # wrong input size for the Linear
