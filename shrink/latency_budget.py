"""Prune to a latency budget and prove it: plan with the table, export, time against dense, replan.

The table predicts; the runtime decides. After each plan, the pruned and dense models are exported
(and quantized for an int8 target) and timed side by side with `shrink.bench.run_bench`. When the
measured latency falls outside [budget - 5%, budget + 2%], the table's prediction is rescaled by
the miss (measured / predicted) and the widths are chosen again, at most MAX_REPLANS times. Every
round is recorded in the plan (`latency.measured`), with its interval.
"""

from __future__ import annotations

import dataclasses
import itertools
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from shrink.bench.config import BenchConfig, OnnxCandidate
from shrink.bench.latency_table import LatencyTable
from shrink.errors import ShrinkError
from shrink.prune.config import PruneConfig
from shrink.prune.plan import PrunePlan

MAX_REPLANS = 3
BELOW, ABOVE = 0.05, 0.02  # accepted window: [budget * (1 - BELOW), budget * (1 + ABOVE)]
Progress = Callable[[str], None]


def loop_bench_config(runtime: str, threads: int, batch: int) -> BenchConfig:
    """Shorter than `shrink bench`'s defaults (a loop round must take seconds, not minutes), with the
    same method: each file alone in fresh worker processes, taking turns."""
    return BenchConfig(provider=runtime, threads=threads, batch=batch, processes=3, min_runs=30, min_seconds=4.0,
                       warmup_runs=5, warmup_seconds=0.3, measure_memory=False, max_seconds=60.0)


@dataclass(frozen=True)
class Round:
    index: int
    asked: float | str  # the target_latency the allocator was given this round
    predicted_ms: float
    predicted_ratio: float
    dense_ms: float  # measured p50, this round
    pruned_ms: float
    ratio: float  # measured pruned / dense
    ratio_ci: tuple[float, float]
    within: bool

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _window(requested: float) -> tuple[float, float]:
    return requested * (1 - BELOW), requested * (1 + ABOVE)


def prune_to_latency(model, example, config: PruneConfig, table: LatencyTable, *, precision: str = "fp32",
                     bench: BenchConfig | None = None, batches=None, verify: bool = True,
                     progress: Progress | None = None, work_dir: Path | None = None,
                     max_replans: int = MAX_REPLANS) -> tuple[PrunePlan, list[Round]]:
    """The plan whose measured latency is closest to the budget, and every round of the loop."""
    from shrink.bench.api import run_bench
    from shrink.bench.layers import export_onnx, write_for_precision
    from shrink.prune import apply, plan

    import onnx
    import torch

    say = progress or (lambda line: None)
    if batches is not None:  # every round scores channels on the same batches
        batches = list(itertools.islice(iter(batches), config.calibration_batches))
    key = table.key
    bench = bench or loop_bench_config(key.runtime, key.threads, key.batch)
    fraction, ms = config.latency_budget
    requested = fraction if fraction is not None else ms
    low, high = _window(requested)
    with tempfile.TemporaryDirectory(prefix="shrink-latency-loop-", dir=work_dir) as tmp:
        tmp = Path(tmp)
        one = example[:1].expand(key.batch, *example.shape[1:]).contiguous()
        export_onnx(model, one, tmp / "dense.fp32.onnx")
        write_for_precision(onnx.load(str(tmp / "dense.fp32.onnx")), tmp / "dense.onnx", precision, 0)
        asked, rounds, best = config.target_latency, [], None
        for index in range(max_replans + 1):
            cfg = dataclasses.replace(config, target_latency=asked)
            say(f"round {index + 1}: choosing widths for {asked if isinstance(asked, str) else f'{asked:.3g}x'} "
                "of the table's dense latency")
            try:
                p = plan(model, example, cfg, batches=batches, verify=verify, latency_table=table)
            except ShrinkError as exc:
                if best is None:
                    raise
                say(f"round {index + 1}: stopped: the rescaled budget cannot be planned ({exc})")
                break
            pruned = apply(model, p)
            with torch.no_grad():
                export_onnx(pruned, one, tmp / f"round{index}.fp32.onnx")
            write_for_precision(onnx.load(str(tmp / f"round{index}.fp32.onnx")), tmp / f"round{index}.onnx", precision, 0)
            say(f"round {index + 1}: timing the pruned model against dense")
            result = run_bench([OnnxCandidate(str(tmp / "dense.onnx"), "dense"),
                                OnnxCandidate(str(tmp / f"round{index}.onnx"), "pruned")], bench, progress=None)
            dense_c, pruned_c = result.candidates
            speed = pruned_c.speedup
            ratio = 1.0 / speed.ratio
            measured = ratio if fraction is not None else pruned_c.latency.p50_ms
            predicted_ratio = p.latency.predicted_ms / p.latency.dense_predicted_ms
            predicted = predicted_ratio if fraction is not None else p.latency.predicted_ms
            r = Round(index + 1, asked, p.latency.predicted_ms, predicted_ratio, dense_c.latency.p50_ms,
                      pruned_c.latency.p50_ms, ratio, (1.0 / speed.ci_high, 1.0 / speed.ci_low), low <= measured <= high)
            rounds.append(r)
            say(f"round {index + 1}: measured {ratio:.3f} of dense ({pruned_c.latency.p50_ms:.3g} ms vs "
                f"{dense_c.latency.p50_ms:.3g} ms), predicted {predicted_ratio:.3f}; wanted {requested:g}"
                f"{'' if fraction is not None else ' ms'}")
            if best is None or abs(measured - requested) < abs(best[1] - requested):
                best = (p, measured, r.index)
            if r.within:
                break
            # The miss rescales the table: ask the allocator for what, times the miss, is the budget.
            correction = measured / predicted
            target = requested / correction
            if fraction is not None and not 0 < target < 1:
                say(f"round {index + 1}: stopped: the miss rescales the budget to {target:.3g} of the table's dense "
                    "latency, which is no budget; the closest plan so far is kept")
                break
            asked = target if fraction is not None else f"{target:.6g}ms"
        chosen, _, shipped = best
    record = dataclasses.replace(chosen.latency, measured=tuple({**r.to_dict(), "shipped": r.index == shipped} for r in rounds))
    return dataclasses.replace(chosen, latency=record), rounds

