"""Does `shrink bench` give the latency a deployment sees? Its default method against the old one and
against an independent reference, on the same files, on this machine (issue 23).

For each pair (dense -> smaller) and thread count, three ways:
- new: `shrink.bench.run_bench` with its default method (each file alone in a worker process of
  its own, taking turns, the next block only once the last worker is quiet, over 4 rounds of fresh
  processes), run twice, with the null test (the first file against itself);
- old: the method before issue 23, every file interleaved in one process, spinning on;
- reference: code independent of shrink.bench: each file alone in a fresh `python -c` process with
  a plain onnxruntime loop, the two files alternating, at least 6 rounds; the speedup is the
  median of the per-round ratios.

Targets on this machine: new within 5% of the reference on every pair; the null test within
1.00 +- 0.03; the two new runs within 5% of each other; the new interval covering the reference
on at least 9 of 10 pairs.

    python benchmarks/bench_method.py --out runs/bench_method
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench_zoo import build, export_onnx, machine_lines, prune_uniform  # also puts the repo root on sys.path

import numpy as np

from shrink.bench import BenchConfig, OnnxCandidate, run_bench
from shrink.bench.process_stats import t_interval
from shrink.bench.machine import capture_machine
from shrink.fileio import write_text_atomic

REPO = Path(__file__).resolve().parents[1]
TV_PAIRS = ("resnet18", "mobilenet_v2", "efficientnet_b0")
TARGET_AGREEMENT = 0.05  # new vs reference, and new vs new
NULL_TOLERANCE = 0.03

# The reference: one file, alone in a fresh interpreter, onnxruntime's defaults but the threads.
REFERENCE_CHILD = """
import json, sys, time
import numpy as np, onnxruntime as ort
path, threads, warmup_s, measure_s, min_runs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
options = ort.SessionOptions()
options.intra_op_num_threads = threads
options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
feeds = {}
for arg in session.get_inputs():
    shape = [d if isinstance(d, int) and d > 0 else 1 for d in arg.shape]
    feeds[arg.name] = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
start = time.perf_counter()
while time.perf_counter() - start < warmup_s:
    session.run(None, feeds)
times = []
start = time.perf_counter()
while len(times) < min_runs or time.perf_counter() - start < measure_s:
    t = time.perf_counter()
    session.run(None, feeds)
    times.append(time.perf_counter() - t)
