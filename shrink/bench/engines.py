"""Timing engines: one object per candidate whose `run_once()` runs one batch to completion.

- OrtCpuEngine: onnxruntime CPU EP, sequential execution, explicit intra-op threads.
- OrtGpuEngine: onnxruntime CUDA or TensorRT EP with IO binding (inputs and outputs stay on the
  GPU, so no host copies are timed), optionally with CUDA graphs.
- TorchEngine: PyTorch eager, or a captured CUDA graph, in fp32/fp16/bf16, optionally channels_last.

Inputs are synthetic (seeded standard normal): latency does not depend on the pixel values.
torch is imported only inside the functions that need it, so timing an ONNX file never pays for it.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol

import numpy as np

from shrink.bench.config import BenchConfig, Candidate, OnnxCandidate, TorchCandidate
from shrink.errors import ShrinkError
from shrink.onnxio.metadata import read_metadata
from shrink.ort_session import create_session, resolve_provider

# onnxruntime's type strings -> numpy dtypes for the synthetic inputs.
ORT_TYPE_TO_NUMPY = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(bfloat16)": None,  # numpy has no bfloat16; reported as unsupported below
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}
DEFAULT_TRT_CACHE = Path.home() / ".cache" / "torch-shrink" / "trt"


class Engine(Protocol):
    """What the runner needs from a candidate."""

    info: "EngineInfo"

    def run_once(self) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class EngineInfo:
    """How a candidate was run; goes into its result record."""

    engine: str  # e.g. ort-cpu, ort-cuda-iobinding-cudagraph, torch-cudagraph-cuda-fp16
    providers: tuple[str, ...]  # what the session really runs on (session.get_providers())
    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    input_dtypes: dict[str, str] = field(default_factory=dict)


def check_onnx_file(path: str | os.PathLike) -> None:
    """Fail early, with one line, on a missing or non-ONNX file (before minutes of timing)."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise ShrinkError(f"ONNX file not found: {path}")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises DecodeError and friends
        raise ShrinkError(f"{path} is not an ONNX model ({type(exc).__name__}: {exc})") from exc
    # protobuf parses many non-ONNX byte strings as an empty message; a model has a graph.
    if model.ir_version <= 0 or len(model.graph.node) == 0:
        raise ShrinkError(f"{path} is not an ONNX model (no graph nodes found)")


# Synthetic inputs may take at most this share of the memory available when the bench starts.
INPUT_MEMORY_SHARE = 0.5


def input_bytes(path: str | os.PathLike, batch: int) -> int:
    """Bytes of the synthetic inputs an ONNX file needs at `batch` (dynamic axes other than the
    batch count as 1: resolve_input_shape refuses them later with its own line)."""
    import onnx
    from onnx.helper import tensor_dtype_to_np_dtype

    model = onnx.load(str(path), load_external_data=False)
    initializers = {t.name for t in model.graph.initializer}
    total = 0
    for value in model.graph.input:
        if value.name in initializers:
            continue
        tensor = value.type.tensor_type
        count = 1
        for axis, dim in enumerate(tensor.shape.dim):
            count *= dim.dim_value if dim.HasField("dim_value") and dim.dim_value > 0 else (batch if axis == 0 else 1)
        try:
            itemsize = np.dtype(tensor_dtype_to_np_dtype(tensor.elem_type)).itemsize
        except (KeyError, TypeError, ValueError):
            itemsize = 4
        total += count * itemsize
    return total


def check_input_memory(path: str | os.PathLike, batch: int, available_mb: float | None) -> None:
    """Refuse, before any work, a batch whose inputs alone would not fit in memory."""
    needed = input_bytes(path, batch)
    if available_mb is not None and needed > INPUT_MEMORY_SHARE * available_mb * 2**20:
        raise ShrinkError(f"batch {batch} needs {needed / 2**30:.1f} GiB for the inputs of {Path(path).name} alone, "
                          f"more than half of the {available_mb / 1024:.1f} GiB of memory available; use a smaller --batch")


def check_runtime(candidates: list[Candidate] | tuple[Candidate, ...], config: BenchConfig) -> None:
    """Refuse, before any work, a provider or device this install cannot run (no silent fallback)."""
    if any(isinstance(c, OnnxCandidate) for c in candidates):
        resolve_provider(config.provider)  # raises with the list of available providers
    if config.device == "cuda" and any(isinstance(c, TorchCandidate) for c in candidates):
        import torch

        if not torch.cuda.is_available():
            raise ShrinkError(
                f"PyTorch cannot use CUDA here (torch {torch.__version__}, built for CUDA "
                f"{torch.version.cuda or 'none'}, no GPU visible); use --provider cpu"
            )


