"""onnxruntime int8 post-training quantization, decided by measuring on the target machine."""

from shrink.quantize.config import DEFAULT_BUDGET_PT, MIN_SPEEDUP, QuantizeConfig
from shrink.quantize.decide import decide
from shrink.quantize.recipe import QuantRecipe
from shrink.quantize.result import Decision, Measured, QuantizeResult, Verdict
from shrink.quantize.stage import quantize

__all__ = [
    "DEFAULT_BUDGET_PT",
    "Decision",
    "MIN_SPEEDUP",
    "Measured",
    "QuantRecipe",
    "QuantizeConfig",
    "QuantizeResult",
    "Verdict",
    "decide",
    "quantize",
]
