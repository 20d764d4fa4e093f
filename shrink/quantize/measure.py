"""Accuracy (in the task's metric) and output fidelity of a candidate through onnxruntime (optimized
sessions, i.e. the fused int8 kernels that will really run), on the eval split.

Fidelity joins every output of the graph (a detector's boxes and class logits alike); top-1
agreement is a classifier's only."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shrink.data import BatchOptions
from shrink.evaluate import evaluate_onnx
from shrink.numerics import sqnr_db, top1_agreement
from shrink.ort_session import create_session

# Eval images on which a candidate's logits are compared with the fp32 file's.
COMPARE_IMAGES = 500
# ...at most this many input values (they are held in memory for all candidates).
COMPARE_MAX_INPUT_VALUES = 25_000_000
EVAL_BATCH = 256


@dataclass(frozen=True)
class Fidelity:
    images: int
    top1_agreement: float | None  # None: not a classifier
    logits_sqnr_db: float  # over every output


@dataclass(frozen=True)
class Reference:
    """Fixed eval inputs and the fp32 file's outputs on them (joined per image), computed once per run."""

    inputs: tuple[np.ndarray, ...]
    logits: np.ndarray  # (images, every output value of one image)
    classifier: bool  # one (batch, classes) output: top-1 agreement means something


def session_for(path, threads: int | None):
    return create_session(path, "cpu", intra_op_threads=threads)


def accuracy(path, split, *, threads: int | None, limit: int | None) -> float:
    """The ONNX file's task metric on `split` in % (top-1, mIoU or mAP: shrink.evaluate, the number
    `shrink eval` prints)."""
    return evaluate_onnx(session_for(path, threads), split, batch_size=EVAL_BATCH, limit=limit).accuracy


def _run(session, inputs) -> np.ndarray:
    """Every output of every image, one row per image."""
    name = session.get_inputs()[0].name
    rows = []
    for x in inputs:
        outputs = session.run(None, {name: x})
        rows.append(np.concatenate([o.reshape(len(o), -1) for o in outputs], axis=1))
    return np.concatenate(rows)


def reference(fp32_path, split, *, threads: int | None, images: int = COMPARE_IMAGES) -> Reference:
    per_image = int(np.prod(split.info.input_shape))
    images = max(1, min(images, COMPARE_MAX_INPUT_VALUES // per_image))
    inputs, seen = [], 0
    for x, _ in split.batches(BatchOptions(batch_size=min(EVAL_BATCH, images))):
        inputs.append(x[: images - seen].numpy().astype(np.float32))
        seen += len(inputs[-1])
        if seen >= images:
            break
    session = session_for(fp32_path, threads)
    outputs = session.get_outputs()
    classifier = len(outputs) == 1 and len(outputs[0].shape) == 2
    return Reference(tuple(inputs), _run(session, inputs), classifier)


def fidelity(candidate_path, ref: Reference, *, threads: int | None) -> Fidelity:
    """The candidate's logits against the fp32 file's on the reference inputs."""
    out = _run(session_for(candidate_path, threads), ref.inputs)
    agreement = top1_agreement(ref.logits, out).rate if ref.classifier else None
    return Fidelity(len(out), agreement, sqnr_db(ref.logits, out))
