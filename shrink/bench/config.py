"""Benchmark configuration and the candidates to compare.

Configs are frozen dataclasses validated in __post_init__; bad values raise ShrinkValueError (a
ValueError) with one line the user can act on. They round-trip through plain dicts (JSON).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Union

from shrink.config_io import Record
from shrink.errors import ShrinkValueError

PROVIDERS = ("cpu", "cuda", "tensorrt")
# processes: each candidate alone in its own worker process, at most one timing at a time, over
#   `processes` rounds of fresh workers (the default: what a deployment sees, with the spread
#   between processes in the interval);
# interleaved: every candidate in this process (kept to compare, docs/measured/local-bench-method.md,
#   and for in-memory PyTorch modules, which cannot be sent to another process).
METHODS = ("processes", "interleaved")
GRAPH_OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")
TORCH_DTYPES = ("fp32", "fp16", "bf16")

# The warmup every timing should have; smaller values are allowed (tests) but noted in the result.
RECOMMENDED_WARMUP_RUNS = 10
RECOMMENDED_WARMUP_SECONDS = 1.0
# The measured rounds stop here even if min_runs / min_seconds are not reached (the result says so):
# a fast model next to a slow one, or a tiny one, must not run for minutes.
DEFAULT_MAX_SECONDS = 120.0


def _positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ShrinkValueError(f"{name} must be a positive integer, got {value!r}")


def _non_negative_number(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ShrinkValueError(f"{name} must be a number >= 0, got {value!r}")


def _one_of(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ShrinkValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


@dataclass(frozen=True)
class BenchConfig(Record):
    """How to time the candidates. Counts and durations apply to each candidate."""

    LABEL = "bench config keys"

    provider: str = "cpu"
    threads: int | None = None  # intra-op threads; None = physical cores of this machine
    batch: int = 1
    method: str = "processes"  # see METHODS
    processes: int = 4  # rounds of fresh worker processes (method processes); runs and seconds are split over them
    spinning: bool = True  # onnxruntime's intra-op threads spin after a run, as they do by default in a deployment
    self_check: bool = False  # also time the first candidate against itself: the null test
    warmup_runs: int = RECOMMENDED_WARMUP_RUNS
    warmup_seconds: float = RECOMMENDED_WARMUP_SECONDS
    min_runs: int = 50
    min_seconds: float = 5.0
    block_runs: int = 10  # runs per round-robin block of the slowest candidate (faster ones: as long)
    max_seconds: float | None = DEFAULT_MAX_SECONDS  # wall-clock cap on the measured rounds; None: no cap
    graph_optimization: str = "all"
    cuda_graphs: bool = False  # ORT CUDA EP and PyTorch on CUDA
    torch_dtype: str = "fp32"
    channels_last: bool = False
    # PyTorch on CUDA: let cuDNN time its algorithms, as ORT's CUDA EP does by default (EXHAUSTIVE).
    cudnn_benchmark: bool = True
    trt_fp16: bool = False
    trt_cache_dir: str | None = None  # None = ~/.cache/torch-shrink/trt
    measure_memory: bool = True
    profile: bool = False
    profile_runs: int = 20
    seed: int = 0  # synthetic inputs and bootstrap resampling

    def __post_init__(self) -> None:
        _one_of("provider", self.provider, PROVIDERS)
        if self.threads is not None:
            _positive_int("threads", self.threads)
        _one_of("method", self.method, METHODS)
        for name in ("batch", "warmup_runs", "min_runs", "block_runs", "profile_runs", "processes"):
            _positive_int(name, getattr(self, name))
        _non_negative_number("warmup_seconds", self.warmup_seconds)
        _non_negative_number("min_seconds", self.min_seconds)
        if self.max_seconds is not None:
            _non_negative_number("max_seconds", self.max_seconds)
        _one_of("graph_optimization", self.graph_optimization, GRAPH_OPTIMIZATION_LEVELS)
        _one_of("torch_dtype", self.torch_dtype, TORCH_DTYPES)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ShrinkValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        if self.cuda_graphs and self.provider == "cpu":
            raise ShrinkValueError("cuda_graphs needs provider cuda (or tensorrt), not cpu")
        if self.trt_fp16 and self.provider != "tensorrt":
            raise ShrinkValueError("trt_fp16 only applies to provider tensorrt")

    @property
    def device(self) -> str:
        """Where PyTorch candidates run: on the GPU whenever an ORT GPU provider is asked for."""
        return "cpu" if self.provider == "cpu" else "cuda"


    def below_recommended_warmup(self) -> bool:
        return (
            self.warmup_runs < RECOMMENDED_WARMUP_RUNS
            or self.warmup_seconds < RECOMMENDED_WARMUP_SECONDS
        )


@dataclass(frozen=True)
class OnnxCandidate:
    """An ONNX file timed with onnxruntime on the configured provider."""

    path: str
    name: str | None = None

    def __post_init__(self) -> None:
        if not str(self.path):
            raise ShrinkValueError("ONNX candidate path is empty")

    @property
    def label(self) -> str:
        return self.name or Path(self.path).name

    @property
    def source(self) -> str:
        return str(self.path)


@dataclass(frozen=True)
class TorchCandidate:
    """A PyTorch model timed eagerly or with CUDA graphs.

    Give either `spec` (a registry spec for shrink.load.load_model, plus optional `weights`), or an
    in-memory `module` with its `input_shape` (C, H, W). Only a spec can be re-created in a fresh
    process, so only a spec gets a memory measurement.
    """

    spec: str | None = None
    weights: str | None = None
    module: Any = field(default=None, compare=False, repr=False)
    input_shape: tuple[int, ...] | None = None
    name: str | None = None
    model_code: str | None = None  # the Python file the user trusts for a file.py:factory model (shrink.models.code)

    def __post_init__(self) -> None:
        if (self.spec is None) == (self.module is None):
            raise ShrinkValueError("a torch candidate needs exactly one of spec or module")
        if self.module is not None and self.input_shape is None:
            raise ShrinkValueError("a torch candidate given as a module needs input_shape (C, H, W)")
        if self.input_shape is not None:
            if len(self.input_shape) < 1 or any(
                isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in self.input_shape
            ):
                raise ShrinkValueError(f"input_shape must be positive integers, got {self.input_shape!r}")

    @property
    def label(self) -> str:
        return self.name or (f"torch:{self.spec}" if self.spec else "torch:module")

    @property
    def portable(self) -> bool:
        """Whether another process can re-create it (a spec can; an in-memory module cannot)."""
        return self.spec is not None

    @property
    def source(self) -> str:
        return self.spec if self.spec else f"<in-memory {type(self.module).__name__}>"


Candidate = Union[OnnxCandidate, TorchCandidate]


def candidate_to_dict(candidate: Candidate) -> dict[str, Any] | None:
    """A candidate that a fresh process can re-create, or None (an in-memory module)."""
    if isinstance(candidate, OnnxCandidate):
        return {"kind": "onnx", "path": str(candidate.path), "name": candidate.name}
    if isinstance(candidate, TorchCandidate) and candidate.spec is not None:
        shape = list(candidate.input_shape) if candidate.input_shape else None
        return {"kind": "torch", "spec": candidate.spec, "weights": candidate.weights, "input_shape": shape,
                "model_code": candidate.model_code, "name": candidate.name}
    return None


def candidate_from_dict(data: Mapping[str, Any]) -> Candidate:
    if data["kind"] == "onnx":
        return OnnxCandidate(data["path"], data.get("name"))
    shape = tuple(data["input_shape"]) if data.get("input_shape") else None
    return TorchCandidate(spec=data["spec"], weights=data.get("weights"), input_shape=shape,
                          model_code=data.get("model_code"), name=data.get("name"))


def unique_labels(candidates: list[Candidate] | tuple[Candidate, ...]) -> list[str]:
    """Distinct, readable labels: the file name, else parent/file name (run dirs all hold a
    model.onnx), else #2, #3 ... appended."""
    first = [cand.label for cand in candidates]
    labels = list(first)
    for i, cand in enumerate(candidates):
        if first.count(first[i]) > 1 and isinstance(cand, OnnxCandidate) and not cand.name:
            path = Path(cand.path)
            labels[i] = f"{path.parent.name}/{path.name}" if path.parent.name else path.name
    seen: dict[str, int] = {}
    result = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        result.append(label if seen[label] == 1 else f"{label}#{seen[label]}")
    return result