times.sort()
print(json.dumps({"median_s": times[len(times) // 2], "runs": len(times)}))
"""


@dataclass(frozen=True)
class Pair:
    name: str
    dense: Path
    small: Path
    what: str


def say(line: str) -> None:
    print(f"bench_method: {line}", file=sys.stderr, flush=True)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", nargs="+", default=["resnet18", "demo", "resnet50-int8", "mobilenet_v2",
                                                       "efficientnet_b0"])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--reference-rounds", type=int, default=6)
    parser.add_argument("--reference-seconds", type=float, default=3.0, help="measured per file per round")
    parser.add_argument("--demo-dir", type=Path, default=REPO / "runs" / "fmnist-resnet18",
                        help="a `make demo` run directory (dense.onnx, model.int8.onnx); made if missing")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "bench_method")
    return parser.parse_args(argv)


# ----------------------------------------------------------------------------- the files


def tv_pair(name: str, out: Path) -> Pair:
    dense, small = out / f"{name}-dense.onnx", out / f"{name}-pruned50.onnx"
    if not (dense.is_file() and small.is_file()):
        model = build(name)
        export_onnx(model, dense)
        export_onnx(prune_uniform(model, 0.5, 8), small)
    return Pair(name, dense, small, f"tv {name} 224, dense vs pruned 0.5")


def int8_file(fp32: Path, out: Path) -> Path:
    """Naive U8S8 per-channel QDQ int8, calibrated on random images: latency only."""
    import numpy as np

    from shrink.quantize.ptq import preprocess, quantize_recipe
    from shrink.quantize.recipe import QuantRecipe

    if out.is_file():
        return out
    work = out.parent / f"{out.stem}-work"
    work.mkdir(parents=True, exist_ok=True)
    batches = [np.random.default_rng(i).standard_normal((1, 3, 224, 224)).astype(np.float32) for i in range(8)]
    quantize_recipe(preprocess(fp32, work / "pre.onnx"), QuantRecipe(), out, "input", batches)
    return out


def demo_pair(demo_dir: Path) -> Pair:
    if not (demo_dir / "model.int8.onnx").is_file():
        say(f"no demo bundle in {demo_dir}: running `shrink run`")
        subprocess.run([sys.executable, "-m", "shrink", "run", "--force", "--quiet", "--out", str(demo_dir)], cwd=REPO,
                       check=True)
    return Pair("demo", demo_dir / "dense.onnx", demo_dir / "model.int8.onnx", "demo: dense fp32 vs pruned int8")


def make_pairs(names: list[str], out: Path, demo_dir: Path) -> list[Pair]:
    pairs = []
    for name in names:
        if name == "demo":
            pairs.append(demo_pair(demo_dir))
        elif name == "resnet50-int8":
            base = tv_pair("resnet50", out)
            small = int8_file(base.small, out / "resnet50-pruned50-int8.onnx")
            pairs.append(Pair(name, base.dense, small, "tv resnet50 224, dense vs pruned 0.5 + int8"))
        elif name in TV_PAIRS:
            pairs.append(tv_pair(name, out))
        else:
            raise SystemExit(f"unknown pair {name!r}")
    return pairs


# ----------------------------------------------------------------------------- the three methods


def shrink_bench(pair: Pair, threads: int, method: str) -> dict:
    config = BenchConfig(threads=threads, method=method, self_check=method == "processes", measure_memory=False)
    return run_bench([OnnxCandidate(str(pair.dense), "dense"), OnnxCandidate(str(pair.small), "small")], config,
                     progress=lambda line: say(f"{pair.name} t{threads} {method}: {line}")).to_dict()


def reference(pair: Pair, threads: int, rounds: int, seconds: float) -> dict:
    def alone(path: Path) -> float:
        proc = subprocess.run([sys.executable, "-c", REFERENCE_CHILD, str(path), str(threads), "1.0", str(seconds), "20"],
                              capture_output=True, text=True, check=True)
        return json.loads(proc.stdout.strip().splitlines()[-1])["median_s"]

    ratios, dense_ms, small_ms = [], [], []
    for r in range(rounds):
        if r % 2 == 0:
            d, s = alone(pair.dense), alone(pair.small)
        else:
            s, d = alone(pair.small), alone(pair.dense)
        ratios.append(d / s)
        dense_ms.append(d * 1e3)
        small_ms.append(s * 1e3)
        say(f"{pair.name} t{threads} reference round {r + 1}/{rounds}: {d * 1e3:.3f} / {s * 1e3:.3f} ms = {d / s:.3f}x")
    low, high = t_interval(np.log(ratios))
    return {"ratio": statistics.median(ratios), "ratios": ratios, "dense_ms": dense_ms, "small_ms": small_ms,
            "ci_low": low, "ci_high": high}


def measure(pair: Pair, threads: int, args) -> dict:
    row = {"pair": pair.name, "what": pair.what, "threads": threads}
    t0 = time.perf_counter()
    row["new"] = [shrink_bench(pair, threads, "processes") for _ in range(2)]
    row["new_seconds"] = (time.perf_counter() - t0) / 2
    row["old"] = shrink_bench(pair, threads, "interleaved")
    row["reference"] = reference(pair, threads, args.reference_rounds, args.reference_seconds)
    return row


# ----------------------------------------------------------------------------- the table


def _speed(result: dict) -> dict:
    return result["candidates"][1]["speedup"]


def judge(row: dict) -> dict:
    ref = row["reference"]["ratio"]
    first, second = (_speed(r) for r in row["new"])
    null = row["new"][0]["self_check"]
    return {
        "new_vs_ref": first["ratio"] / ref - 1,
        "new_vs_new": second["ratio"] / first["ratio"] - 1,
        "covers": first["ci_low"] <= ref <= first["ci_high"],
        "overlap": first["ci_low"] <= row["reference"]["ci_high"] and row["reference"]["ci_low"] <= first["ci_high"],
        "null_ok": abs(null["ratio"] - 1) <= NULL_TOLERANCE,
        "old_vs_ref": _speed(row["old"])["ratio"] / ref - 1,
    }


def _cell(speed: dict) -> str:
    return f"{speed['ratio']:.2f}x [{speed['ci_low']:.2f}, {speed['ci_high']:.2f}]"


def _bimodal(result: dict) -> str:
    flagged = [c["label"] for c in result["candidates"] if (c.get("spread") or {}).get("bimodal")]
    return ", ".join(flagged) or "-"


def markdown(rows: list[dict], command: str, machine: dict, reference_seconds: float) -> str:
    lines = [
        "## Bench method: the default against the old interleaving and an independent reference (issue 23)",
        "",
        f"Command: `{command}`. Machine below. Same files every way; speedup = dense / smaller, ratio of medians.",
        "*new*: `shrink bench`'s default (each file alone in a worker process of its own, taking turns, the next "
        "block only once the last worker is quiet, 4 rounds of fresh processes, 5 s per file in all, spinning on; the "
        "speedup is the geometric mean of the per-process ratios, its interval the wider of the hierarchical "
        "bootstrap and Student's t over the processes), run twice, with the null test. *old*: every file interleaved in one process (the method before issue 23). "
        "*reference*: each file alone in a fresh `python -c` process with a plain onnxruntime loop (1 s warmup, "
        f"{reference_seconds:g} s measured), alternating, "
        "the median of the per-round ratios; its own t-interval over the rounds is shown beside it.",
        "",
        "| pair | threads | reference [t-interval] (round range) | new (run 1) [95% CI] | new (run 2) | new vs ref "
        "| CI covers ref | intervals overlap | new vs new | null test (A vs A) | old | old vs ref | bimodal | new s/run |",
        "|---|---:|---:|---:|---:|---:|---|---|---:|---:|---:|---:|---|---:|",
    ]
    for row in rows:
        j = judge(row)
        null = row["new"][0]["self_check"]
        lines.append(
            f"| {row['what']} | {row['threads']} | {_cell(row['reference'])} "
            f"({min(row['reference']['ratios']):.2f}-{max(row['reference']['ratios']):.2f}) "
            f"| {_cell(_speed(row['new'][0]))} | {_speed(row['new'][1])['ratio']:.2f}x | {j['new_vs_ref']:+.1%} "
            f"| {'yes' if j['covers'] else 'NO'} | {'yes' if j['overlap'] else 'NO'} | {j['new_vs_new']:+.1%} "
            f"| {null['ratio']:.3f}x [{null['ci_low']:.3f}, {null['ci_high']:.3f}] "
            f"| {_speed(row['old'])['ratio']:.2f}x | {j['old_vs_ref']:+.1%} | {_bimodal(row['new'][0])} "
            f"| {row['new_seconds']:.0f} |")
    judged = [judge(r) for r in rows]
    worst_ref = max(abs(j["new_vs_ref"]) for j in judged)
    worst_rep = max(abs(j["new_vs_new"]) for j in judged)
    nulls = [r["new"][0]["self_check"]["ratio"] for r in rows]
    covered = sum(j["covers"] for j in judged)
    lines += [
        "",
        "Targets:",
        f"- new within 5% of the reference on every pair: worst {worst_ref:.1%} "
        f"({'met' if worst_ref <= TARGET_AGREEMENT else 'NOT met'});",
        f"- the null test within 1.00 +- 0.03: {min(nulls):.3f}x to {max(nulls):.3f}x "
        f"({'met' if all(j['null_ok'] for j in judged) else 'NOT met'});",
        f"- two runs of the same comparison within 5%: worst {worst_rep:.1%} "
        f"({'met' if worst_rep <= TARGET_AGREEMENT else 'NOT met'});",
        f"- the interval covers the reference on at least 9 of 10 pairs: {covered} of {len(rows)} "
        f"({'met' if covered >= 0.9 * len(rows) else 'NOT met'});",
        f"- the new interval overlaps the reference's own interval on {sum(j['overlap'] for j in judged)} of {len(rows)};",
        f"- the old method's distance from the reference, for comparison: "
        f"{min(j['old_vs_ref'] for j in judged):+.1%} to {max(j['old_vs_ref'] for j in judged):+.1%}.",
        "",
        *machine_lines(machine),
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/bench_method.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    pairs = make_pairs(args.pairs, args.out / "onnx", args.demo_dir)
    rows = []
    for pair in pairs:
        for threads in args.threads:
            row = measure(pair, threads, args)
            rows.append(row)
            write_text_atomic(args.out / "bench_method.json", json.dumps(rows, indent=1))  # a crash keeps what ran
            j = judge(row)
            say(f"{pair.name} t{threads}: reference {row['reference']['ratio']:.3f}x, new "
                f"{_speed(row['new'][0])['ratio']:.3f}x ({j['new_vs_ref']:+.1%}), old {_speed(row['old'])['ratio']:.3f}x")
    text = markdown(rows, command.strip(), capture_machine().to_dict(), args.reference_seconds)
    write_text_atomic(args.out / "bench_method.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