def declared_shape(meta: Mapping[str, str]) -> list | None:
    """The input shape a torch-shrink file declares in its metadata, which fills the axes a graph
    leaves dynamic; None for a file without it."""
    from shrink.data.onnx_contract import declared_image_shape  # light: no torch, no onnx

    image = declared_image_shape(meta)
    return [None, *image] if image else None


def _is_fixed(dim) -> bool:
    return isinstance(dim, int) and dim > 0


def _concrete_shape(shape: list, batch: int, dynamic_error: Callable[[int, Any], str]) -> tuple[int, ...]:
    """Fixed sizes as they are, a dynamic batch axis (0) as `batch`; any other dynamic axis is an
    error, worded by `dynamic_error(axis, dim)`."""
    dims = []
    for axis, dim in enumerate(shape):
        if _is_fixed(dim):
            dims.append(dim)
        elif axis == 0:
            dims.append(batch)
        else:
            raise ShrinkError(dynamic_error(axis, dim))
    return tuple(dims)


def resolve_input_shape(name: str, shape: list, batch: int, declared: list | None = None) -> tuple[int, ...]:
    """A concrete shape: the batch axis (0) from `batch` when dynamic; another dynamic axis from the
    file's declared input shape when it has one, else an error."""
    if declared and len(declared) == len(shape):
        shape = [dim if axis == 0 or _is_fixed(dim) else declared[axis] for axis, dim in enumerate(shape)]
    if shape and _is_fixed(shape[0]) and shape[0] != batch:
        raise ShrinkError(
            f"input {name!r} has a fixed batch size of {shape[0]} but batch {batch} was asked; "
            f"use --batch {shape[0]} or export with a dynamic batch axis"
        )
    return _concrete_shape(shape, batch, lambda axis, dim: (
        f"input {name!r} has a dynamic dimension {dim!r} at axis {axis}; only the batch "
        "axis (0) may be dynamic: export with a fixed input size"))


