"""Per-layer SQNR of a QDQ model against its fp32 model, built on onnxruntime's qdq_loss_debug.

For every Conv / Gemm / MatMul of the fp32 (pre-processed) model:
  weight_sqnr_db  quantized vs fp32 weights (qdq_loss_debug's weight matching);
  input_sqnr_db   the layer's fp32 input activations (collected with qdq_loss_debug on real
                  calibration images) against the same values quantized and dequantized with the
                  scale and zero point the QDQ model uses for that input.
Both measure the error a layer's *own* quantization adds. (Comparing tensors across the two graphs
instead mixes in the error of every earlier layer, and QDQ folds a ReLU into the quantization range,
so a pre-ReLU tensor looks badly quantized when it is not.) The poorest layers are the ones worth
keeping in fp32: typically the first conv, fed by the raw image, and the classifier.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from shrink.numerics import sqnr_db
from shrink.quantize.calibration import CalibrationReader
from shrink.quantize.ptq import quiet

LAYER_OPS = ("Conv", "Gemm", "MatMul")
# Cap on the input values analysed (activations of every layer are held in memory at once).
SQNR_MAX_INPUT_VALUES = 2_000_000


@dataclass(frozen=True)
class LayerSqnr:
    node: str
    op_type: str
    weight_sqnr_db: float | None
    input_sqnr_db: float | None

    @property
    def local_sqnr_db(self) -> float:
        """The poorer of its weight and input SQNR: the error this layer's own quantization adds."""
        values = [v for v in (self.weight_sqnr_db, self.input_sqnr_db) if v is not None]
        return min(values) if values else math.inf


def analysis_images(batches: list[np.ndarray], limit: int) -> list[np.ndarray]:
    """At most `limit` images (and at most SQNR_MAX_INPUT_VALUES input values), in one batch."""
    images = np.concatenate(batches)[:limit]
    per_image = int(np.prod(images.shape[1:]))
    keep = max(1, min(len(images), SQNR_MAX_INPUT_VALUES // per_image))
    return [images[:keep]]


def fake_quantize(x: np.ndarray, scale: np.ndarray, zero_point: np.ndarray) -> np.ndarray:
    """Quantize then dequantize `x` as ONNX QuantizeLinear/DequantizeLinear do (per-tensor)."""
    info = np.iinfo(zero_point.dtype)
    zp = zero_point.astype(np.float64)
    q = np.clip(np.rint(x.astype(np.float64) / scale.astype(np.float64)) + zp, info.min, info.max)
    return ((q - zp) * scale).astype(np.float32)


def _input_qparams(qdq: onnx.GraphProto) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """node name -> (scale, zero point) of the DequantizeLinear feeding its first input."""
    inits = {t.name: t for t in qdq.initializer}
    producers = {out: node for node in qdq.node for out in node.output}
    params = {}
    for node in qdq.node:
        if node.op_type not in LAYER_OPS or not node.input:
            continue
        dq = producers.get(node.input[0])
        if dq is None or dq.op_type != "DequantizeLinear" or len(dq.input) < 3:
            continue
        if dq.input[1] in inits and dq.input[2] in inits:
            scale, zp = numpy_helper.to_array(inits[dq.input[1]]), numpy_helper.to_array(inits[dq.input[2]])
            if scale.size == 1:  # activations are quantized per tensor
                params[node.name] = (scale.reshape(()), zp.reshape(()))
    return params


def _finite(value) -> float | None:
    return float(value) if value is not None and math.isfinite(float(value)) else None


def layer_sqnr(float_path: Path, qdq_path: Path, input_name: str, batches: list[np.ndarray],
               workdir: Path) -> tuple[LayerSqnr, ...]:
    """Per-layer SQNR (see the module docstring), poorest first."""
    from onnxruntime.quantization import qdq_loss_debug as dbg

    augmented = workdir / "sqnr.float.onnx"
    with quiet():
        dbg.modify_model_output_intermediate_tensors(str(float_path), str(augmented), list(LAYER_OPS))
        activations = dbg.collect_activations(str(augmented), CalibrationReader(input_name, batches))
        weight_err = dbg.compute_weight_error(dbg.create_weight_matching(str(float_path), str(qdq_path)))
    augmented.unlink(missing_ok=True)

    graph = onnx.load(str(float_path), load_external_data=False).graph
    qparams = _input_qparams(onnx.load(str(qdq_path), load_external_data=False).graph)
    initializers = {t.name for t in graph.initializer}
    layers = []
    for node in graph.node:
        if node.op_type not in LAYER_OPS:
            continue
        weight = next((i for i in node.input[1:] if i in initializers), None)
        values = activations.get(node.input[0]) if node.input else None
        input_sqnr = None
        if values is not None and node.name in qparams:
            x = np.concatenate([v.ravel() for v in values])
            input_sqnr = sqnr_db(x, fake_quantize(x, *qparams[node.name]))
        layers.append(LayerSqnr(
            node=node.name,
            op_type=node.op_type,
            weight_sqnr_db=_finite(weight_err.get(weight)) if weight else None,
            input_sqnr_db=_finite(input_sqnr),
        ))
    return tuple(sorted(layers, key=lambda layer: layer.local_sqnr_db))


def layers_to_exclude(layers: tuple[LayerSqnr, ...], threshold_db: float, max_layers: int) -> tuple[str, ...]:
    """Layers below `threshold_db` (poorest first, at most `max_layers`); when none is, the
    `min(2, max_layers)` poorest, so the search can still see whether keeping them in fp32 helps."""
    ranked = [layer for layer in layers if layer.node and math.isfinite(layer.local_sqnr_db)]
    below = [layer.node for layer in ranked if layer.local_sqnr_db < threshold_db][:max_layers]
    return tuple(below or [layer.node for layer in ranked[: min(2, max_layers)]])
