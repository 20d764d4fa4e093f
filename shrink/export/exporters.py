"""torch.nn.Module -> onnx.ModelProto with the dynamo exporter, or TorchScript as the fallback.

The dynamo exporter (torch.export + onnxscript) is torch's default since 2.9 and the one kept up;
the TorchScript exporter is deprecated but still handles some models dynamo cannot trace. The choice
is deliberate: `auto` tries dynamo, and a fallback is logged with the exception that caused it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from dataclasses import dataclass
from typing import Any

import onnx
import torch

from shrink.errors import ShrinkError, first_line
from shrink.export.config import BATCH_DIM, INPUT_NAME, OUTPUT_NAME

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Exported:
    proto: onnx.ModelProto
    exporter: str
    fallback_reason: str | None = None


class Fp16Wrapper(torch.nn.Module):
    """Runs the model in fp16 but keeps fp32 input and output, so an fp16 file is a drop-in
    replacement for the fp32 one (same preprocessing, same consumer code)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model.half()

    def forward(self, x: torch.Tensor):
        out = self.model(x.half())
        return tuple(o.float() for o in out) if isinstance(out, (tuple, list)) else out.float()


def _graph_contract(opset: int, output_names: tuple[str, ...]) -> dict[str, Any]:
    """What both exporters must produce alike: the opset and the input and output names."""
    return {"opset_version": opset, "input_names": [INPUT_NAME], "output_names": list(output_names)}


def _dynamo(model: torch.nn.Module, example: torch.Tensor, opset: int, dynamic_batch: bool,
            output_names: tuple[str, ...]) -> onnx.ModelProto:
    dynamic_shapes = ({0: torch.export.Dim(BATCH_DIM, min=1)},) if dynamic_batch else None
    # The dynamo exporter prints progress lines and its own warnings; keep the user's console clean.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            model,
            (example,),
            dynamo=True,
            dynamic_shapes=dynamic_shapes,
            optimize=True,
            report=False,
            verify=False,
            **_graph_contract(opset, output_names),
        )
    if program is None:
        raise RuntimeError("torch.onnx.export returned no program")
    return program.model_proto


def _torchscript(model: torch.nn.Module, example: torch.Tensor, opset: int, dynamic_batch: bool,
                 output_names: tuple[str, ...]) -> onnx.ModelProto:
    buffer = io.BytesIO()
    dynamic_axes = {name: {0: BATCH_DIM} for name in (INPUT_NAME, *output_names)} if dynamic_batch else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its deprecation warning is expected: we chose it as fallback
        torch.onnx.export(
            model,
            (example,),
            buffer,
            dynamo=False,
            dynamic_axes=dynamic_axes,
            do_constant_folding=True,
            **_graph_contract(opset, output_names),
        )
    return onnx.load_from_string(buffer.getvalue())


def torch_to_onnx(
    model: torch.nn.Module, example: torch.Tensor, *, exporter: str, opset: int, dynamic_batch: bool,
    output_names: tuple[str, ...] = (OUTPUT_NAME,),
) -> Exported:
    """Export `model` (eval mode, on the CPU) traced with `example`, its outputs named
    `output_names` in the order it returns them; see the module docstring. A model whose
    `onnx_exporter` is "torchscript" (shrink.models.two_stage) is exported by TorchScript under
    `auto`: torch.export cannot trace it, and its failure would only cost time and console lines."""
    if exporter == "auto" and getattr(model, "onnx_exporter", None) == "torchscript":
        exporter, why = "torchscript", f"{type(model).__name__} has data-dependent shapes, which torch.export cannot trace"
    else:
        why = "TorchScript exporter requested"
    if exporter in ("auto", "dynamo"):
        try:
            return Exported(_dynamo(model, example, opset, dynamic_batch, output_names), "dynamo")
        except Exception as exc:  # torch.export raises many types (Unsupported, UserError, ...)
            reason = first_line(exc, with_type=True)
            if exporter == "dynamo":
                raise ShrinkError(f"the dynamo exporter failed: {reason} (try --exporter torchscript)") from exc
            log.warning("dynamo exporter failed (%s); falling back to the TorchScript exporter", reason)
    else:
        reason = why
    try:
        return Exported(_torchscript(model, example, opset, dynamic_batch, output_names), "torchscript", reason)
    except Exception as exc:
        raise ShrinkError(f"ONNX export failed with the TorchScript exporter too: {first_line(exc, with_type=True)}") from exc
