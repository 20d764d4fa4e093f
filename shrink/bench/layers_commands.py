"""`shrink bench layers MODEL`: build a latency table and print it, or write the kit for a device."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from shrink.bench.granule import PRECISIONS, RUNTIMES
from shrink.errors import ShrinkError

EXAMPLE = "shrink bench layers tv:resnet50 --threads 2 --out runs/resnet50.table.json"


def register(subparsers: argparse._SubParsersAction) -> None:
    from shrink.subcommand import add_command
    from shrink.models.arguments import add_model_arguments, add_spec_arguments
    from shrink.bench.layers import GRID_POINTS
    from shrink.config_flags import add_config_flag
    from shrink.prune.config import PruneConfig

    parser = add_command(
        subparsers,
        "bench-layers",
        help="`shrink bench layers MODEL`: time what each prunable group's layers cost at each width on the "
             "deployment runtime (a latency table for `shrink prune --target-latency`), or write a kit that "
             "times them on the device itself (--export-kit DIR, then `python DIR/layer_timer.py DIR` there)",
        example=EXAMPLE,
        func=run,
    )
    parser.prog = "shrink bench layers"
    add_model_arguments(parser, "tv:NAME, a built-in name, a weights file with its card, ... (see `shrink models`)",
                        "weights for a named architecture (widths, not values, decide latency)")
    add_spec_arguments(parser)
    parser.add_argument("--runtime", default="cpu", choices=RUNTIMES, help="onnxruntime provider (default cpu)")
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS, help="fp32, or int8 as `shrink quantize` ships it")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (default: physical cores)")
    parser.add_argument("--batch", type=int, default=1, help="batch size (default 1)")
    parser.add_argument("--grid-points", type=int, default=GRID_POINTS, help=f"widths timed per axis (default {GRID_POINTS})")
    parser.add_argument("--rounds", type=int, default=2, help="passes over every subgraph, each in a new order (default 2)")
    parser.add_argument("--round-to", default="machine",
                        help="width granule: an integer, or machine (this runtime and precision's granule here; default)")
    add_config_flag(parser, PruneConfig, "max_layer_ratio", "narrowest width tabled")
    parser.add_argument("--ignore", action="append", default=[], metavar="GLOB", help="layers whose outputs are kept (repeatable)")
    parser.add_argument("--out", metavar="FILE", help="also write the table JSON here")
    parser.add_argument("--export-kit", metavar="DIR",
                        help="do not time here: write the layer subgraphs and a script that needs only onnxruntime and "
                             "numpy; run `python DIR/layer_timer.py DIR` on the device, which writes DIR/table.json")
    parser.add_argument("--fresh", action="store_true", help="time again even if this machine has the table cached")
    parser.add_argument("--table-cache", metavar="DIR", help="cache directory (default ~/.cache/torch-shrink/latency)")
    parser.add_argument("--json", action="store_true", help="print the table JSON instead of the summary")


def run(args: argparse.Namespace) -> int:
    import json

    import torch

    from shrink.bench.granule import granule
    from shrink.bench.layers import TableTarget, build_table, prepare_kit
    from shrink.bench.machine import physical_cores
    from shrink.fileio import check_not_inputs
    from shrink.models import user_model_code
    from shrink.load import load_model
    from shrink.models.arguments import spec_overrides
    from shrink.prune.config import PruneConfig

    target = TableTarget(runtime=args.runtime, precision=args.precision, threads=args.threads or physical_cores(),
                         batch=args.batch, grid_points=args.grid_points, rounds=args.rounds)
    if args.export_kit and Path(args.export_kit).exists() and any(Path(args.export_kit).iterdir()):
        raise ShrinkError(f"--export-kit {args.export_kit} is not empty; give a new directory")
    loaded = load_model(args.model, weights=args.weights, code=user_model_code(args.model, args.model_code),
                        **spec_overrides(args))
    if args.out:
        check_not_inputs([args.out], loaded.files)
    round_to = granule(args.runtime, args.precision) if args.round_to == "machine" else args.round_to
    config = PruneConfig(round_to=round_to, max_layer_ratio=args.max_layer_ratio, ignore=tuple(args.ignore))
    example = torch.randn(1, *loaded.spec.input_shape, generator=torch.Generator().manual_seed(0))

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    if args.export_kit:
        kit = Path(args.export_kit)
        meta = prepare_kit(loaded.model, example, target, config, kit, say)
        print(f"wrote the kit to {kit}: {len(meta['layers'])} layers in {len(meta['kinds'])} kinds, "
              f"{sum(len(k['entries']) for k in meta['kinds'].values())} subgraphs, {len(meta['calibration'])} whole models")
        print(f"on the device (needs python3, numpy and onnxruntime only): python {kit}/layer_timer.py {kit}")
        print(f"then here: shrink prune {args.model} --target-latency 0.5 --runtime {args.runtime} --precision "
              f"{args.precision} --threads {target.threads} --latency-table {kit}/table.json --table-from-device --out DIR")
        return 0
    table = build_table(loaded.model, example, target, config, cache_dir=Path(args.table_cache) if args.table_cache else None,
                        use_cache=not args.fresh, progress=say)
    if args.out:
        table.save(args.out)
    if args.json:
        print(json.dumps(table.to_dict(), indent=1))
    else:
        print_table(table)
    if args.out:
        print(f"wrote {args.out}")
    return 0


def print_table(table) -> None:
    key = table.key
    print(f"latency table: {key.runtime} {key.precision}, {key.threads} threads, batch {key.batch}; model {key.structure}, "
          f"machine {key.machine} ({table.machine.get('cpu_model', '?')})")
    cal = table.calibration
    residuals = ", ".join(f"{r:+.1%}" for r in cal.residuals())
    print(f"whole = {cal.alpha:.3f} x sum of layers {cal.gamma:+.3f} x activations (M) {cal.beta:+.3f} ms; "
          f"residuals on {len(cal.points)} whole models: {residuals}")
    print(f"dense predicted {table.dense_ms():.3f} ms; timed in {table.timing.get('seconds', 0):.0f} s "
          f"({table.timing.get('subgraphs')} subgraphs x {table.timing.get('rounds')} rounds)")
    counts: dict[str, int] = {}
    for layer in table.layers:
        counts[layer.kind] = counts.get(layer.kind, 0) + 1
    width = max(len(k) for k in table.kinds)
    print(f"{'kind':<{width}}  {'layers':>6}  {'ops':<24}  {'c_in':>11}  {'c_out':>11}  {'ms min':>8}  {'ms dense':>8}")
    for name, kind in table.kinds.items():
        low, high = kind.cost(kind.cin[0], kind.cout[0]), kind.cost(kind.cin[-1], kind.cout[-1])
        ops = "+".join(kind.ops)
        print(f"{name:<{width}}  {counts.get(name, 0):>6}  {ops[:24]:<24}  {kind.cin[0]:>4}..{kind.cin[-1]:<5}  "
              f"{kind.cout[0]:>4}..{kind.cout[-1]:<5}  {low:>8.4f}  {high:>8.4f}")
    for note in table.notes:
        print(f"note: {note}")
