"""`shrink prune MODEL --out DIR`: plan, remove channels, check exactness, write plan + weights."""

from __future__ import annotations

import argparse
import re
import warnings
from pathlib import Path

import torch

from shrink.config_flags import add_config_flag, config_default
from shrink.errors import ShrinkError, ShrinkValueError
from shrink.pruned_files import PLAN_FILE
from shrink.prune.config import ATTENTION_MODES, IMPORTANCE_NAMES, ROUND_TO_BY_TARGET, SCOPES, PruneConfig

EXAMPLE = "shrink prune tv:resnet50 --ratio 0.5 --importance l2 --out runs/resnet50-p50"
MAX_TABLE_ROWS = 60
CHECK_BATCH = 2  # example batch: BN statistics need more than one value per channel
SUFFIXES = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}


def parse_count(text: str) -> float:
    """'1.07G' -> 1.07e9; plain numbers and k/M/G/T suffixes."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([kmgtKMGT]?)\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"expected a count like 1.07G or 2500000, got {text!r}")
    return float(match.group(1)) * SUFFIXES[match.group(2).lower()]


def config_from_args(args: argparse.Namespace, round_to: int | str | None = None) -> PruneConfig:
    return PruneConfig(
        importance=args.importance,
        scope=args.scope,
        ratio=args.ratio,
        target_macs=args.target_macs,
        target_params=args.target_params,
        target_latency=args.target_latency,
        max_layer_ratio=args.max_layer_ratio,
        round_to=round_to if round_to is not None else args.round_to,
        ignore=tuple(args.ignore),
        steps=args.steps,
        attention=args.attention,
        calibration_batches=args.calibration_batches,
        seed=args.seed,
    )


def _batches(args: argparse.Namespace, config: PruneConfig, loaded):
    if not config.needs_batches:
        return None
    if not args.data:
        raise ShrinkValueError(f"--importance {config.importance} needs labeled batches: add --data NAME (e.g. fmnist)")
    from shrink.data import BatchOptions, load_data
    from shrink.data.arguments import folder_options

    split = load_data(args.data, "train", data_dir=args.data_dir, folder_options=folder_options(
        args, image_size=loaded.input_shape[1], channels=loaded.input_shape[0]))
    return split.batches(BatchOptions(batch_size=args.batch_size, shuffle=True, seed=args.seed))


def run(args: argparse.Namespace) -> int:
    from shrink.models import user_model_code, warn_if_untrained
    from shrink.load import load_model
    from shrink.models.arguments import spec_overrides
    from shrink.prune.guards import GuardLimits
    from shrink.prune.saving import check_output_dir

    if (Path(args.model) / PLAN_FILE).is_file():  # a trained model's folder (its card) is fine
        raise ShrinkError(f"{args.model} is already a pruned model; prune the dense model (use --steps for several steps)")
    check_output_dir(args.out, args.force)  # refuse early, before loading and minutes of work
    if args.unstructured is None:
        config_from_args(args)  # a bad option is one line before the model is loaded
    loaded = load_model(args.model, weights=args.weights, code=user_model_code(args.model, args.model_code),
                        **spec_overrides(args))
    check_output_dir(args.out, args.force, loaded.files)  # and never over a file the model came from
    generator = torch.Generator().manual_seed(args.seed)
    inputs = (torch.randn(CHECK_BATCH, *loaded.spec.input_shape, generator=generator),)
    table = None
    if args.unstructured is None and args.target_latency is not None:
        from shrink.prune.latency_commands import checked_table

        table = checked_table(args, loaded, inputs)  # a table or runtime that does not fit: one line, now
    warn_if_untrained(loaded, "what is pruned (channels ranked by random weights)")
    limits = GuardLimits(seconds=args.time_limit, memory_mb=args.memory_limit)
    if args.unstructured is not None:
        return _run_unstructured(args, loaded)
    return _run_structured(args, loaded, inputs, limits, table)


def _run_structured(args, loaded, inputs, limits, table=None) -> int:
    from shrink.prune.stage import SaveOptions, run as prune_stage

    config = config_from_args(args)
    planner = _latency_planner(args, loaded, limits, table) if config.target_kind == "latency" else None
    batches = None if planner else _batches(args, config, loaded)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = prune_stage(loaded, config, args.out, example=inputs, batches=batches,
                             limits=limits, verify=not args.no_verify, planner=planner,
                             save=SaveOptions(source_weights=args.weights, force=args.force))
    for w in caught:
        if issubclass(w.category, UserWarning) and "torch_pruning" not in str(w.filename):
            print(f"warning: {w.message}")
    print_summary(result.plan, result.exactness)
    print(f"wrote {Path(args.out) / 'plan.json'} and {Path(args.out) / 'pruned.safetensors'}")
    return 0


def _latency_planner(args, loaded, limits, table):
    """Widths for --target-latency: the table (given, or built now) and the closed loop."""
    from shrink.prune.latency_commands import plan_for_latency

    def planner(model, example, config):
        return plan_for_latency(args, loaded, example, limits, _batches,
                                lambda round_to: config_from_args(args, round_to), table)

    return planner


def _run_unstructured(args, loaded) -> int:
    from shrink.prune.saving import save_pruned
    from shrink.prune.unstructured import magnitude_prune

    pruned, report = magnitude_prune(loaded.model, args.unstructured, ignore=tuple(args.ignore))
    save_pruned(args.out, pruned, report, loaded.spec, card=loaded.card, source=args.model, force=args.force,
                inputs=loaded.files)
    print(report.label)
    print(f"{report.zeros:,} of {report.total:,} conv/linear weights are zero: sparsity {report.sparsity:.1%}")
    print("shapes are unchanged: dense runtimes run exactly as fast (see docs/pruning.md in the torch-shrink source)")
    print(f"wrote {Path(args.out) / 'plan.json'} and {Path(args.out) / 'pruned.safetensors'}")
    return 0


def print_summary(plan, report) -> None:
    rows = [w for w in plan.changed_layers() if w.kind in ("Conv2d", "Conv1d", "Conv3d", "Linear", "MultiheadAttention", "Parameter")]
    name_width = max([len("layer")] + [len(w.name) for w in rows[:MAX_TABLE_ROWS]])
    print(f"{'layer':<{name_width}}  {'kind':<18}  {'in':>11}  {'out':>11}")
    for w in rows[:MAX_TABLE_ROWS]:
        print(f"{w.name:<{name_width}}  {w.kind:<18}  {_arrow(w.before[0], w.after[0]):>11}  {_arrow(w.before[1], w.after[1]):>11}")
    if len(rows) > MAX_TABLE_ROWS:
        print(f"... {len(rows) - MAX_TABLE_ROWS} more changed layers (all widths are in plan.json)")
    print(f"groups pruned: {len(plan.groups)} in {len(plan.steps)} step(s); left whole: {len(plan.left_whole)}")
    print(f"MACs:   {plan.before.macs / 1e9:.3f} G -> {plan.after.macs / 1e9:.3f} G  ({plan.mac_reduction:.2f}x fewer)")
    print(f"params: {plan.before.params / 1e6:.3f} M -> {plan.after.params / 1e6:.3f} M  ({plan.param_reduction:.2f}x fewer)")
    if report is not None:
        print(f"exactness: {report.summary()}")


def _arrow(before: int, after: int) -> str:
    return f"{before}" if before == after else f"{before}->{after}"


def register(subparsers) -> None:
    from shrink.subcommand import add_command
    from shrink.data.arguments import add_data_arguments
    from shrink.models.arguments import add_model_arguments, add_spec_arguments

    parser = add_command(
        subparsers,
        "prune",
        help="remove channels structurally (coupled layers together), check exactness, write plan.json + pruned.safetensors",
        example=EXAMPLE,
        func=run,
    )
    add_model_arguments(parser, "tv:NAME, a built-in name, a weights file with its card, ... (see `shrink models`)",
                        "weights for a named architecture")
    parser.add_argument("--out", required=True, help="output directory (must be empty unless --force)")
    parser.add_argument("--force", action="store_true", help="write into a non-empty output directory")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--ratio", type=float, help="fraction of channels to remove (default 0.5)")
    target.add_argument("--target-macs", type=parse_count, help="MACs to reach, e.g. 1.1G (within 1%%)")
    target.add_argument("--target-params", type=parse_count, help="parameters to reach, e.g. 5M (within 1%%)")
    target.add_argument("--target-latency", metavar="BUDGET",
                        help="latency budget on the deployment runtime: a fraction of dense (0.25 = 4x faster) or "
                             "milliseconds (12ms); measured, see --runtime/--precision/--threads (docs/latency.md)")
    add_config_flag(parser, PruneConfig, "importance", f"channel importance: {', '.join(IMPORTANCE_NAMES)}")
    add_config_flag(parser, PruneConfig, "scope", " or ".join(SCOPES))
    add_config_flag(parser, PruneConfig, "max_layer_ratio", "no group loses more than this")
    parser.add_argument(
        "--round-to",
        default=config_default(PruneConfig, "round_to"),
        help="kept widths are multiples of this: an integer, machine (this CPU's granule: 16 with AVX-512, "
             "8 with AVX2; the default) or a target " + ", ".join(f"{k}={v}" for k, v in ROUND_TO_BY_TARGET.items()),
    )
    parser.add_argument("--ignore", action="append", default=[], metavar="GLOB", help="keep the output channels of matching modules (repeatable)")
    add_config_flag(parser, PruneConfig, "steps", "reach the ratio/target in this many steps")
    add_config_flag(parser, PruneConfig, "attention", f"attention: {', '.join(ATTENTION_MODES)}")
    add_data_arguments(parser, default=None, help="labeled data for taylor/hessian importance, e.g. fmnist")
    add_spec_arguments(parser)
    add_config_flag(parser, PruneConfig, "calibration_batches", "batches read for taylor/hessian")
    parser.add_argument("--batch-size", type=int, default=64, help="batch size for taylor/hessian (default 64)")
    from shrink.prune.latency_commands import add_latency_arguments

    add_latency_arguments(parser)
    parser.add_argument("--unstructured", type=float, metavar="SPARSITY", help="instead: zero this share of single weights (no speedup; see docs)")
    parser.add_argument("--no-verify", action="store_true", help="skip the exactness checks")
    add_config_flag(parser, PruneConfig, "seed", "seed for the example inputs and random importance")
    parser.add_argument("--time-limit", type=float, default=600.0, help="seconds before planning is stopped (default 600)")
    parser.add_argument("--memory-limit", type=float, help="MB of memory growth before planning is stopped (default: half of what is free)")
