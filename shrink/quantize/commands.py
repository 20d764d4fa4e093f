"""`shrink quantize model.onnx --data fmnist --out model.int8.onnx`: arguments -> QuantizeConfig."""

from __future__ import annotations

import argparse
import json
import sys

from shrink.quantize.config import QuantizeConfig
from shrink.quantize.recipe import FORMATS, INT8_TYPES, METHODS, QuantRecipe


def config_from_args(args: argparse.Namespace) -> QuantizeConfig:
    recipe = QuantRecipe(
        kind="dynamic" if args.mode == "dynamic" else "static",
        quant_format=args.format,
        activation_type=args.activation_type,
        weight_type=args.weight_type,
        per_channel=args.per_channel,
        reduce_range=args.reduce_range,
        method=args.method,
        op_types=tuple(args.op_types) if args.op_types else None,
        exclude=tuple(args.exclude or ()),
    )
    return QuantizeConfig(
        mode=args.mode,
        recipe=recipe,
        calibration_images=args.calibration_images,
        calibration_seed=args.calibration_seed,
        force_random_calibration=args.force_random_calibration,
        budget_pt=args.budget,
        eval_limit=args.eval_limit,
        threads=args.threads,
        bench_seconds=args.bench_seconds,
        bench_max_seconds=args.bench_max_seconds,
        bench_warmup_seconds=args.bench_warmup_seconds,
        bench_processes=args.bench_processes,
        runtimes=tuple(args.runtime or ()),
        force_int8=args.force_int8,
        per_layer_sqnr=not args.no_sqnr,
        measure_all=args.measure_all,
    )


def _fmt(value, spec: str, missing: str = "-") -> str:
    return format(value, spec) if value is not None else missing


def print_summary(result) -> None:
    fp32 = result.fp32
    print(f"{'candidate':44s} {'p50 ms':>8s} {'speedup':>8s} {'95% CI':>13s} {'top-1 %':>8s} {'SQNR dB':>8s}")
    print(f"{'fp32 (input)':44s} {_fmt(fp32.latency_ms, '8.2f'):>8s} {'1.00x':>8s} {'':>13s} "
          f"{_fmt(fp32.accuracy, '8.2f'):>8s} {'':>8s}")
    for m in result.candidates:
        ci = f"{m.speedup_ci_low:.2f}-{m.speedup_ci_high:.2f}" if m.speedup_ci_low is not None else ""
        speed = f"{m.speedup:.2f}x" if m.speedup is not None else ("failed" if m.error else "-")
        print(f"{m.name:44s} {_fmt(m.latency_ms, '8.2f'):>8s} {speed:>8s} {ci:>13s} "
              f"{_fmt(m.accuracy, '8.2f'):>8s} {_fmt(m.logits_sqnr_db, '8.1f'):>8s}")
    print(f"machine: {result.machine.get('cpu_model')}, {result.bench['threads']} threads, batch {result.bench['batch']}; "
          f"each candidate timed in its own worker processes ({result.bench['processes']} round(s))")
    for caveat in result.bench.get("caveats", []):
        print(f"CAVEAT: {caveat}")
    for note in result.bench["notes"]:
        print(f"note: {note}")
    if result.profile:
        for cand in result.profile["candidates"]:
            top = ", ".join(f"{r['op_type']} x{r['nodes']} {r['ms_per_run']:.2f} ms" for r in cand["op_types"][:4])
            print(f"profile {cand['label']}: {cand['kernel_ms_per_run']:.2f} ms/run kernels: {top}")
            for flag in cand["flags"]:
                print(f"  {flag}")
    for flag in result.flags:
        print(f"WARNING: {flag}")
    what = "int8" if result.int8 else "fp32 (no int8 recipe earned its place)"
    print(f"shipped {what}: {result.output_path}")
    print(f"  why: {result.reason}")
    print(f"  decision record: {result.record_path}")


def run(args: argparse.Namespace) -> int:
    from shrink.data.onnx_contract import load_data_for_onnx
    from shrink.quantize.inputs import load_onnx_input
    from shrink.quantize.stage import check_outputs, quantize

    config = config_from_args(args)
    load_onnx_input(args.model)  # fail fast on a bad file, before loading any data
    check_outputs(args.model, args.out)  # and on a bad output
    # Calibration and accuracy read the images by the file's own preprocessing record.
    calibration = load_data_for_onnx(args.model, args, args.calibration_split)
    evaluation = load_data_for_onnx(args.model, args, args.eval_split)
    progress = (lambda line: print(f"shrink quantize: {line}", file=sys.stderr)) if not args.quiet else None
    result = quantize(args.model, config, args.out, calibration_split=calibration, eval_split=evaluation,
                      progress=progress)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print_summary(result)
    return 0