def synthetic_inputs(session_inputs: list, batch: int, seed: int, declared: list | None = None) -> dict[str, np.ndarray]:
    """Seeded inputs shaped and typed like the graph's inputs (batch axis from `batch`; other dynamic
    axes of a single input from `declared`, the file's own input shape)."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for node_arg in session_inputs:
        dtype = ORT_TYPE_TO_NUMPY.get(node_arg.type)
        if dtype is None:
            raise ShrinkError(f"input {node_arg.name!r} has type {node_arg.type}, which bench cannot synthesize")
        shape = resolve_input_shape(node_arg.name, list(node_arg.shape), batch,
                                    declared if len(session_inputs) == 1 else None)
        if np.issubdtype(dtype, np.floating):
            feeds[node_arg.name] = rng.standard_normal(shape).astype(dtype)
        else:
            feeds[node_arg.name] = np.zeros(shape, dtype=dtype)
    return feeds


def _input_info(feeds: dict[str, np.ndarray]) -> dict[str, Any]:
    return {
        "input_shapes": {k: tuple(v.shape) for k, v in feeds.items()},
        "input_dtypes": {k: str(v.dtype) for k, v in feeds.items()},
    }


class OrtCpuEngine:
    def __init__(self, path: str, config: BenchConfig, threads: int, profile_prefix: str | None = None):
        self.session = create_session(
            path,
            "cpu",
            intra_op_threads=threads,
            graph_optimization=config.graph_optimization,
            enable_profiling=profile_prefix is not None,
            profile_prefix=profile_prefix,
            spinning=config.spinning,
        )
        self.feeds = synthetic_inputs(self.session.get_inputs(), config.batch, config.seed,
                                      declared_shape(self.session.get_modelmeta().custom_metadata_map))
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.info = EngineInfo("ort-cpu", tuple(self.session.get_providers()), **_input_info(self.feeds))

    def run_once(self) -> None:
        self.session.run(self.output_names, self.feeds)

    def close(self) -> None:
        self.session = None


def _output_shape(node_arg, batch: int) -> tuple[int, ...]:
    """Output shape for preallocating CUDA-graph outputs (their addresses must never change)."""
    return _concrete_shape(node_arg.shape, batch, lambda axis, dim: (
        f"output {node_arg.name!r} has a dynamic dimension at axis {axis}; CUDA graphs need static output shapes"))


def _trt_shape_profile(feeds: dict[str, np.ndarray]) -> str:
    return ",".join(f"{name}:{'x'.join(str(d) for d in arr.shape)}" for name, arr in feeds.items())


def gpu_provider_options(config: BenchConfig, feeds: dict[str, np.ndarray]) -> dict[str, Any]:
    if config.provider == "cuda":
        options: dict[str, Any] = {"device_id": 0}
        if config.cuda_graphs:
            options["enable_cuda_graph"] = "1"
        return options
    cache = Path(config.trt_cache_dir) if config.trt_cache_dir else DEFAULT_TRT_CACHE
    cache.mkdir(parents=True, exist_ok=True)
    shapes = _trt_shape_profile(feeds)  # one static profile: the shape being timed
    return {
        "device_id": 0,
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": str(cache),
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": str(cache),
        "trt_fp16_enable": "True" if config.trt_fp16 else "False",
        "trt_cuda_graph_enable": "True" if config.cuda_graphs else "False",
        "trt_profile_min_shapes": shapes,
        "trt_profile_opt_shapes": shapes,
        "trt_profile_max_shapes": shapes,
    }


class OrtGpuEngine:
    """CUDA or TensorRT EP with IO binding: inputs copied to the GPU once, outputs left there."""

    def __init__(self, path: str, config: BenchConfig, threads: int, profile_prefix: str | None = None):
        import onnxruntime as ort

        # Inputs are needed before the session for TensorRT's shape profile; a CPU session would be
        # heavy for this, so read the declared inputs from the ONNX graph instead.
        probe_inputs = _graph_inputs(path)
        self.feeds = synthetic_inputs(probe_inputs, config.batch, config.seed, declared_shape(read_metadata(path)))
        self.session = create_session(
            path,
            config.provider,
            provider_options=gpu_provider_options(config, self.feeds),
            intra_op_threads=threads,
            graph_optimization=config.graph_optimization,
            enable_profiling=profile_prefix is not None,
            profile_prefix=profile_prefix,
        )
        self.binding = self.session.io_binding()
        self._device_values = []  # keep bound device buffers alive for the session's lifetime
        for name, array in self.feeds.items():
            value = ort.OrtValue.ortvalue_from_numpy(array, "cuda", 0)
            self._device_values.append(value)
            self.binding.bind_ortvalue_input(name, value)
        for node_arg in self.session.get_outputs():
            if config.cuda_graphs:
                dtype = ORT_TYPE_TO_NUMPY[node_arg.type]
                value = ort.OrtValue.ortvalue_from_shape_and_type(
                    _output_shape(node_arg, config.batch), dtype, "cuda", 0
                )
                self._device_values.append(value)
                self.binding.bind_ortvalue_output(node_arg.name, value)
            else:
                self.binding.bind_output(node_arg.name, "cuda", 0)
        name = "ort-cuda" if config.provider == "cuda" else "ort-tensorrt" + ("-fp16" if config.trt_fp16 else "")
        name += "-iobinding" + ("-cudagraph" if config.cuda_graphs else "")
        self.info = EngineInfo(name, tuple(self.session.get_providers()), **_input_info(self.feeds))

    def run_once(self) -> None:
        self.session.run_with_iobinding(self.binding)
        # run_with_iobinding already waits for the EP's stream; this makes the wait explicit.
        self.binding.synchronize_outputs()

    def output_devices(self) -> list[str]:
        """Where the outputs live after a run (tests check they stay on the GPU)."""
        return [value.device_name() for value in self.binding.get_outputs()]

    def close(self) -> None:
        self.binding = None
        self._device_values = []
        self.session = None


@dataclass(frozen=True)
class _GraphInput:
    """The subset of onnxruntime's NodeArg that synthetic_inputs reads."""

    name: str
    type: str
    shape: list


