"""`shrink export MODEL --out model.onnx`: parse arguments into an ExportConfig and run the stage."""

from __future__ import annotations

import argparse
import json
import logging

from shrink.export.config import EXPORTERS, ONNX_OPSET, ExportConfig
from shrink.models.code import MODEL_CODE_HELP


def run(args: argparse.Namespace) -> int:
    from shrink.data import load_data
    from shrink.export.stage import export
    from shrink.models import load_model, user_model_code

    logging.basicConfig(level=logging.WARNING, format="shrink export: %(message)s")
    config = ExportConfig(
        exporter=args.exporter,
        opset=args.opset,
        precision="fp16" if args.fp16 else "fp32",
        slim=args.slim,
        provider=args.provider,
        eval_limit=args.eval_limit,
    )
    loaded = load_model(args.model, weights=args.weights, code=user_model_code(args.model, args.model_code))
    split = load_data(args.data, args.split, data_dir=args.data_dir) if args.data else None
    result = export(loaded, config, args.out, eval_split=split)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    parity = result.parity
    how = f"{result.exporter} exporter" + (f" (fallback: {result.fallback_reason})" if result.fallback_reason else "")
    print(f"wrote {result.path} ({result.size_bytes / 1e6:.1f} MB{', + external data' if result.external_data else ''}), "
          f"{result.precision}, opset {result.opset}, {how}")
    print(f"  input {result.input_name} {list(result.input_shape)} NCHW")
    for b in parity.batches:
        print(f"  batch {b.batch}: max |onnx - torch| {b.max_abs_diff:.2e}, SQNR {b.sqnr_db:.1f} dB")
    if parity.eval_images:
        ties = f" ({parity.top1_near_ties} near-ties)" if parity.top1_near_ties else ""
        print(f"  top-1 agreement {parity.top1_agreement:.2%} on {parity.eval_images} {parity.eval_dataset} "
              f"{args.split} images{ties}")
    else:
        print("  no eval data given (--data): parity checked on random inputs only")
    if result.slim:
        print(f"  onnxslim: {result.slim['nodes_before']} -> {result.slim['nodes_after']} nodes, verified again")
    print(f"  sha256 {result.sha256}")
    return 0


def register(subparsers) -> None:
    from shrink.cli import add_command

    p = add_command(
        subparsers,
        "export",
        help="export a PyTorch model to a verified ONNX file (checker, onnxruntime parity, metadata)",
        example="shrink export fmnist_resnet18 --data fmnist --out model.onnx",
        func=run,
    )
    p.add_argument("model", help="weights file with card, pruned run dir, or registry name (+ --weights)")
    p.add_argument("--out", required=True, help="the ONNX file to write")
    p.add_argument("--weights", help="weights for a registry name")
    p.add_argument("--model-code", metavar="FILE", help=MODEL_CODE_HELP)
    p.add_argument("--data", help="eval data for the top-1 agreement check: fmnist | digits | imagefolder:DIR")
    p.add_argument("--data-dir", help="directory with the dataset files")
    p.add_argument("--split", default="test", help="split used for the agreement check (default: test)")
    p.add_argument("--eval-limit", type=int, help="check only this many eval images (default: all)")
    p.add_argument("--fp16", action="store_true", help="fp16 weights and compute for GPU targets (fp32 I/O)")
    p.add_argument("--slim", action="store_true", help="run onnxslim, then verify the result again")
    p.add_argument("--exporter", choices=EXPORTERS, default="auto",
                   help="auto: dynamo, falling back to TorchScript with the reason logged (default)")
    p.add_argument("--opset", type=int, default=ONNX_OPSET, help=f"ONNX opset (default {ONNX_OPSET}, minimum 17)")
    p.add_argument("--provider", default="cpu", help="onnxruntime provider for the parity check: cpu | cuda")
    p.add_argument("--json", action="store_true", help="print the full ExportResult as JSON")
