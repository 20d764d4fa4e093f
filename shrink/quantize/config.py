"""QuantizeConfig and the thresholds the quantize stage decides by."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from shrink.quantize.calibration import DEFAULT_CALIBRATION_IMAGES
from shrink.config_io import Record
from shrink.errors import ShrinkValueError
from shrink.quantize.recipe import QuantRecipe

MODES = ("auto", "static", "dynamic")

# Auto mode ships int8 only within this many points of top-1 below the fp32 ONNX file.
DEFAULT_BUDGET_PT = 0.5
# ...and only when it is measurably faster: the lower end of the 95% interval of the speedup must
# exceed 1.0 (never slower), and the median speedup must reach this, or int8 costs accuracy for
# nothing.
MIN_SPEEDUP = 1.05
# A layer whose quantized weights or input activation fall below this SQNR is a candidate for
# staying in fp32 (~4.5 bits of effective precision).
LAYER_SQNR_EXCLUDE_DB = 28.0
# At most this many layers are kept in fp32 by the SQNR-driven recipe.
MAX_EXCLUDED_LAYERS = 3
# Images used for the per-layer SQNR analysis (a subset of the calibration images).
SQNR_IMAGES = 64


@dataclass(frozen=True)
class QuantizeConfig(Record):
    """What to quantize and how to decide.

    mode  auto:    search recipes, measure accuracy and latency here, ship the fastest within budget
                   (or fp32, with the reason, when none is faster)
          static:  quantize with `recipe` only; accuracy is still measured and reported
          dynamic: dynamic quantization (MatMul/Gemm-heavy models such as ViT) with `recipe`
    """

    LABEL = "quantize config keys"

    mode: str = "auto"
    recipe: QuantRecipe = field(default_factory=QuantRecipe)  # the fixed recipe, and auto's base
    calibration_images: int = DEFAULT_CALIBRATION_IMAGES
    calibration_seed: int = 0
    force_random_calibration: bool = False  # allow synthetic data; every record then says so
    budget_pt: float = DEFAULT_BUDGET_PT
    min_speedup: float = MIN_SPEEDUP
    eval_limit: int | None = None  # eval images for accuracy; None: the whole split
    threads: int | None = None  # intra-op threads for timing; None: the physical cores
    batch: int = 1  # batch size for timing
    bench_seconds: float = 5.0  # measured seconds per candidate, over all its worker processes
    bench_min_runs: int = 30
    bench_warmup_seconds: float = 1.0  # per candidate and worker process; below 1 s the bench record notes it
    # Rounds of fresh worker processes: shrink bench's method, shorter (it times up to 8 candidates).
    bench_processes: int = 2
    bench_max_seconds: float = 60.0  # wall-clock cap of each timing run; the record says when it stopped one
    # The runtimes the shipped file must load on. Empty: any mainstream ONNX runtime, so only
    # standard-domain operators ship (QDQ); ["onnxruntime"] alone: its own operators (QOperator) may.
    runtimes: tuple[str, ...] = ()
    # Ship int8 even where it is not measured faster here: for a deployment CPU that is not this one
    # (within the accuracy budget still; every record says it was forced, and the speed measured here).
    force_int8: bool = False
    per_layer_sqnr: bool = True  # analyse layers and try a recipe that keeps the worst in fp32
    measure_all: bool = False  # accuracy of every candidate, not only until the fastest within budget

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ShrinkValueError(f"mode must be one of {', '.join(MODES)}; got {self.mode!r}")
        if self.mode == "dynamic" and self.recipe.kind != "dynamic":
            object.__setattr__(self, "recipe", dataclasses.replace(self.recipe, kind="dynamic", activation_type="u8"))
        if self.calibration_images < 1:
            raise ShrinkValueError(f"calibration_images must be >= 1, got {self.calibration_images}")
        if self.calibration_seed < 0:
            raise ShrinkValueError(f"calibration_seed must be >= 0, got {self.calibration_seed}")
        if not self.budget_pt >= 0:
            raise ShrinkValueError(f"budget_pt must be >= 0 (points of top-1), got {self.budget_pt}")
        if not self.min_speedup >= 1.0:
            raise ShrinkValueError(f"min_speedup must be >= 1.0, got {self.min_speedup}")
        if self.eval_limit is not None and self.eval_limit < 1:
            raise ShrinkValueError(f"eval_limit must be >= 1 (or None for the whole split), got {self.eval_limit}")
        if self.threads is not None and self.threads < 1:
            raise ShrinkValueError(f"threads must be >= 1, got {self.threads}")
        if self.batch < 1 or self.bench_min_runs < 1 or not self.bench_seconds >= 0 or not self.bench_warmup_seconds >= 0:
            raise ShrinkValueError("batch and bench_min_runs must be >= 1, bench_seconds and bench_warmup_seconds >= 0")
        if isinstance(self.bench_processes, bool) or not isinstance(self.bench_processes, int) or self.bench_processes < 1:
            raise ShrinkValueError(f"bench_processes must be a positive integer, got {self.bench_processes!r}")
        object.__setattr__(self, "runtimes", tuple(self.runtimes))
        if not all(isinstance(r, str) and r for r in self.runtimes):
            raise ShrinkValueError(f"runtimes must be runtime names, e.g. [onnxruntime], got {list(self.runtimes)!r}")
        if not self.bench_max_seconds > 0:
            raise ShrinkValueError(f"bench_max_seconds must be > 0, got {self.bench_max_seconds}")

