"""The export stage: PyTorch model -> verified ONNX file with metadata.

export() wires the helpers together: export, stamp metadata, save into a staging directory, check
(onnx.checker, shape inference, signature, onnxruntime session, parity), optionally slim and check
again, and only then move the file into place. A file that fails a check is never written.
"""

from __future__ import annotations

import copy
import logging
import time
from pathlib import Path

import onnx
import torch

from shrink.data.fits import check_fits
from shrink.errors import ShrinkError
from shrink.export.checks import check_signature
from shrink.export.config import INPUT_NAME, ONNX_OPSET, OUTPUT_NAME, TRACE_BATCH, ExportConfig
from shrink.export.exporters import Fp16Wrapper, torch_to_onnx
from shrink.export.metadata import ModelProvenance, export_metadata, provenance_for
from shrink.export.parity import check_parity, parity_inputs
from shrink.export.result import ExportResult, ParityReport
from shrink.export.slim import slim
from shrink.fileio import sha256_file
from shrink.models.dense import output_names
from shrink.onnxio.checks import check_onnx_file
from shrink.onnxio.metadata import read_metadata, set_metadata
from shrink.onnxio.writing import check_onnx_destination, save_model, staged_output
from shrink.ort_session import create_session

log = logging.getLogger(__name__)


def versions() -> dict[str, str]:
    import onnxruntime
    import onnxscript

    from shrink import __version__

    return {"shrink": __version__, "torch": torch.__version__, "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__, "onnxscript": onnxscript.__version__}


def _verify(path: Path, reference: torch.nn.Module, provenance: ModelProvenance, num_outputs: int | None,
            config: ExportConfig, split, output_names: tuple[str, ...]) -> tuple[list[str], ParityReport, tuple]:
    """Every check on the staged file; raises ShrinkError on the first failure."""
    checks = []
    inferred = check_onnx_file(path)
    checks.append("onnx.checker(full_check) + shape inference")
    dims = check_signature(inferred, INPUT_NAME, provenance.input_shape, output_names, num_outputs, config.dynamic_batch)
    checks.append("signature: input/output names, shape" + (", dynamic batch" if config.dynamic_batch else ""))
    session = create_session(path, config.provider)
    checks.append(f"onnxruntime session on {session.get_providers()[0]}")
    parity = check_parity(reference, session, provenance.input_shape, config, split)
    if not parity.passed:
        raise ShrinkError(f"{config.precision} parity with PyTorch failed: {'; '.join(parity.failures)}")
    what = f"parity at batch {', '.join(str(b.batch) for b in parity.batches)}"
    if len(output_names) > 1:
        what += f" on every output ({', '.join(output_names)})"
    if parity.eval_images:
        compared = "top-1 agreement" if parity.top1_agree or num_outputs else "elementwise parity"
        what += f" + {compared} on {parity.eval_images} {parity.eval_dataset} images"
    checks.append(what)
    return checks, parity, tuple(dims)


def graph_opset(proto: onnx.ModelProto) -> int | None:
    """The default-domain opset a graph declares."""
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)


def _num_outputs(model: torch.nn.Module, example: torch.Tensor) -> int | None:
    with torch.no_grad():
        out = model(example)
    return int(out.shape[-1]) if isinstance(out, torch.Tensor) and out.ndim == 2 else None


def export(loaded, config: ExportConfig, out_path: str | Path, *, eval_split=None,
           provenance: ModelProvenance | None = None, input_shape=None, example_input=None) -> ExportResult:
    """Export `loaded` to `out_path` and verify it. `loaded` is a shrink.models.LoadedModel, or a
    plain nn.Module with its `input_shape` (C, H, W) or an `example_input` batch (N, C, H, W).

    `eval_split` (real images) adds the top-1 agreement check and the preprocessing record the file
    carries; without it parity uses random inputs. The given model's weights are not modified (fp16
    export works on a copy); it is left in eval mode."""
    from shrink.models.in_memory import as_loaded

    start = time.perf_counter()
    loaded = as_loaded(loaded, input_shape=input_shape, example_input=example_input)
    out_path = Path(out_path)
    check_onnx_destination(out_path, loaded.files)  # before any work: never over an input, nor a stray .data
    if eval_split is not None:
        check_fits(eval_split.info, input_shape=loaded.input_shape)
    info = eval_split.info if eval_split is not None and not eval_split.info.synthetic else None
    provenance = provenance or provenance_for(loaded, info)
    reference = loaded.model.eval()
    example = parity_inputs(provenance.input_shape, TRACE_BATCH, None, config.seed)
    num_outputs = _num_outputs(reference, example)
    names = output_names(reference) or (OUTPUT_NAME,)
    to_export = Fp16Wrapper(copy.deepcopy(reference)).eval() if config.precision == "fp16" else reference
    exported = torch_to_onnx(to_export, example, exporter=config.exporter, opset=config.opset,
                             dynamic_batch=config.dynamic_batch, output_names=names)
    proto = exported.proto
    written = graph_opset(proto)
    if written != config.opset:  # metadata and stdout must name the opset the file really has
        raise ShrinkError(f"the {exported.exporter} exporter wrote opset {written}, not the requested {config.opset}; "
                          f"choose an opset it supports (the default is {ONNX_OPSET})")
    set_metadata(proto, export_metadata(provenance, precision=config.precision, exporter=exported.exporter,
                                        opset=config.opset, dynamic_batch=config.dynamic_batch))
    split = eval_split if eval_split is not None and not eval_split.info.synthetic else None
    slim_counts = None
    with staged_output(out_path, forbid=loaded.files) as staged:
        external = save_model(proto, staged)
        checks, parity, dims = _verify(staged, reference, provenance, num_outputs, config, split, names)
        if config.slim:
            before = len(proto.graph.node)
            proto = slim(onnx.load(str(staged)))
            slim_counts = {"nodes_before": before, "nodes_after": len(proto.graph.node)}
            for stale in staged.parent.iterdir():  # onnx appends to an existing external-data file
                stale.unlink()
            external = save_model(proto, staged)
            slim_checks, parity, dims = _verify(staged, reference, provenance, num_outputs, config, split, names)
            checks += [f"after onnxslim: {c}" for c in slim_checks]
    if exported.fallback_reason and exported.exporter == "torchscript":
        log.warning("exported with TorchScript: %s", exported.fallback_reason)
    return ExportResult(
        path=str(out_path),
        sha256=sha256_file(out_path),
        size_bytes=out_path.stat().st_size,
        external_data=external,
        exporter=exported.exporter,
        fallback_reason=exported.fallback_reason,
        opset=config.opset,
        precision=config.precision,
        input_name=INPUT_NAME,
        input_shape=dims,
        output_name=OUTPUT_NAME,
        metadata=read_metadata(proto),
        checks=tuple(checks),
        parity=parity,
        slim=slim_counts,
        versions=versions(),
        seconds=time.perf_counter() - start,
    )
