"""`shrink bench` and `shrink bench-compare`: parse arguments into a config, call the stage, print."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from shrink.bench.api import run_bench
from shrink.bench.compare import compare_results, format_comparison
from shrink.bench.config import METHODS, BenchConfig, OnnxCandidate, TorchCandidate
from shrink.bench.output import check_output_dir, format_markdown, write_outputs
from shrink.bench.results import load_result
from shrink.subcommand import add_command
from shrink.errors import ShrinkValueError
from shrink.models.code import MODEL_CODE_HELP
from shrink.onnxio.files import onnx_files

BENCH_EXAMPLE = (
    "shrink bench runs/dense/model.onnx runs/pruned/model.onnx --threads 1 --min-seconds 10 --profile --out runs/bench"
)
COMPARE_EXAMPLE = "shrink bench-compare runs/bench-xeon/bench.json runs/bench-epyc/bench.json"


def register(subparsers: argparse._SubParsersAction) -> None:
    from shrink.bench.layers_commands import register as register_layers

    _register_bench(subparsers)
    _register_compare(subparsers)
    register_layers(subparsers)


def _register_bench(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers,
        "bench",
        help="time ONNX files (onnxruntime) and PyTorch models side by side, interleaved, with "
        "confidence intervals, memory, an optional operator profile, and the machine recorded",
        example=BENCH_EXAMPLE,
        func=_bench,
    )
    defaults = BenchConfig()
    parser.add_argument("onnx", nargs="*", metavar="MODEL.onnx", help="ONNX files; the first is the baseline")
    parser.add_argument(
        "--torch", action="append", default=[], metavar="SPEC[=WEIGHTS]",
        help="also time a PyTorch model from the registry (e.g. tv:resnet18=weights.safetensors); repeatable",
    )  # fmt: skip
    parser.add_argument("--model-code", metavar="FILE", help="--torch models: " + MODEL_CODE_HELP)
    parser.add_argument("--provider", default=defaults.provider, help="cpu, cuda or tensorrt (default: cpu)")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (default: physical cores)")
    parser.add_argument("--batch", type=int, default=defaults.batch, help="batch size for a dynamic batch axis")
    parser.add_argument("--method", choices=METHODS, default=defaults.method,
                        help="processes (default): each candidate alone in a worker process of its own, taking "
                             "turns, over --processes rounds of fresh workers; interleaved: all in this process "
                             "(the old method, whose thread pools disturb each other)")
    parser.add_argument("--processes", type=int, default=defaults.processes,
                        help=f"rounds of fresh worker processes; runs and seconds are split over them "
                             f"(default {defaults.processes})")
    parser.add_argument("--no-spinning", dest="spinning", action="store_false",
                        help="onnxruntime intra-op threads sleep after a run instead of spinning (default: spin, "
                             "as a deployment does unless it turns it off)")
    parser.add_argument("--self-check", action="store_true",
                        help="also time the first candidate against itself (the null test) and warn when this "
                             "machine cannot tell them apart within 1.00 +- 0.03")
    parser.add_argument("--warmup-runs", type=int, default=defaults.warmup_runs, help="at least this many warmup runs")
    parser.add_argument("--warmup-seconds", type=float, default=defaults.warmup_seconds, help="and at least this long")
    parser.add_argument("--min-runs", type=int, default=defaults.min_runs, help="measure at least this many runs")
    parser.add_argument("--min-seconds", type=float, default=defaults.min_seconds, help="and at least this long")
    parser.add_argument("--block-runs", type=int, default=defaults.block_runs,
                        help="runs per round-robin block of the slowest candidate (faster ones: blocks as long)")
    parser.add_argument("--max-seconds", type=float, default=defaults.max_seconds,
                        help=f"wall-clock cap on the measured rounds, all candidates together (default "
                             f"{defaults.max_seconds:g}); the result says when it stopped the timing")
    parser.add_argument("--graph-opt", default=defaults.graph_optimization, help="disable, basic, extended or all")
    parser.add_argument("--cuda-graphs", action="store_true", help="CUDA graphs (ORT CUDA EP and PyTorch on CUDA)")
    parser.add_argument("--dtype", default=defaults.torch_dtype, help="PyTorch candidates: fp32, fp16 or bf16")
    parser.add_argument("--channels-last", action="store_true", help="PyTorch candidates: channels_last memory format")
    parser.add_argument("--trt-fp16", action="store_true", help="TensorRT: allow fp16 kernels")
    parser.add_argument("--trt-cache", default=None, metavar="DIR", help="TensorRT engine cache directory")
    parser.add_argument("--no-memory", action="store_true", help="skip the per-candidate memory measurement")
    parser.add_argument("--profile", action="store_true", help="per-operator profile and width/layout/QDQ flags")
    parser.add_argument("--profile-runs", type=int, default=defaults.profile_runs, help="runs profiled per candidate")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed for inputs and bootstrap")
    parser.add_argument("--out", default=None, metavar="DIR", help="write bench.json, bench.csv, bench.md, latency.png")
    parser.add_argument("--json", action="store_true", help="print the JSON record on stdout instead of Markdown")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def _register_compare(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers,
        "bench-compare",
        help="compare two saved bench.json results; says so when they come from different machines",
        example=COMPARE_EXAMPLE,
        func=_compare,
    )
    parser.add_argument("before", help="bench.json of the earlier / reference run")
    parser.add_argument("after", help="bench.json of the later run")
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON")


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    return BenchConfig(
        provider=args.provider.lower(),
        threads=args.threads,
        batch=args.batch,
        method=args.method,
        processes=args.processes,
        spinning=args.spinning,
        self_check=args.self_check,
        warmup_runs=args.warmup_runs,
        warmup_seconds=args.warmup_seconds,
        min_runs=args.min_runs,
        min_seconds=args.min_seconds,
        block_runs=args.block_runs,
        max_seconds=args.max_seconds,
        graph_optimization=args.graph_opt,
        cuda_graphs=args.cuda_graphs,
        torch_dtype=args.dtype,
        channels_last=args.channels_last,
        trt_fp16=args.trt_fp16,
        trt_cache_dir=args.trt_cache,
        measure_memory=not args.no_memory,
        profile=args.profile,
        profile_runs=args.profile_runs,
        seed=args.seed,
    )


def candidates_from_args(args: argparse.Namespace) -> list:
    candidates: list = [OnnxCandidate(path) for path in args.onnx]
    for item in args.torch:
        spec, _, weights = item.partition("=")
        candidates.append(TorchCandidate(spec=spec, weights=weights or None, model_code=args.model_code))
    if not candidates:
        raise ShrinkValueError("give at least one ONNX file or --torch MODEL to benchmark")
    return candidates


def input_files(candidates: list) -> tuple[str, ...]:
    """Every file the candidates are read from: ONNX files (and their external data), weights, code."""
    files: list[str] = []
    for candidate in candidates:
        if isinstance(candidate, OnnxCandidate):
            files += [str(p) for p in onnx_files(candidate.path)]
        else:
            files += [f for f in (candidate.weights, candidate.model_code, candidate.spec) if f]
    return tuple(files)


def _bench(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    candidates = candidates_from_args(args)
    if args.out:  # before the timing: a bad --out must not cost minutes
        check_output_dir(args.out, input_files(candidates))
    progress = None if args.quiet else (lambda line: print(f"bench: {line}", file=sys.stderr, flush=True))
    result = run_bench(candidates, config, progress=progress).to_dict()
    if args.out:
        for path in write_outputs(result, args.out).values():
            print(f"bench: wrote {path}", file=sys.stderr)
    print(json.dumps(result) if args.json else format_markdown(result))
    return 0


def _compare(args: argparse.Namespace) -> int:
    comparison = compare_results(load_result(args.before), load_result(args.after))
    if args.json:
        print(json.dumps(dataclasses.asdict(comparison), indent=2))
    else:
        print(format_comparison(comparison, args.before, args.after), end="")
    return 0
