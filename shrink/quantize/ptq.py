"""onnxruntime post-training quantization of one recipe: pre-processing, then static or dynamic."""

from __future__ import annotations

import contextlib
import inspect
import io
import logging
import warnings
from pathlib import Path

import numpy as np

from shrink.errors import ShrinkError, first_line
from shrink.quantize.calibration import CalibrationReader
from shrink.quantize.recipe import QuantRecipe

log = logging.getLogger(__name__)

# Dynamic quantization is for MatMul/Gemm-heavy graphs: its ConvInteger path is slow on CPUs.
DYNAMIC_DEFAULT_OPS = ("MatMul", "Gemm")


@contextlib.contextmanager
def quiet():
    """onnxruntime.quantization logs and warns a lot; keep the console for results. Its WARNINGs
    too: a segmenter's shape tensors (int64, for Resize) get a multi-line "unsupported type to
    quantize" each, though leaving them in int64 is right; what counts is measured afterwards."""
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(max(level, logging.ERROR))
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def preprocess(fp32_path: Path, out_path: Path) -> Path:
    """quant_pre_process: symbolic shape inference, then onnxruntime's basic graph optimizations (it
    folds BatchNorm into Conv, so the folded weights are what get quantized)."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        with quiet():
            quant_pre_process(str(fp32_path), str(out_path))
    except Exception as exc:  # symbolic shape inference does not know every op
        log.warning("quant_pre_process failed (%s); retrying without symbolic shape inference", first_line(exc, with_type=True))
        try:
            with quiet():
                quant_pre_process(str(fp32_path), str(out_path), skip_symbolic_shape=True)
        except Exception as exc2:
            raise ShrinkError(f"quantization pre-processing failed: {first_line(exc2, with_type=True)}") from exc2
    return out_path


def calibration_cache_file(recipe: QuantRecipe, cache_dir: Path) -> Path:
    """Where `recipe`'s calibration ranges are cached. Ranges depend only on the method and on which
    tensors are calibrated (not on per-channel, reduce_range, format, types or excluded nodes), and
    calibrating every op type covers any subset, so recipes share one calibration per method."""
    shared = cache_dir / f"calibration-{recipe.method}-all.json"
    if recipe.op_types is None or shared.is_file():
        return shared
    return cache_dir / f"calibration-{recipe.method}-{'+'.join(recipe.op_types)}.json"


def _supports_calibration_cache() -> bool:
    from onnxruntime.quantization import quantize_static

    return "calibration_cache_path" in inspect.signature(quantize_static).parameters


def quantize_recipe(pre_path: Path, recipe: QuantRecipe, out_path: Path, input_name: str,
                    calibration: list[np.ndarray] | None, cache_dir: Path | None = None) -> Path:
    """Quantize the pre-processed model with `recipe` into `out_path`.

    With `cache_dir`, calibration ranges are cached there and shared by recipes that calibrate alike
    (when this onnxruntime supports calibration_cache_path), so a search calibrates once per method."""
    from onnxruntime.quantization import quantize_dynamic, quantize_static

    kwargs = recipe.ort_kwargs()
    if recipe.kind == "static" and cache_dir is not None and _supports_calibration_cache():
        kwargs["calibration_cache_path"] = str(calibration_cache_file(recipe, cache_dir))
    try:
        with quiet():
            if recipe.kind == "dynamic":
                kwargs["op_types_to_quantize"] = kwargs["op_types_to_quantize"] or list(DYNAMIC_DEFAULT_OPS)
                quantize_dynamic(str(pre_path), str(out_path), **kwargs)
            else:
                if not calibration:
                    raise ShrinkError("static quantization needs calibration data")
                quantize_static(str(pre_path), str(out_path), CalibrationReader(input_name, calibration), **kwargs)
    except ShrinkError:
        raise
    except Exception as exc:
        raise ShrinkError(f"onnxruntime could not quantize with {recipe.name}: {first_line(exc, with_type=True)}") from exc
    return out_path