def register(subparsers) -> None:
    from shrink.config_flags import add_config_flag
    from shrink.subcommand import add_command
    from shrink.data.arguments import add_data_arguments

    p = add_command(
        subparsers,
        "quantize",
        help="int8 post-training quantization, shipped only where it is measured faster and accurate enough",
        example="shrink quantize model.onnx --data fmnist --auto --out model.int8.onnx",
        func=run,
    )
    p.add_argument("model", help="the fp32 ONNX file (from `shrink export`)")
    p.add_argument("--out", required=True, help="the file to ship (int8, or a copy of fp32 when int8 does not pay)")
    add_data_arguments(p, default=None, required=True,
                       help="fmnist | digits | imagefolder:DIR | synthetic:CxHxW (latency only); the images are read "
                            "by the file's preprocessing record")
    p.add_argument("--calibration-split", default="train", help="split to calibrate on (default: train)")
    p.add_argument("--eval-split", default="test", help="split to measure accuracy on (default: test)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--auto", dest="mode", action="store_const", const="auto",
                      help="search recipes and ship the fastest within budget (default)")
    mode.add_argument("--static", dest="mode", action="store_const", const="static", help="one static recipe")
    mode.add_argument("--dynamic", dest="mode", action="store_const", const="dynamic",
                      help="dynamic quantization of MatMul/Gemm (ViT-like models)")
    p.set_defaults(mode="auto")
    add_config_flag(p, QuantizeConfig, "calibration_images", "calibration images")
    add_config_flag(p, QuantizeConfig, "calibration_seed")
    p.add_argument("--force-random-calibration", action="store_true",
                   help="allow synthetic data (latency-only runs); every output is flagged")
    add_config_flag(p, QuantRecipe, "method", "calibration method", choices=METHODS)
    add_config_flag(p, QuantRecipe, "activation_type", choices=INT8_TYPES)
    add_config_flag(p, QuantRecipe, "weight_type", choices=INT8_TYPES)
    add_config_flag(p, QuantRecipe, "per_channel", "per-channel weight scales")
    p.add_argument("--reduce-range", action="store_true", help="7-bit weights (CPUs without VNNI)")
    add_config_flag(p, QuantRecipe, "quant_format", "qdq: standard ONNX operators; qoperator: onnxruntime's own",
                    flag="--format", choices=FORMATS)
    p.add_argument("--op-types", nargs="+", metavar="OP", help="only quantize these operator types")
    p.add_argument("--exclude", action="append", metavar="NODE", help="keep this node in fp32 (repeatable)")
    add_config_flag(p, QuantizeConfig, "budget_pt", "allowed top-1 drop vs fp32, in points", flag="--budget", type=float)
    p.add_argument("--eval-limit", type=int, help="measure accuracy on this many eval images (default: all)")
    p.add_argument("--threads", type=int, help="intra-op threads for timing (default: physical cores)")
    add_config_flag(p, QuantizeConfig, "bench_seconds", "measured seconds per candidate")
    add_config_flag(p, QuantizeConfig, "bench_warmup_seconds", "warmup per candidate and worker process")
    add_config_flag(p, QuantizeConfig, "bench_processes",
                    "rounds of fresh worker processes the timing runs in, as shrink bench's --processes")
    add_config_flag(p, QuantizeConfig, "bench_max_seconds", "wall-clock cap of each timing run, all candidates "
                    "together; the decision record says when it stopped one")
    p.add_argument("--runtime", action="append", metavar="NAME",
                   help="a runtime the shipped file must load on (repeatable); onnxruntime alone allows its own "
                        "operators (QOperator format); default: any ONNX runtime, standard operators only (QDQ)")
    p.add_argument("--force-int8", action="store_true",
                   help="ship int8 even where it is not measured faster on this machine, for a deployment CPU that "
                        "is another one (still within --budget; every record says it was forced)")
    p.add_argument("--no-sqnr", action="store_true", help="skip the per-layer SQNR analysis and its recipe")
    p.add_argument("--measure-all", action="store_true", help="measure every candidate's accuracy")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("--json", action="store_true", help="print the full QuantizeResult as JSON")
