"""The exactness check: proof that a plan removes exactly what it claims, physically.

For the groups where it applies:
1. make the planned channels dead in a copy of the model: zero everything that writes them
   (conv/linear rows and biases, BN affine, attention q/k/v rows, bare parameters); record y0;
2. physically remove the same channels (apply the plan); record y1;
3. require max|y0 - y1| <= 1e-5 * max|y0|.

Dead channels stay dead through ReLU/GELU/SiLU/Hardswish, residual adds, concatenation, pooling,
depthwise and grouped convolutions, squeeze-excitation gates and whole attention heads, so removing
them changes nothing. That is not true where a LayerNorm or GroupNorm normalizes across the pruned
channels, or where attention loses head dims (its softmax scale changes). Those groups are not
checked with a looser tolerance; they get the structural check instead: the pruned model runs,
keeps the output shape, and has exactly the predicted widths and parameter count.

Weights are randomized first (BN statistics calibrated on the inputs, affine and constant-init
parameters drawn at random), so a zero-initialized head or a 1e-6 layer scale cannot make the
check vacuous.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

import torch
import torch.nn as nn
import torch_pruning as tp

from shrink.prune.apply import ChannelTracker, apply, check_widths, replay_step
from shrink.param_count import count_params
from shrink.prune.counting import as_inputs
from shrink.prune.plan import PlanGroup, PlanStep, PrunedLayer, PrunePlan
from shrink.recover.bn import fresh_bn_statistics

EXACT_RTOL = 1e-5  # max|y0 - y1| <= EXACT_RTOL * max|y0|
DEGENERATE_SPREAD = 1e-6  # an output whose spread is below this share of its magnitude proves little


@dataclass(frozen=True)
class ExactnessReport:
    kind: str  # "exact", "exact+structural", "structural"
    passed: bool
    exact_groups: int
    structural_groups: int
    max_abs_diff: float | None  # over the exactly checked groups
    max_abs_output: float | None
    tolerance: float
    params_expected: int
    params_actual: int | None
    widths_match: bool
    forward_ok: bool
    seconds: float
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["notes"] = list(self.notes)
        return d

    def summary(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        parts = [f"{verdict} ({self.kind})"]
        if self.exact_groups:
            parts.append(
                f"{self.exact_groups} groups exact: max|y0-y1| = {self.max_abs_diff:.2e}, "
                f"{self.max_abs_diff / max(self.max_abs_output, 1e-30):.1e} of max|y0| (limit {self.tolerance:g})"
            )
        if self.structural_groups:
            parts.append(f"{self.structural_groups} groups structural (LayerNorm-coupled or head dims)")
        parts.append(f"params {self.params_actual} vs predicted {self.params_expected}")
        return "; ".join(parts)


# ----------------------------------------------------------------------------- weights


@torch.no_grad()
def randomize(model: nn.Module, example_inputs: tuple, seed: int = 0) -> nn.Module:
    """Non-degenerate weights, in place: BN statistics from one pass over the inputs, random affine
    parameters, and random values for every constant-initialized parameter (zero heads, layer scales)."""
    gen = torch.Generator().manual_seed(seed)
    with fresh_bn_statistics(model) as norms:
        if norms:
            model(*example_inputs)  # one pass sets the statistics of that pass
    for module in model.modules():
        if isinstance(module, (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)):
            for p in (getattr(module, "weight", None),):
                if p is not None:
                    p.copy_(torch.rand(p.shape, generator=gen) + 0.5)
            bias = getattr(module, "bias", None)
            if bias is not None:
                bias.copy_((torch.rand(bias.shape, generator=gen) - 0.5) * 0.4)
    for p in model.parameters():
        if p.numel() > 1 and bool((p == p.reshape(-1)[0]).all()):
            if float(p.reshape(-1)[0]) == 0.0:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
            else:
                p.copy_(torch.rand(p.shape, generator=gen) + 0.5)
    return model.eval()


# ----------------------------------------------------------------------------- zeroing


@torch.no_grad()
def zero_layer(model: nn.Module, layer: PrunedLayer, idxs: list[int]) -> None:
    """Zero what `layer` writes into channels `idxs` (current numbering); readers are left alone."""
    if layer.axis != "out" or not idxs:
        return
    index = torch.tensor(idxs, dtype=torch.long)
    if layer.optype == "PARAMETER":
        param = model.get_parameter(layer.name)
        param.index_fill_(layer.dim % param.ndim, index, 0.0)
        return
    module = model.get_submodule(layer.name)
    if layer.optype in ("CONV", "DEPTHWISE_CONV"):
        module.weight.index_fill_(1 if module.transposed else 0, index, 0.0)
        _zero(module.bias, index)
    elif layer.optype == "LINEAR":
        module.weight.index_fill_(0, index, 0.0)
        _zero(module.bias, index)
    elif layer.optype in ("BN", "IN", "LN", "GN"):
        _zero(getattr(module, "weight", None), index)
        _zero(getattr(module, "bias", None), index)
        _zero(getattr(module, "running_mean", None), index)  # a zero input then leaves a zero output
    elif layer.optype == "EMBED":
        module.weight.index_fill_(1, index, 0.0)
    elif layer.optype == "MHA":
        _zero_attention(module, index)


def _zero(tensor: torch.Tensor | None, index: torch.Tensor, dim: int = 0) -> None:
    if tensor is not None:
        tensor.index_fill_(dim, index, 0.0)


def _zero_attention(mha: nn.MultiheadAttention, index: torch.Tensor) -> None:
    """q, k and v of the dead dims, and the output rows: a fully dead head attends uniformly to
    zero values, so it contributes nothing."""
    e = mha.embed_dim
    qkv_rows = torch.cat([index, index + e, index + 2 * e])
    _zero(mha.in_proj_weight, qkv_rows)
    _zero(mha.in_proj_bias, qkv_rows)
    for name in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
        _zero(getattr(mha, name, None), index)
    _zero(mha.out_proj.weight, index)
    _zero(mha.out_proj.bias, index)
    for name in ("bias_k", "bias_v"):
        _zero(getattr(mha, name, None), index, dim=2)


def zero_groups(model: nn.Module, groups: Iterable[PlanGroup], tracker: ChannelTracker) -> None:
    for group in groups:
        for layer in group.layers:
            zero_layer(model, layer, tracker.to_current((layer.name, layer.axis), layer.removed))


# ----------------------------------------------------------------------------- running


def outputs(model: nn.Module, example_inputs: tuple) -> torch.Tensor:
    with torch.no_grad():
        out = model(*example_inputs)
    return torch.cat([o.detach().float().reshape(-1) for o in tp.utils.flatten_as_list(out)])


def compare(y0: torch.Tensor, y1: torch.Tensor) -> tuple[float, float, bool]:
    """(max|y0 - y1|, max|y0|, within tolerance)."""
    if y0.shape != y1.shape:
        return float("inf"), float(y0.abs().max()), False
    diff = float((y0 - y1).abs().max())
    scale = float(y0.abs().max())
    ok = bool(torch.isfinite(y0).all()) and diff <= EXACT_RTOL * scale
    return diff, scale, ok


@dataclass(frozen=True)
class ZeroThenRemove:
    """The outputs with some channels made dead (y0) against those with the same channels removed (y1)."""

    dead_outputs: torch.Tensor  # y0
    max_abs_diff: float
    max_abs_output: float
    passed: bool  # within EXACT_RTOL


def zero_then_remove(
    model: nn.Module,
    groups: Iterable[PlanGroup],
    tracker: ChannelTracker,
    inputs: tuple,
    removed_outputs: torch.Tensor,
    *,
    in_place: bool = False,
) -> ZeroThenRemove:
    """Zero what writes the channels `groups` remove (numbered as `tracker` says: `model` may be
    pruned already) and compare the outputs to `removed_outputs`, those of the model with the same
    channels removed. Works on a copy unless `in_place`."""
    dead = model if in_place else copy.deepcopy(model)
    zero_groups(dead, groups, tracker)
    y0 = outputs(dead, inputs)
    diff, scale, ok = compare(y0, removed_outputs)
    return ZeroThenRemove(y0, diff, scale, ok)


def check_exactness(model: nn.Module, plan: PrunePlan, example_inputs, seed: int = 0) -> ExactnessReport:
    """Check `plan` against the dense `model` (not changed): exactly where the zero-then-remove
    argument holds, structurally everywhere."""
    start = time.perf_counter()
    inputs = as_inputs(example_inputs)
    base = randomize(_on_cpu_copy(model), inputs, seed)
    exact = [g for g in plan.groups if g.inexact is None]
    notes = sorted({g.inexact for g in plan.groups if g.inexact})
    diff = scale = None
    exact_ok = True
    if exact:
        diff, scale, exact_ok, spread = _exact_part(base, plan, exact, inputs)
        if spread < DEGENERATE_SPREAD * max(scale, 1e-30):
            notes.append("the reference output is nearly constant, so the exact check proves little")
    forward_ok, params, widths_ok, message = _structural(base, plan, inputs)
    if message:
        notes.append(message)
    inexact_count = len(plan.groups) - len(exact)
    kind = "exact" if not inexact_count else ("structural" if not exact else "exact+structural")
    passed = exact_ok and forward_ok and widths_ok and params == plan.after.params
    return ExactnessReport(
        kind=kind,
        passed=passed,
        exact_groups=len(exact),
        structural_groups=inexact_count,
        max_abs_diff=diff,
        max_abs_output=scale,
        tolerance=EXACT_RTOL,
        params_expected=plan.after.params,
        params_actual=params,
        widths_match=widths_ok,
        forward_ok=forward_ok,
        seconds=time.perf_counter() - start,
        notes=tuple(notes),
    )


def _on_cpu_copy(model: nn.Module) -> nn.Module:
    return copy.deepcopy(model).cpu()


def _exact_part(base: nn.Module, plan: PrunePlan, exact: list[PlanGroup], inputs: tuple) -> tuple[float, float, bool, float]:
    """(max|y0-y1|, max|y0|, within tolerance, spread of y0) for the exactly checkable groups.
    A function of its own so that its model copies are freed on return (big models)."""
    removed = outputs(apply(base, plan.with_groups(lambda g: g.inexact is None)), inputs)
    check = zero_then_remove(base, exact, ChannelTracker(), inputs, removed)
    return check.max_abs_diff, check.max_abs_output, check.passed, _spread(check.dead_outputs)


def _spread(y: torch.Tensor) -> float:
    return float(y.std()) if y.numel() > 1 else 0.0


def _structural(base: nn.Module, plan: PrunePlan, inputs: tuple) -> tuple[bool, int | None, bool, str | None]:
    """(forward runs with the dense output shape, params, widths as planned, message)."""
    try:
        pruned = apply(base, plan)
    except Exception as exc:  # noqa: BLE001 - any replay failure fails the check
        return False, None, False, f"applying the plan failed: {exc}"
    params = count_params(pruned)
    try:
        check_widths(pruned, plan, "after")
        widths_ok = True
    except Exception as exc:  # noqa: BLE001
        return False, params, False, str(exc)
    try:
        dense_shape, pruned_shape = outputs(base, inputs).shape, outputs(pruned, inputs).shape
    except Exception as exc:  # noqa: BLE001
        return False, params, widths_ok, f"the pruned model's forward pass failed: {type(exc).__name__}: {exc}"
    if dense_shape != pruned_shape:
        return False, params, widths_ok, f"output size changed from {tuple(dense_shape)} to {tuple(pruned_shape)}"
    return True, params, widths_ok, None


def check_step(
    model: nn.Module, done: tuple[PlanStep, ...], step: PlanStep, example_inputs: tuple, seed: int = 0
) -> tuple[str | None, nn.Module | None]:
    """(why removing `step`'s groups from `model` is wrong or None, the pruned copy).

    `model` is already pruned by the steps in `done`. Used while planning: the pruned copy (random
    weights) must run with the dense output shape, and the groups where the zero-then-remove
    argument holds must match exactly.
    """
    base = randomize(copy.deepcopy(model), example_inputs, seed)
    pruned = copy.deepcopy(base)
    try:
        replay_step(pruned, step, ChannelTracker.after(done))
        y_pruned = outputs(pruned, example_inputs)
    except Exception as exc:  # noqa: BLE001 - any failure disqualifies these groups
        return f"the pruned model's forward pass fails ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})", None
    exact = [g for g in step.groups if g.inexact is None]
    if not exact:
        return _output_size_change(outputs(base, example_inputs), y_pruned), pruned
    y_removed = y_pruned
    if len(exact) != len(step.groups):
        only_exact = copy.deepcopy(base)
        replay_step(only_exact, PlanStep(step.index, step.ratio, tuple(exact)), ChannelTracker.after(done))
        y_removed = outputs(only_exact, example_inputs)
    # base is ours: zero it in place
    check = zero_then_remove(base, exact, ChannelTracker.after(done), example_inputs, y_removed, in_place=True)
    changed = _output_size_change(check.dead_outputs, y_pruned)
    if changed:
        return changed, pruned
    if not check.passed:
        return (f"the zero-then-remove check fails (max|y0-y1| = {check.max_abs_diff:.2e} for "
                f"max|y0| = {check.max_abs_output:.2e})"), pruned
    return None, pruned


def _output_size_change(dense: torch.Tensor, pruned: torch.Tensor) -> str | None:
    if dense.shape == pruned.shape:
        return None
    return f"the output size changes from {tuple(dense.shape)} to {tuple(pruned.shape)}"
