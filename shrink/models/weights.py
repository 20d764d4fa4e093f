"""Loading and saving weights without ever unpickling code.

safetensors is the format this project writes. A .pt/.pth file is read only through
torch.load(weights_only=True), which refuses pickled code; that refusal becomes a clear error.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
import torch.nn as nn
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from shrink.errors import ShrinkError
from shrink.fileio import atomic_path

MAX_LISTED_KEYS = 6  # keys shown per category in a mismatch error


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors from a .safetensors file, or a .pt/.pth/.bin file loaded with weights_only=True."""
    path = Path(path)
    if not path.is_file():
        raise ShrinkError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path), device="cpu")
        except (RuntimeError, MemoryError) as exc:  # mmap of a file larger than memory
            raise ShrinkError(f"{path} ({path.stat().st_size / 2**30:.1f} GiB) does not fit in memory: "
                              f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
        except (SafetensorError, OSError, ValueError) as exc:
            raise ShrinkError(f"{path} is not a readable safetensors file (truncated or corrupt?): {exc}") from exc
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ShrinkError(
            f"refusing to load {path}: it contains pickled code, not plain weights "
            "(save a state_dict, or convert it to safetensors)"
        ) from exc
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise ShrinkError(f"{path} is not a readable PyTorch weights file (truncated or corrupt?): {exc}") from exc
    for key in ("state_dict", "model"):  # common checkpoint wrappers
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ShrinkError(f"{path} does not hold a state_dict of tensors")
    return obj


def apply_state_dict(model: nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint") -> nn.Module:
    """Copy `state` into `model`, or explain exactly how the checkpoint and architecture differ."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = sorted(
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in set(expected) & set(state)
        if state[k].shape != expected[k].shape
    )
    if missing or unexpected or shapes:
        parts = []
        for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)):
            if items:
                shown = ", ".join(items[:MAX_LISTED_KEYS])
                more = f" (+{len(items) - MAX_LISTED_KEYS} more)" if len(items) > MAX_LISTED_KEYS else ""
                parts.append(f"{label} {len(items)}: {shown}{more}")
        raise ShrinkError(f"{source} does not match the architecture: " + "; ".join(parts))
    converted = {k: v.to(dtype=expected[k].dtype) for k, v in state.items()}
    model.load_state_dict(converted, strict=True)
    return model


def save_state_dict(
    model_or_state: nn.Module | dict[str, torch.Tensor],
    path: str | Path,
    *,
    dtype: torch.dtype | None = None,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write safetensors atomically; `dtype` (e.g. float16) converts floating tensors for storage."""
    state = model_or_state.state_dict() if isinstance(model_or_state, nn.Module) else model_or_state
    out = {}
    for k, v in state.items():
        v = v.detach().cpu()
        if dtype is not None and v.is_floating_point():
            v = v.to(dtype)
        out[k] = v.contiguous().clone()  # clone: safetensors refuses shared storage
    with atomic_path(path) as tmp:
        try:
            save_file(out, str(tmp), metadata=metadata)
        except SafetensorError as exc:  # a full disk, among others: safetensors' own error type
            raise ShrinkError(f"could not write {path}: {exc}") from exc
    return Path(path)
