"""The task metric of a PyTorch model or an ONNX file (through onnxruntime, explicit providers):
top-1 for a classifier, mIoU for a segmenter, COCO mAP for a detector (shrink.metrics.scoring);
and the `shrink eval` command."""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from shrink.data import BatchOptions
from shrink.data.fits import check_fits
from shrink.errors import ShrinkError, ShrinkValueError
from shrink.metrics.scoring import TaskScore, as_outputs, scorer_for
from shrink.tasks import Task


@dataclass(frozen=True)
class EvalResult:
    accuracy: float  # percent: the task's headline metric (top-1, mIoU or mAP@[.5:.95])
    correct: int | None  # a classifier's images right; None for other tasks
    total: int
    source: str
    runtime: str  # e.g. "torch:cpu" or "onnxruntime:CPUExecutionProvider"
    dataset: str
    split: str
    synthetic: bool  # True: random data, the accuracy means nothing
    metric: str = Task.CLASSIFICATION.metric
    details: dict[str, float] = field(default_factory=dict)  # pixel accuracy, mAP@.5, ... in percent

    def to_dict(self) -> dict:
        record = asdict(self)
        if self.metric == Task.CLASSIFICATION.metric:  # a classifier's record stays as it was
            del record["metric"], record["details"]
        return record

    def describe(self) -> str:
        if self.correct is not None:
            return f"{self.metric} {self.accuracy:.2f}% ({self.correct}/{self.total})"
        extra = "".join(f", {k} {v:.2f}%" for k, v in self.details.items())
        return f"{self.metric} {self.accuracy:.2f}% ({self.total} images{extra})"


def _result(score: TaskScore, **where) -> EvalResult:
    return EvalResult(score.value, score.correct, score.images, metric=score.metric, details=dict(score.details),
                      **where)


def check_limit(limit: int | None) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ShrinkValueError(f"the image limit must be a positive integer (or none: every image), got {limit!r}")


def _limited(batches, limit: int | None):
    """The batches, the last one cut so that exactly `limit` images are seen (all without a limit)."""
    seen = 0
    for x, y in batches:
        if limit is not None:
            if seen >= limit:
                return
            x, y = x[: limit - seen], y[: limit - seen]
        seen += len(y)
        yield x, y


def _classes_of(outputs: list, task: Task, names) -> int:
    """The class count the outputs score, to check against the data's (a detector: its cls_logits)."""
    if task is Task.DETECTION:
        return int(outputs[list(names).index("cls_logits")].shape[-1])
    return int(outputs[0].shape[1])


@torch.no_grad()
def evaluate_torch(model: torch.nn.Module, split, *, batch_size: int = 256, device: str = "cpu",
                   limit: int | None = None, source: str = "model", split_name: str = "test",
                   task: Task = Task.CLASSIFICATION) -> EvalResult:
    check_limit(limit)
    check_fits(split.info, task=task)
    scorer = scorer_for(task, num_classes=split.info.num_classes, decode=getattr(model, "decode", None))
    was_training = model.training
    model.eval().to(device)
    seen = 0
    try:
        for x, y in _limited(split.batches(BatchOptions(batch_size=batch_size, device=device)), limit):
            outputs = as_outputs(model(x))
            if seen == 0:
                check_fits(split.info, num_outputs=_classes_of(outputs, task, getattr(model, "output_names", ())))
            scorer.update(outputs, y)
            seen += len(y)
    finally:
        model.train(was_training)
    return _result(scorer.result(), source=source, runtime=f"torch:{device}", dataset=split.info.name,
                   split=split_name, synthetic=split.info.synthetic)


def onnx_outputs(session, x: np.ndarray) -> list[np.ndarray]:
    name = session.get_inputs()[0].name
    return session.run(None, {name: x})


def onnx_task(session) -> Task:
    """The task an exported file declares in its metadata (a file without one is a classifier)."""
    return Task.parse(session.get_modelmeta().custom_metadata_map.get("task", Task.CLASSIFICATION.value))


