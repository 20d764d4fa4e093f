"""Top-1 accuracy of a PyTorch model or an ONNX file (through onnxruntime, explicit providers),
and the `shrink eval` command."""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from shrink.data import BatchOptions
from shrink.data.fits import check_fits
from shrink.errors import ShrinkError, ShrinkValueError


@dataclass(frozen=True)
class EvalResult:
    accuracy: float  # percent top-1
    correct: int
    total: int
    source: str
    runtime: str  # e.g. "torch:cpu" or "onnxruntime:CPUExecutionProvider"
    dataset: str
    split: str
    synthetic: bool  # True: random data, the accuracy means nothing

    def to_dict(self) -> dict:
        return asdict(self)


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


@torch.no_grad()
def evaluate_torch(model: torch.nn.Module, split, *, batch_size: int = 256, device: str = "cpu",
                   limit: int | None = None, source: str = "model", split_name: str = "test") -> EvalResult:
    check_limit(limit)
    was_training = model.training
    model.eval().to(device)
    correct = total = 0
    try:
        for x, y in _limited(split.batches(BatchOptions(batch_size=batch_size, device=device)), limit):
            logits = model(x)
            if total == 0:
                check_fits(split.info, num_outputs=logits.shape[1])
            correct += int((logits.argmax(1) == y).sum())
            total += len(y)
    finally:
        model.train(was_training)
    return EvalResult(100.0 * correct / max(total, 1), correct, total, source, f"torch:{device}",
                      split.info.name, split_name, split.info.synthetic)


def onnx_logits(session, x: np.ndarray) -> np.ndarray:
    name = session.get_inputs()[0].name
    return session.run(None, {name: x})[0]


def evaluate_onnx(path_or_session, split, *, provider: str = "cpu", batch_size: int = 256,
                  limit: int | None = None, split_name: str = "test") -> EvalResult:
    from shrink.ort_session import create_session

    check_limit(limit)
    session = create_session(path_or_session, provider) if isinstance(path_or_session, (str, Path)) else path_or_session
    source = str(path_or_session) if isinstance(path_or_session, (str, Path)) else "session"
    input_meta = session.get_inputs()[0]
    check_fits(split.info, input_shape=input_meta.shape[1:])
    correct = total = 0
    for x, y in _limited(split.batches(BatchOptions(batch_size=batch_size)), limit):
        logits = onnx_logits(session, x.numpy().astype(np.float32))
        if total == 0:
            check_fits(split.info, num_outputs=logits.shape[1])
        correct += int((logits.argmax(1) == y.numpy()).sum())
        total += len(y)
    return EvalResult(100.0 * correct / max(total, 1), correct, total, source,
                      f"onnxruntime:{session.get_providers()[0]}", split.info.name, split_name, split.info.synthetic)


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def run(args: argparse.Namespace) -> int:
    import json

    from shrink.data.arguments import load_for_model
    from shrink.data.onnx_contract import load_data_for_onnx
    from shrink.models import user_model_code, warn_if_untrained
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
        result = evaluate_onnx(target, split, provider=args.provider, batch_size=args.batch_size,
                               limit=args.limit, split_name=args.split)
    else:
        loaded = load_model(args.model, weights=args.weights, code=user_model_code(args.model, args.model_code),
                            **spec_overrides(args))
        split = load_for_model(args, args.split, input_shape=loaded.input_shape, num_classes=loaded.spec.num_classes,
                               contract=loaded.card.contract if loaded.card else None)
        check_fits(split.info, input_shape=loaded.input_shape)
        warn_if_untrained(loaded, "its accuracy")  # once the inputs are known to be good
        device = args.device or default_device()
        result = evaluate_torch(loaded.model, split, batch_size=args.batch_size, device=device, limit=args.limit,
                                source=args.model, split_name=args.split)
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        note = "  (SYNTHETIC data: accuracy is meaningless)" if result.synthetic else ""
        print(f"{result.source}: top-1 {result.accuracy:.2f}% ({result.correct}/{result.total}) on "
              f"{result.dataset} {result.split} via {result.runtime}{note}")
    return 0


def register(subparsers) -> None:
    from shrink.subcommand import add_command
    from shrink.data.arguments import add_data_arguments
    from shrink.models.arguments import add_model_arguments, add_spec_arguments

    p = add_command(subparsers, "eval", help="top-1 accuracy of a PyTorch model or an ONNX file (onnxruntime)",
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
