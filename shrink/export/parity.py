"""ONNX (through onnxruntime) vs the fp32 PyTorch model: every output at fixed batch sizes, and
top-1 agreement over the eval split (a segmenter's or detector's outputs: elementwise there too).

fp32 files must match elementwise (FP32_RTOL / FP32_ATOL) and agree on every eval image; fp16
files are judged by SQNR and top-1 agreement, since fp16 logits cannot match fp32 to 1e-4.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from shrink.data import BatchOptions
from shrink.export.config import (
    FP16_MIN_SQNR_DB,
    FP16_MIN_TOP1_AGREEMENT,
    FP32_ATOL,
    FP32_RTOL,
    MIN_TOP1_AGREEMENT,
    PARITY_BATCHES,
    ExportConfig,
)
from shrink.export.result import BatchParity, ParityReport
from shrink.numerics import Agreement, max_abs_diff, max_tolerance_ratio, sqnr_db, top1_agreement


def _ort_outputs(session, x: torch.Tensor) -> list[np.ndarray]:
    name = session.get_inputs()[0].name
    return session.run(None, {name: x.numpy().astype(np.float32)})


@torch.no_grad()
def _torch_outputs(model: torch.nn.Module, x: torch.Tensor) -> list[np.ndarray]:
    out = model(x)
    return [o.float().numpy() for o in (out if isinstance(out, (tuple, list)) else (out,))]


def _joined(outputs: list[np.ndarray]) -> np.ndarray:
    """Every output of a batch side by side, (N, total): one comparison covers them all."""
    return np.concatenate([o.reshape(len(o), -1) for o in outputs], axis=1)


def _shape_mismatch(ref: list[np.ndarray], got: list[np.ndarray]) -> str | None:
    ref_shapes, got_shapes = [r.shape for r in ref], [g.shape for g in got]
    if ref_shapes != got_shapes:
        return f"ONNX output shapes {got_shapes} != PyTorch {ref_shapes}"
    return None


def parity_inputs(input_shape: tuple[int, ...], batch: int, split=None, seed: int = 0) -> torch.Tensor:
    """The first `batch` images of `split` (real inputs) when given, else seeded standard normals."""
    if split is not None and len(split) >= batch:
        x, _ = next(iter(split.batches(BatchOptions(batch_size=batch))))
        return x.float()
    return torch.randn(batch, *input_shape, generator=torch.Generator().manual_seed(seed))


def _eval_batches(split, config: ExportConfig) -> Iterator[torch.Tensor]:
    seen = 0
    for x, _ in split.batches(BatchOptions(batch_size=config.eval_batch_size)):
        if config.eval_limit is not None:
            if seen >= config.eval_limit:
                return
            x = x[: config.eval_limit - seen]
        seen += len(x)
        yield x.float()


def _tie_tolerance(reference: np.ndarray) -> float:
    # Either of the two top logits may move by atol + rtol |logit| and still pass elementwise.
    return 2.0 * (FP32_ATOL + FP32_RTOL * float(np.max(np.abs(reference)))) if reference.size else 0.0


def _dense_mismatch(model: torch.nn.Module, session, x: torch.Tensor, ref: np.ndarray,
                    got: np.ndarray) -> tuple[float, int]:
    """(largest difference of an image that fails even alone, or 0.0; images rechecked alone).

    An image whose outputs differ inside a batch is compared again on its own (batch 1 on both
    sides). PyTorch's convolutions round differently at different batch sizes, and a detector that
    ranks and keeps regions (Faster R-CNN's proposals) turns a near-tie in those last bits into a
    different row order; the ONNX file is faulty only if the image differs alone as well."""
    off = np.array([max_tolerance_ratio(r[None], g[None], FP32_RTOL, FP32_ATOL) > 1.0 for r, g in zip(ref, got)])
    worst = 0.0
    for i in np.flatnonzero(off):
        one = x[i: i + 1]
        ref_one, got_one = _joined(_torch_outputs(model, one)), _joined(_ort_outputs(session, one))
        if max_tolerance_ratio(ref_one, got_one, FP32_RTOL, FP32_ATOL) > 1.0:
            worst = max(worst, max_abs_diff(ref_one, got_one))
    return worst, int(off.sum())


def check_parity(model: torch.nn.Module, session, input_shape: tuple[int, ...], config: ExportConfig,
                 split=None) -> ParityReport:
    """Compare `session` (the exported file) with the fp32 PyTorch `model` (eval mode).

    `split` is the eval split (real images); without one only the fixed batches are compared, on
    random inputs, and the report says eval_images=0."""
    fp16 = config.precision == "fp16"
    failures: list[str] = []
    batches = []
    for batch in PARITY_BATCHES:
        x = parity_inputs(input_shape, batch, split, config.seed)
        ref_outputs, got_outputs = _torch_outputs(model, x), _ort_outputs(session, x)
        mismatch = _shape_mismatch(ref_outputs, got_outputs)
        if mismatch:
            failures.append(f"batch {batch}: {mismatch}")
            continue
        ref, got = _joined(ref_outputs), _joined(got_outputs)
        bp = BatchParity(batch, max_abs_diff(ref, got), max_tolerance_ratio(ref, got, FP32_RTOL, FP32_ATOL),
                         sqnr_db(ref, got))
        batches.append(bp)
        if not fp16 and bp.max_tolerance_ratio > 1.0:
            failures.append(f"batch {batch}: outputs differ by up to {bp.max_abs_diff:.3g} "
                            f"(allowed: {FP32_ATOL:g} + {FP32_RTOL:g}|x|)")
        if fp16 and bp.sqnr_db < FP16_MIN_SQNR_DB:
            failures.append(f"batch {batch}: fp16 SQNR {bp.sqnr_db:.1f} dB < {FP16_MIN_SQNR_DB} dB")

    agreement = Agreement(0, 0, 0)
    signal = noise = 0.0
    dense_images = 0  # a segmenter's or detector's eval images: compared elementwise, not by top-1
    rechecked_alone = 0
    if split is not None:
        for x in _eval_batches(split, config):
            ref_outputs, got_outputs = _torch_outputs(model, x), _ort_outputs(session, x)
            ref, got = _joined(ref_outputs), _joined(got_outputs)
            if len(ref_outputs) == 1 and ref_outputs[0].ndim == 2:
                tie = 0.0 if fp16 else _tie_tolerance(ref)
                agreement = agreement + top1_agreement(ref, got, tie_tolerance=tie)
            else:
                dense_images += len(x)
                if not fp16:
                    worst, alone = _dense_mismatch(model, session, x, ref, got)
                    rechecked_alone += alone
                    if worst:
                        failures.append(f"outputs differ from PyTorch by up to {worst:.3g} on eval images "
                                        f"(allowed: {FP32_ATOL:g} + {FP32_RTOL:g}|x|), compared one image at a time")
            signal += float(np.sum(ref.astype(np.float64) ** 2))
            noise += float(np.sum((ref.astype(np.float64) - got) ** 2))
    eval_sqnr = None
    if agreement.total or dense_images:
        eval_sqnr = float("inf") if noise == 0 else 10.0 * float(np.log10(signal / noise)) if signal else float("-inf")
    if dense_images and fp16 and eval_sqnr < FP16_MIN_SQNR_DB:
        failures.append(f"fp16 SQNR {eval_sqnr:.1f} dB < {FP16_MIN_SQNR_DB} dB on the eval images")
    if agreement.total:
        if fp16:
            if agreement.rate < FP16_MIN_TOP1_AGREEMENT:
                failures.append(f"fp16 top-1 agreement {agreement.rate:.2%} < {FP16_MIN_TOP1_AGREEMENT:.0%} "
                                f"on {agreement.total} eval images")
            if eval_sqnr < FP16_MIN_SQNR_DB:
                failures.append(f"fp16 SQNR {eval_sqnr:.1f} dB < {FP16_MIN_SQNR_DB} dB on the eval images")
        elif agreement.rate_excluding_ties < MIN_TOP1_AGREEMENT:
            failures.append(f"top-1 differs from PyTorch on {agreement.disagree - agreement.near_ties} of "
                            f"{agreement.total} eval images")
    return ParityReport(
        precision=config.precision,
        provider=session.get_providers()[0],
        batches=tuple(batches),
        eval_images=agreement.total or dense_images,
        eval_dataset=split.info.name if split is not None else None,
        top1_agree=agreement.agree,
        top1_near_ties=agreement.near_ties,
        eval_sqnr_db=eval_sqnr,
        passed=not failures,
        failures=tuple(failures),
        rechecked_alone=rechecked_alone,
    )
