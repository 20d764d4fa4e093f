"""`shrink prune --target-latency`: the latency table (built here, cached, or from the device), the
budgeted plan, and the closed loop that measures it. Only parses arguments and wires stages."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from shrink.bench.granule import PRECISIONS, RUNTIMES
from shrink.errors import ShrinkError


def add_latency_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("latency budget (--target-latency)")
    group.add_argument("--runtime", default="cpu", choices=RUNTIMES, help="where the model will run (default cpu: onnxruntime CPU)")
    group.add_argument("--precision", default="fp32", choices=PRECISIONS,
                       help="as it will ship: fp32, or int8 as `shrink quantize` makes it (default fp32)")
    group.add_argument("--threads", type=int, default=None, help="intra-op threads it will run with (default: physical cores)")
    group.add_argument("--latency-table", metavar="FILE", help="a latency table JSON (`shrink bench layers`, or a device kit's)")
    group.add_argument("--table-from-device", action="store_true",
                       help="the --latency-table was timed on the deployment device: its machine is not compared with "
                            "this one, and the plan is not measured here")
    group.add_argument("--no-measure", action="store_true", help="plan from the table only; skip the closed loop")
    group.add_argument("--table-cache", metavar="DIR", help="where tables built here are cached (default ~/.cache/torch-shrink/latency)")


def _threads(args) -> int:
    from shrink.bench.machine import physical_cores

    threads = args.threads or physical_cores()
    if threads < 1:
        raise ShrinkError(f"--threads must be at least 1, got {threads}")
    return threads


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def checked_table(args, loaded, inputs):
    """The --latency-table, checked against the model and the target (or None: one is built here),
    and the runtime checked against this onnxruntime. Raises one line on anything that does not fit."""
    from shrink.bench.latency_table import LatencyTable
    from shrink.bench.layers import TableTarget, check_runtime, local_fingerprint
    from shrink.prune.space import structure_hash

    if args.table_from_device and not args.latency_table:
        raise ShrinkError("--table-from-device needs --latency-table FILE")
    if not args.table_from_device:
        check_runtime(args.runtime)  # lists the runtimes onnxruntime has here
    table = LatencyTable.load(args.latency_table) if args.latency_table else None
    if table is None:
        return None
    target = TableTarget(runtime=args.runtime, precision=args.precision, threads=_threads(args))
    wanted = target.key(structure_hash(loaded.model, tuple(inputs[0].shape)), local_fingerprint()[0])
    fields = ("structure", "runtime", "precision", "threads", "batch") + (() if args.table_from_device else ("machine",))
    diffs = table.key.differences(wanted, fields)
    if diffs:
        hint = " (a table timed on the deployment device needs --table-from-device)" if any(d.startswith("machine") for d in diffs) else ""
        raise ShrinkError(f"latency table {args.latency_table} does not fit: " + "; ".join(diffs) + hint)
    return table


def plan_for_latency(args, loaded, inputs, limits, batches_for, make_config, table=None):
    """The plan for `--target-latency` (with the table checked_table returned, or one built here),
    measured against dense unless told not to. `make_config(round_to)` is the command's PruneConfig
    (round_to None: as the user gave it)."""
    from shrink.bench.granule import granule
    from shrink.bench.layers import TableTarget, build_table
    from shrink.prune import plan

    threads = _threads(args)
    target = TableTarget(runtime=args.runtime, precision=args.precision, threads=threads)
    flags = tuple(table.machine.get("cpu_flags", ())) if table is not None else None
    round_to = granule(args.runtime, args.precision, flags) if args.round_to == "machine" else None
    config = make_config(round_to)
    if table is None:
        _say(f"building the latency table: {args.runtime} {args.precision}, {threads} threads (cached for next time)")
        example = inputs[0][:1]
        cache = Path(args.table_cache) if args.table_cache else None
        table = build_table(loaded.model, example, target, config, cache_dir=cache, progress=_say)
    measure = not (args.no_measure or args.table_from_device)
    if not measure:
        result = plan(loaded.model, inputs, config, batches=batches_for(args, config, loaded), limits=limits,
                      verify=not args.no_verify, latency_table=table)
        why = "the table was timed on the device" if args.table_from_device else "--no-measure"
        _say(f"planned from the table only ({why}): predicted {result.latency.predicted_ms:.3g} ms, "
             f"{result.latency.predicted_ms / result.latency.dense_predicted_ms:.3f} of dense")
        return result
    from shrink.latency_budget import prune_to_latency

    result, rounds = prune_to_latency(loaded.model, inputs[0], config, table, precision=args.precision,
                                      batches=batches_for(args, config, loaded), verify=not args.no_verify,
                                      progress=_say, work_dir=None)
    _print_rounds(config, rounds)
    return result


def _print_rounds(config, rounds) -> None:
    fraction, ms = config.latency_budget
    for r in rounds:
        low, high = r.ratio_ci
        got = f"{r.ratio:.3f} of dense [{low:.3f}, {high:.3f}]" if fraction is not None else f"{r.pruned_ms:.3g} ms"
        print(f"latency round {r.index}: measured {got} ({r.pruned_ms:.3g} ms vs dense {r.dense_ms:.3g} ms); "
              f"predicted {r.predicted_ratio:.3f}{'; within the window' if r.within else ''}")
    requested = f"{fraction:g} of dense" if fraction is not None else f"{ms:g} ms"
    print(f"latency: requested {requested}; " + ("reached" if any(r.within for r in rounds) else
          f"not within [-5%, +2%] after {len(rounds)} rounds; the closest plan is written"))
