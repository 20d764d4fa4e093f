"""`shrink export MODEL --out model.onnx`: parse arguments into an ExportConfig and run the stage."""

from __future__ import annotations

import argparse
import json
import logging

from shrink.errors import ShrinkValueError
from shrink.export.config import EXPORTERS, MIN_OPSET, ExportConfig
from shrink.tasks import Task


def run(args: argparse.Namespace) -> int:
    from shrink.data.arguments import load_for_model, typed_folder_options
    from shrink.export.stage import export
    from shrink.models import user_model_code, warn_if_untrained
    from shrink.load import load_model
    from shrink.models.arguments import spec_overrides

    logging.basicConfig(level=logging.WARNING, format="shrink export: %(message)s")
    config = ExportConfig(
        exporter=args.exporter,
        opset=args.opset,
        precision="fp16" if args.fp16 else "fp32",
        slim=args.slim,
        provider=args.provider,
        eval_limit=args.eval_limit,
    )
    if not args.data and typed_folder_options(args):
        raise ShrinkValueError("--image-size, --resize, --mean and --std describe --data imagefolder:DIR; add it")
    loaded = load_model(args.model, weights=args.weights, code=user_model_code(args.model, args.model_code),
                        **spec_overrides(args))
    contract = loaded.card.contract if loaded.card else None
    split = load_for_model(args, args.split, input_shape=loaded.input_shape, num_classes=loaded.spec.num_classes,
                           task=loaded.spec.predicts,
                           contract=contract) if args.data else None
    result = export(loaded, config, args.out, eval_split=split)
    warn_if_untrained(loaded, f"the accuracy of {args.out}")
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
    if parity.eval_images and loaded.spec.predicts is not Task.CLASSIFICATION:
        alone = (f"; {parity.rechecked_alone} of them differed inside a batch of {config.eval_batch_size} and matched "
                 "compared alone (PyTorch rounds differently by batch size)") if parity.rechecked_alone else ""
        print(f"  every output within tolerance on {parity.eval_images} {parity.eval_dataset} {args.split} images"
              f"{alone}")
    elif parity.eval_images:
        ties = f" ({parity.top1_near_ties} near-ties)" if parity.top1_near_ties else ""
        print(f"  top-1 agreement {parity.top1_agreement:.2%} on {parity.eval_images} {parity.eval_dataset} "
              f"{args.split} images{ties}")
    else:
        print("  no eval data given (--data): parity checked on random inputs only")
    if result.slim:
        print(f"  onnxslim: {result.slim['nodes_before']} -> {result.slim['nodes_after']} nodes, verified again")
    if "preprocessing" not in result.metadata:
        print("  no preprocessing recorded: the model has no card and no --data was given, so the file does not "
              "say how an image becomes its input (give --data to record it)")
    print(f"  sha256 {result.sha256}")
    return 0


def register(subparsers) -> None:
    from shrink.subcommand import add_command
    from shrink.data.arguments import add_data_arguments
    from shrink.config_flags import add_config_flag
    from shrink.models.arguments import add_model_arguments, add_spec_arguments

    p = add_command(
        subparsers,
        "export",
        help="export a PyTorch model to a verified ONNX file (checker, onnxruntime parity, metadata)",
        example="shrink export fmnist_resnet18 --data fmnist --out model.onnx",
        func=run,
    )
    add_model_arguments(p, "weights file with card, pruned run dir, or registry name (+ --weights)",
                        "weights for a registry name")
    p.add_argument("--out", required=True, help="the ONNX file to write")
    add_data_arguments(p, default=None, help="eval data for the top-1 agreement check (a segmenter's or detector's: "
                                             "every output), and the preprocessing "
                                             "record the file carries: fmnist | digits | imagefolder:DIR")
    add_spec_arguments(p)
    p.add_argument("--split", default="test", help="split used for the agreement check (default: test)")
    p.add_argument("--eval-limit", type=int, help="check only this many eval images (default: all)")
    p.add_argument("--fp16", action="store_true", help="fp16 weights and compute for GPU targets (fp32 I/O)")
    p.add_argument("--slim", action="store_true", help="run onnxslim, then verify the result again")
    add_config_flag(p, ExportConfig, "exporter", "auto: dynamo, falling back to TorchScript with the reason logged",
                    choices=EXPORTERS)
    add_config_flag(p, ExportConfig, "opset", f"ONNX opset, at least {MIN_OPSET}")
    add_config_flag(p, ExportConfig, "provider", "onnxruntime provider for the parity check: cpu | cuda")
    p.add_argument("--json", action="store_true", help="print the full ExportResult as JSON")
