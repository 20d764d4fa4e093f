"""Layer-wise least-squares reconstruction: re-fit a pruned model so that each layer reproduces
the dense model's output at the channels it kept, on a few hundred unlabeled training images.

Pruning removes input channels that every kept output summed over, so each output drifts, and the
drift compounds layer after layer: BN recalibration re-centres it but cannot undo it, which leaves
heavily pruned models near chance. Here every conv and linear layer, in the order the forward pass
runs them, gets the weights that best map its inputs *in the pruned model* (where the layers before
it are already re-fitted) to the dense layer's outputs at its kept channels: one ridge regression
per layer (per group for grouped and depthwise convs), solved in closed form, with the pruned
weights as the prior. The dense model's BatchNorm statistics then describe the outputs again, so no
recalibration follows. This is the reconstruction step of ThiNet (Luo et al. 2017) and of He et
al.'s channel pruning (2017), applied to the channels our planner chose.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from shrink.data import BatchOptions
from shrink.errors import ShrinkError

FITTED_TYPES = (nn.Conv2d, nn.Linear)
MAX_FEATURES = 8192  # a layer whose regression has more inputs than this is left as it is (memory)
# The dense model's outputs for every fitted layer are computed in one pass and kept when they fit
# in this much memory; otherwise each layer reruns the dense model (same result, several times slower).
TARGET_CACHE_BYTES = 1 << 30
# A linear layer has no normalisation after it, so its weights' scale is the logits' scale, and it
# sees one regression row per image: on MobileNetV2 at 8.5x the classifier's plain re-fit grew its
# weights 20-38x and 5 epochs of distillation from there ended 3.8 points lower, while ResNet-18's
# fc grows 2-4x and trains well from its re-fit. Leaving such a head as pruned instead cost up to
# 46 points right after pruning (l1 plan), so its ridge is raised until the weights grow at most
# this much (docs/measured/local-recovery-reconstruct-kd.md, -criteria.md).
LINEAR_GROWTH_LIMIT = 8.0
PROGRESS_LINES = 10  # about this many progress lines per reconstruction, whatever the depth
UNALIGNED = "reads regions the pruned model chose itself, which are not the dense model's"


@dataclass(frozen=True)
class LayerFit:
    """One re-fitted layer: its relative output error (||XW - Y||^2 / ||Y||^2 on the fit images,
    Y the dense layer's output at the kept channels) with the pruned weights and with the new ones."""

    name: str
    error_before: float
    error_after: float
    bounded: str = ""  # for a linear layer whose plain re-fit grew too much: how it was held back


@dataclass(frozen=True)
class ReconstructResult:
    images: int
    layers: tuple[LayerFit, ...]
    skipped: tuple[tuple[str, str], ...]  # (layer, why it was left as it is)
    seconds: float

    def to_dict(self) -> dict:
        return {"images": self.images, "layers": [asdict(f) for f in self.layers],
                "skipped": [list(s) for s in self.skipped], "seconds": self.seconds}


class _Reached(Exception):
    """Raised by a hook to stop a forward pass once the layer of interest has run."""


@torch.no_grad()
def reconstruct(
    model: nn.Module,
    dense: nn.Module,
    removed_outputs: dict[str, frozenset[int]],
    split,
    *,
    max_images: int = 512,
    ridge: float = 1e-3,
    batch_size: int = 128,
    device: str = "cpu",
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> ReconstructResult:
    """Re-fit every conv/linear layer of the pruned `model` in place (see the module docstring).

    `removed_outputs` maps a layer name to the output channels pruning removed from it, in the
    dense model's numbering (`PrunePlan.removed_outputs()`); a layer it does not name kept all its
    outputs. `ridge` is relative to the mean input energy: larger stays closer to the pruned
    weights. Both models are moved to `device` and left in the train/eval mode they came in.
    `progress`, when given, receives about PROGRESS_LINES one-line reports (layers done, time).
    Every process of a torchrun job computes the same result from the same images."""
    t0 = time.perf_counter()
    model_was_training, dense_was_training = model.training, dense.training
    model.to(device).eval()
    dense.to(device).eval()
    try:
        images = _images(split, max_images, seed, device)
        layers, dense_layers = dict(model.named_modules()), dict(dense.named_modules())
        # a detector's second stage reads the regions each model chose itself (TwoStageNet): its
        # rows are other boxes in the dense model, so there is nothing to fit them to
        unaligned = tuple(getattr(model, "unaligned_layers", ()))
        todo, skipped = [], []
        for name, calls in _execution_order(model, images[:2]):
            layer, reference = layers[name], dense_layers.get(name)
            why = (UNALIGNED if unaligned and name.startswith(unaligned) else None) or _why_not(layer, reference, calls)
            if why is not None:
                skipped.append((name, why))
            else:
                todo.append((name, layer, reference, _kept(name, layer, reference, removed_outputs).to(device)))
        targets = _dense_targets(dense, todo, images, batch_size)
        report = progress or (lambda message: None)
        report(f"reconstruct: {len(todo)} layers on {len(images)} images"
               + ("" if targets is not None else " (dense outputs too big to keep: rerun per layer)"))
        every = max(1, len(todo) // PROGRESS_LINES)
        fits = []
        for done, (name, layer, reference, kept) in enumerate(todo, start=1):
            def target(start: int, x: torch.Tensor, reference=reference, kept=kept, name=name) -> torch.Tensor:
                if targets is not None:
                    return targets[name][start // batch_size]
                return _select(reference, _capture(dense, reference, x, "out"), kept)

            fit = _refit(name, model, layer, target, images, batch_size, ridge)
            fits.append(fit)
            if done % every == 0 or done == len(todo) or fit.bounded:
                outcome = f"error {fit.error_before:.3f} -> {fit.error_after:.3f}" + (f"; {fit.bounded}" if fit.bounded else "")
                report(f"reconstruct: {done}/{len(todo)} layers ({name}: {outcome}), {time.perf_counter() - t0:.0f}s")
    finally:
        model.train(model_was_training)
        dense.train(dense_was_training)
    return ReconstructResult(len(images), tuple(fits), tuple(skipped), time.perf_counter() - t0)


def _images(split, max_images: int, seed: int, device: str) -> torch.Tensor:
    if max_images < 2:
        raise ShrinkError(f"reconstruction needs at least 2 images, got max_images={max_images}")
    # Shuffled, so a class-sorted dataset still gives every class; no augmentation.
    options = BatchOptions(batch_size=min(max_images, 1024), shuffle=True, seed=seed, device=device)
    chunks, seen = [], 0
    for x, _ in split.batches(options):
        chunks.append(x[: max_images - seen])
        seen += len(chunks[-1])
        if seen >= max_images:
            break
    return torch.cat(chunks)


def _execution_order(model: nn.Module, x: torch.Tensor) -> list[tuple[str, int]]:
    """(name, number of calls) of every conv/linear layer, in the order one forward pass runs them."""
    calls: dict[str, int] = {}
    handles = [m.register_forward_hook(lambda m, i, o, name=name: calls.__setitem__(name, calls.get(name, 0) + 1))
               for name, m in model.named_modules() if isinstance(m, FITTED_TYPES)]
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    return list(calls.items())  # dicts keep insertion order: the first call of each


def _why_not(layer: nn.Module, reference: nn.Module | None, calls: int) -> str | None:
    if reference is None or type(reference) is not type(layer):
        return "no layer of the same name and type in the dense model"
    if calls > 1:
        return f"runs {calls} times per forward pass (shared weights)"
    if isinstance(layer, nn.Conv2d) and (layer.groups != reference.groups and layer.groups != layer.in_channels):
        return "its groups changed in a way the regression does not follow"
    if _features(layer) > MAX_FEATURES:
        return f"{_features(layer)} inputs per output: too many for a closed-form fit"
    return None


def _features(layer: nn.Module) -> int:
    """Inputs of one output's regression (bias included)."""
    if isinstance(layer, nn.Conv2d):
        d = layer.in_channels // layer.groups * layer.kernel_size[0] * layer.kernel_size[1]
    else:
        d = layer.in_features
    return d + (layer.bias is not None)


def _kept(name: str, layer: nn.Module, reference: nn.Module, removed: dict[str, frozenset[int]]) -> torch.Tensor:
    width = reference.weight.shape[0]
    kept = [i for i in range(width) if i not in removed.get(name, frozenset())]
    if len(kept) != layer.weight.shape[0]:
        raise ShrinkError(f"the plan keeps {len(kept)} of {name}'s {width} outputs but the pruned model has "
                          f"{layer.weight.shape[0]}: the plan does not belong to this model")
    return torch.tensor(kept, dtype=torch.long)


def _capture(model: nn.Module, layer: nn.Module, x: torch.Tensor, what: str) -> torch.Tensor:
    """The input (`what="in"`) or output of `layer` when `model` runs on `x`; stops the pass there."""
    seen = {}

    def hook(module, inputs, output):
        seen["value"] = inputs[0] if what == "in" else output
        raise _Reached

    handle = layer.register_forward_hook(hook)
    try:
        model(x)
    except _Reached:
        pass
    finally:
        handle.remove()
    if "value" not in seen:
        raise ShrinkError("a layer did not run during the forward pass it was found in")
    return seen["value"]


def _select(layer: nn.Module, output: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    """The kept channels of a layer's output (dim 1 of a conv's, the last of a linear's)."""
    return output.index_select(1 if isinstance(layer, nn.Conv2d) else -1, kept)


def _dense_targets(dense: nn.Module, todo: list, images: torch.Tensor, batch_size: int) -> dict | None:
    """{layer name: [kept output of each image chunk]} from one dense pass per chunk, or None when
    that would take more than TARGET_CACHE_BYTES."""
    outputs: dict[str, torch.Tensor] = {}
    handles = [reference.register_forward_hook(
        lambda m, i, o, name=name, reference=reference, kept=kept: outputs.__setitem__(name, _select(reference, o, kept)))
        for name, _, reference, kept in todo]
    try:
        dense(images[:1])
        per_image = sum(t.numel() * t.element_size() for t in outputs.values())
        if per_image * len(images) > TARGET_CACHE_BYTES:
            return None
        cached: dict[str, list[torch.Tensor]] = {name: [] for name, *_ in todo}
        for start in range(0, len(images), batch_size):
            outputs.clear()
            dense(images[start:start + batch_size])
            for name, chunks in cached.items():
                chunks.append(outputs[name])
        return cached
    finally:
        for h in handles:
            h.remove()


def _rows(layer: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Regression rows: inputs (G, R, D) and targets (G, R, O/G), G the conv's groups (1 for linear)."""
    if isinstance(layer, nn.Conv2d):
        g = layer.groups
        cols = F.unfold(x, layer.kernel_size, dilation=layer.dilation, padding=layer.padding, stride=layer.stride)
        b, d, positions = cols.shape
        inputs = cols.view(b, g, d // g, positions).permute(1, 0, 3, 2).reshape(g, b * positions, d // g)
        targets = y.flatten(2).view(b, g, -1, positions).permute(1, 0, 3, 2).reshape(g, b * positions, -1)
    else:
        inputs, targets = x.reshape(1, -1, x.shape[-1]), y.reshape(1, -1, y.shape[-1])
    if layer.bias is not None:
        inputs = torch.cat([inputs, inputs.new_ones(inputs.shape[:2] + (1,))], dim=2)
    return inputs, targets


def _flat_weight(layer: nn.Module) -> torch.Tensor:
    """The layer's weights as (G, D, O/G), matching _rows (bias last)."""
    w = layer.weight
    g = layer.groups if isinstance(layer, nn.Conv2d) else 1
    flat = w.reshape(g, w.shape[0] // g, -1).transpose(1, 2)
    if layer.bias is not None:
        flat = torch.cat([flat, layer.bias.reshape(g, 1, -1)], dim=1)
    return flat.double()


def _set_flat_weight(layer: nn.Module, flat: torch.Tensor) -> None:
    if layer.bias is not None:
        layer.bias.copy_(flat[:, -1, :].reshape(-1))
        flat = flat[:, :-1, :]
    layer.weight.copy_(flat.transpose(1, 2).reshape(layer.weight.shape))


def _refit(name, model, layer, target, images, batch_size, ridge) -> LayerFit:
    """Fit `layer` by ridge regression from its inputs in `model` to `target(start, x)`, the dense
    outputs at its kept channels for the image chunk x starting at `start`; a linear layer's fit is
    bounded (see LINEAR_GROWTH_LIMIT)."""
    gram = cross = None
    energy = 0.0
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size]
        inputs, targets = _rows(layer, _capture(model, layer, x, "in"), target(start, x))
        # float64: the normal equations square the condition number, and float32 sums over 10^5 rows
        # left errors of 1e-3 where the dense output is exactly reachable.
        inputs, targets = inputs.double(), targets.double()
        g_part, c_part = inputs.transpose(1, 2) @ inputs, inputs.transpose(1, 2) @ targets
        gram = g_part if gram is None else gram + g_part
        cross = c_part if cross is None else cross + c_part
        energy += float(targets.square().sum())
    prior = _flat_weight(layer)
    scale = gram.diagonal(dim1=1, dim2=2).mean(dim=1).clamp_min(1e-12).view(-1, 1, 1)
    eye = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
    fitted = torch.linalg.solve(gram + ridge * scale * eye, cross + ridge * scale * prior)

    def error(w: torch.Tensor) -> float:
        # ||XW - Y||^2 = tr(W'GW) - 2 tr(W'C) + ||Y||^2, from the sums already made
        residual = (w * (gram @ w)).sum() - 2 * (w * cross).sum() + energy
        return max(float(residual), 0.0) / max(energy, 1e-30)

    growth = float(fitted.norm() / prior.norm().clamp_min(1e-12))
    bounded = ""
    if isinstance(layer, nn.Linear) and growth > LINEAR_GROWTH_LIMIT:
        fitted, used = _bounded_fit(gram, cross, prior, scale * eye, ridge)
        bounded = (f"re-fit bounded: it would grow the weights {growth:.1f}x; ridge {used:.3g} keeps it at "
                   f"{float(fitted.norm() / prior.norm()):.1f}x (limit {LINEAR_GROWTH_LIMIT:g}x)")
    _set_flat_weight(layer, fitted.to(layer.weight.dtype))
    return LayerFit(name, error(prior), error(fitted), bounded)


def _bounded_fit(gram, cross, prior, unit, ridge) -> tuple[torch.Tensor, float]:
    """The ridge fit with the smallest ridge (>= `ridge`) whose change from the prior is at most
    (LINEAR_GROWTH_LIMIT - 1) times the prior's norm, so the weights grow at most LINEAR_GROWTH_LIMIT
    times. The change shrinks monotonically as the ridge grows, so bisection on log(ridge) finds it."""
    budget = (LINEAR_GROWTH_LIMIT - 1) * float(prior.norm())

    def change(r: float) -> tuple[torch.Tensor, bool]:
        w = torch.linalg.solve(gram + r * unit, cross + r * unit @ prior)
        return w, float((w - prior).norm()) <= budget

    low, high = ridge, ridge * 10
    for _ in range(40):  # a decade at a time; bounded, since a zero prior leaves no budget at all
        if change(high)[1]:
            break
        low, high = high, high * 10
    for _ in range(30):  # ratio high/low from 10 to 10^(2^-30): far finer than matters
        middle = (low * high) ** 0.5
        low, high = (low, middle) if change(middle)[1] else (middle, high)
    return change(high)[0], high
