"""onnxruntime sessions with explicit providers and no silent fallback.

onnxruntime quietly drops to the CPU when a requested provider fails to load. Every session in this
project is created here, and the providers it really got are checked against the ones requested.
"""

from __future__ import annotations

import os
from pathlib import Path

import onnxruntime as ort

from shrink.errors import ShrinkError, first_line

PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
}


def resolve_provider(name: str) -> str:
    """'cpu' / 'cuda' / 'tensorrt' or a full provider name -> the full provider name."""
    full = PROVIDER_ALIASES.get(name.lower(), name)
    available = ort.get_available_providers()
    if full not in available:
        raise ShrinkError(
            f"onnxruntime provider {name!r} is not available in this install "
            f"(onnxruntime {ort.__version__}); available: {', '.join(available)}"
        )
    return full


def create_session(
    model: str | os.PathLike | bytes,
    provider: str = "cpu",
    *,
    provider_options: dict | None = None,
    intra_op_threads: int | None = None,
    graph_optimization: str = "all",
    enable_profiling: bool = False,
    profile_prefix: str | None = None,
    spinning: bool = True,
) -> ort.InferenceSession:
    """An InferenceSession on exactly `provider` (CPU is allowed as the fallback for unsupported
    nodes only when CPU itself was asked for); raises if onnxruntime fell back."""
    full = resolve_provider(provider)
    opts = ort.SessionOptions()
    if intra_op_threads is not None:
        opts.intra_op_num_threads = int(intra_op_threads)
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # onnxruntime's default: intra-op threads spin for a while after each run. Off, they sleep at once.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    opts.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[graph_optimization]
    if enable_profiling:
        opts.enable_profiling = True
        if profile_prefix:
            opts.profile_file_prefix = profile_prefix
    providers: list = [(full, provider_options or {})]
    if full == "TensorrtExecutionProvider" and "CUDAExecutionProvider" in ort.get_available_providers():
        # Nodes TensorRT cannot build run on CUDA next, not on the CPU.
        providers.append("CUDAExecutionProvider")
    if full != "CPUExecutionProvider":
        # CPU stays available for nodes the GPU provider does not implement; the check below still
        # refuses a session where the requested provider itself failed to load.
        providers.append("CPUExecutionProvider")
    if isinstance(model, (str, os.PathLike)) and not Path(model).is_file():
        raise ShrinkError(f"ONNX file not found: {model}")
    try:
        session = ort.InferenceSession(
            model if isinstance(model, bytes) else str(model), sess_options=opts, providers=providers
        )
    except Exception as exc:  # onnxruntime raises its own exception types for bad files
        raise ShrinkError(f"onnxruntime could not load {model if not isinstance(model, bytes) else 'the model'}: "
                          f"{first_line(exc)}") from exc
    got = session.get_providers()
    if not got or got[0] != full:
        raise ShrinkError(
            f"onnxruntime silently fell back: asked for {full}, session runs on {', '.join(got)}"
        )
    return session