def evaluate_onnx(path_or_session, split, *, provider: str = "cpu", batch_size: int = 256,
                  limit: int | None = None, split_name: str = "test", code=None) -> EvalResult:
    """The file's task metric on `split`. A detector of your own decodes by its own code (`code`, the
    shrink.models.code.ModelCode of its file.py); torchvision's detectors need none."""
    from shrink.ort_session import create_session

    check_limit(limit)
    session = create_session(path_or_session, provider) if isinstance(path_or_session, (str, Path)) else path_or_session
    source = str(path_or_session) if isinstance(path_or_session, (str, Path)) else "session"
    input_meta = session.get_inputs()[0]
    task = onnx_task(session)
    check_fits(split.info, input_shape=input_meta.shape[1:], task=task)
    decode = None
    if task is Task.DETECTION:
        from shrink.models.decoding import onnx_detection_decoder

        decode = onnx_detection_decoder(session.get_modelmeta().custom_metadata_map, session, code)
    scorer = scorer_for(task, num_classes=split.info.num_classes, decode=decode)
    names = [o.name for o in session.get_outputs()]
    seen = 0
    for x, y in _limited(split.batches(BatchOptions(batch_size=batch_size)), limit):
        outputs = onnx_outputs(session, x.numpy().astype(np.float32))
        if seen == 0:
            check_fits(split.info, num_outputs=_classes_of(outputs, task, names))
        scorer.update(outputs, y)
        seen += len(y)
    return _result(scorer.result(), source=source, runtime=f"onnxruntime:{session.get_providers()[0]}",
                   dataset=split.info.name, split=split_name, synthetic=split.info.synthetic)


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def run(args: argparse.Namespace) -> int:
    import json

    from shrink.data.arguments import load_for_model
    from shrink.data.onnx_contract import load_data_for_onnx
    from shrink.models import user_model_code, warn_if_untrained
    from shrink.models.code import ModelCode
    from shrink.load import load_model
    from shrink.models.arguments import spec_overrides

    check_limit(args.limit)  # before any data is read
    target = Path(args.model)
    if target.suffix == ".onnx":
        if not target.is_file():
            raise ShrinkError(f"ONNX file not found: {target}")
        if spec_overrides(args):
            raise ShrinkValueError("--num-classes, --in-chans and --input-size describe a PyTorch model; an ONNX file "
                                   "fixes its own")
        split = load_data_for_onnx(target, args, args.split)  # the file's own preprocessing record
        code = ModelCode.read(args.model_code) if args.model_code else None  # an own detector's decoding
        result = evaluate_onnx(target, split, provider=args.provider, batch_size=args.batch_size,
                               limit=args.limit, split_name=args.split, code=code)
    else:
        loaded = load_model(args.model, weights=args.weights, code=user_model_code(args.model, args.model_code),
                            **spec_overrides(args))
        split = load_for_model(args, args.split, input_shape=loaded.input_shape, num_classes=loaded.spec.num_classes,
                               task=loaded.spec.predicts,
                               contract=loaded.card.contract if loaded.card else None)
        check_fits(split.info, input_shape=loaded.input_shape)
        warn_if_untrained(loaded, "its accuracy")  # once the inputs are known to be good
        device = args.device or default_device()
        result = evaluate_torch(loaded.model, split, batch_size=args.batch_size, device=device, limit=args.limit,
                                source=args.model, split_name=args.split, task=loaded.spec.predicts)
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        note = "  (SYNTHETIC data: accuracy is meaningless)" if result.synthetic else ""
        print(f"{result.source}: {result.describe()} on {result.dataset} {result.split} via {result.runtime}{note}")
    return 0


def register(subparsers) -> None:
    from shrink.subcommand import add_command
    from shrink.data.arguments import add_data_arguments
    from shrink.models.arguments import add_model_arguments, add_spec_arguments

    p = add_command(subparsers, "eval", help="top-1 (mIoU, mAP for segmenters, detectors) of a PyTorch model or an "
                                             "ONNX file (onnxruntime)",
                    example="shrink eval fmnist_resnet18 --data fmnist", func=run)
    add_model_arguments(p, "ONNX file, weights file with card, pruned dir, or registry name (+ --weights)",
                        "weights for a registry name (.safetensors, or .pt loaded weights_only)")
    add_data_arguments(p)
    add_spec_arguments(p)
    p.add_argument("--split", default="test", help="dataset split (default: test)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--limit", type=int, help="evaluate only the first this many images (default: all)")
    p.add_argument("--device", help="torch device for PyTorch models (default: cuda if available)")
    p.add_argument("--provider", default="cpu", help="onnxruntime provider for ONNX files: cpu | cuda | tensorrt")
    p.add_argument("--json", action="store_true", help="print one JSON record")