def _graph_inputs(path: str) -> list[_GraphInput]:
    """The graph's real inputs, read from the file (the session is not created yet)."""
    import onnx

    elem_type_names = {
        onnx.TensorProto.FLOAT: "tensor(float)",
        onnx.TensorProto.FLOAT16: "tensor(float16)",
        onnx.TensorProto.DOUBLE: "tensor(double)",
        onnx.TensorProto.BFLOAT16: "tensor(bfloat16)",
        onnx.TensorProto.INT64: "tensor(int64)",
        onnx.TensorProto.INT32: "tensor(int32)",
        onnx.TensorProto.INT8: "tensor(int8)",
        onnx.TensorProto.UINT8: "tensor(uint8)",
        onnx.TensorProto.BOOL: "tensor(bool)",
    }
    model = onnx.load(str(path), load_external_data=False)
    initializers = {init.name for init in model.graph.initializer}
    inputs = []
    for value in model.graph.input:
        if value.name in initializers:  # old exporters list weights as inputs too
            continue
        tensor = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tensor.shape.dim]
        type_name = elem_type_names.get(tensor.elem_type, f"tensor(elem_type {tensor.elem_type})")
        inputs.append(_GraphInput(value.name, type_name, dims))
    return inputs


TORCH_DTYPE_NAMES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


class TorchEngine:
    """PyTorch eager or CUDA graphs. The module is copied first: the caller's model is not changed."""

    def __init__(self, module: Any, input_shape: tuple[int, ...], config: BenchConfig, threads: int):
        import torch

        device = torch.device(config.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ShrinkError(
                f"PyTorch cannot use CUDA here (torch {torch.__version__}, built for CUDA "
                f"{torch.version.cuda or 'none'}, no GPU visible); use --provider cpu"
            )
        if device.type == "cpu":
            torch.set_num_threads(threads)
        else:
            torch.backends.cudnn.benchmark = config.cudnn_benchmark  # process-wide; recorded in the config
        dtype = getattr(torch, TORCH_DTYPE_NAMES[config.torch_dtype])
        self.memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        self.model = copy.deepcopy(module).eval().to(device=device, dtype=dtype)
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        generator = torch.Generator().manual_seed(config.seed)
        shape = (config.batch, *input_shape)
        self.input = torch.randn(shape, generator=generator).to(device=device, dtype=dtype)
        if config.channels_last and self.input.dim() == 4:
            self.input = self.input.contiguous(memory_format=torch.channels_last)
        self.device = device
        self.graph = self._capture_cuda_graph() if config.cuda_graphs else None
        mode = "cudagraph" if self.graph is not None else "eager"
        name = f"torch-{mode}-{device.type}-{config.torch_dtype}" + ("-channels_last" if config.channels_last else "")
        self.info = EngineInfo(
            name,
            (f"torch:{device.type}",),
            {"input": tuple(self.input.shape)},
            {"input": str(self.input.dtype).replace("torch.", "")},
        )

    def _capture_cuda_graph(self):
        """Warm up on a side stream (cuDNN picks algorithms), then capture one forward pass."""
        import torch

        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream), torch.no_grad():
            for _ in range(3):
                self.model(self.input)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph), torch.no_grad():
            self.output = self.model(self.input)
        return graph

    def run_once(self) -> None:
        import torch

        if self.graph is not None:
            self.graph.replay()
        else:
            with torch.inference_mode():
                self.output = self.model(self.input)
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def close(self) -> None:
        self.graph = None
        self.model = None


def load_torch_candidate(candidate: TorchCandidate) -> tuple[Any, tuple[int, ...]]:
    """(module, input_shape) from an in-memory module or through the model registry."""
    if candidate.module is not None:
        return candidate.module, tuple(candidate.input_shape)
    try:
        from shrink.models import user_model_code  # imported late: the registry is optional here
        from shrink.load import load_model
    except ImportError as exc:
        raise ShrinkError(f"cannot load torch model {candidate.spec!r}: shrink.models is not available ({exc})") from exc
    # The spec is what the user typed (`--torch SPEC`), so the code it names, or --model-code, may run.
    loaded = load_model(candidate.spec, weights=candidate.weights,
                        code=user_model_code(candidate.spec, candidate.model_code))
    shape = tuple(candidate.input_shape or loaded.input_shape)
    return loaded.model, shape


def create_engine(
    candidate: Candidate, config: BenchConfig, threads: int, profile_prefix: str | None = None
) -> Engine:
    """The engine for a candidate under `config` (ORT for ONNX files, PyTorch for torch models)."""
    if isinstance(candidate, OnnxCandidate):
        if config.provider == "cpu":
            return OrtCpuEngine(candidate.path, config, threads, profile_prefix)
        return OrtGpuEngine(candidate.path, config, threads, profile_prefix)
    if isinstance(candidate, TorchCandidate):
        module, input_shape = load_torch_candidate(candidate)
        return TorchEngine(module, input_shape, config, threads)
    raise ShrinkError(f"unknown candidate type {type(candidate).__name__}")
