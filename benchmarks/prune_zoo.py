"""Support table: structural pruning at ratio 0.5 over every torchvision classification model.

For each model (random init, 1000 classes, a small input): plan at uniform ratio 0.5 (l2,
round_to 8, classifier kept), apply, and run the exactness check. Each model runs in its own
process with a wall-clock limit, so one failure cannot take the others down.

    .venv/bin/python benchmarks/prune_zoo.py                  # all 80 models, hours on 2 shared cores
    .venv/bin/python benchmarks/prune_zoo.py resnet18 swin_t  # some of them
    .venv/bin/python benchmarks/prune_zoo.py --resume --shard 1/2   # two workers, skipping finished models
    .venv/bin/python benchmarks/prune_zoo.py --table          # rebuild table.md from results.jsonl

Writes out/prune_zoo/results.jsonl (one line per model, appended as they finish) and
out/prune_zoo/table.md (the table in docs/pruning.md). This is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from shrink.bench.machine import cpu_info
from shrink.fileio import write_text_atomic

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "out" / "prune_zoo"
SIZES = {  # the smallest convenient input each architecture accepts; ViTs are built for it
    "inception_v3": 96,
    "maxvit_t": 224,
    "vit_h_14": 56,
}
DEFAULT_SIZE = 64
PER_MODEL_SECONDS = 1800


def measure_one(name: str, size: int) -> dict:
    """Plan, apply and check one model (runs in the child process)."""
    import warnings

    import torch
    import torchvision

    from shrink.prune import GuardLimits, PruneConfig, PruneWarning, apply, check_exactness, plan

    torch.set_num_threads(1)
    torch.manual_seed(0)
    kwargs = {"weights": None}
    if name.startswith("vit_"):
        kwargs["image_size"] = size
    model = torchvision.models.get_model(name, **kwargs).eval()
    inputs = (torch.randn(2, 3, size, size),)
    row = {"model": name, "input": size}
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = plan(model, inputs, PruneConfig(ratio=0.5, importance="l2", round_to=8), limits=GuardLimits(seconds=1500))
    planned = time.perf_counter()
    apply(model, result)
    applied = time.perf_counter()
    report = check_exactness(model, result, inputs)
    row.update(
        params_before=result.before.params,
        params_after=result.after.params,
        macs_before=result.before.macs,
        macs_after=result.after.macs,
        mac_reduction=round(result.mac_reduction, 2),
        groups=len(result.groups),
        left_whole=[n.root for n in result.left_whole if "model output" not in n.reason],
        left_whole_reasons=sorted({n.reason.split(" (")[0] for n in result.left_whole if "model output" not in n.reason}),
        check_kind=report.kind,
        passed=report.passed,
        exact_groups=report.exact_groups,
        structural_groups=report.structural_groups,
        relative_diff=(report.max_abs_diff / report.max_abs_output) if report.max_abs_diff is not None else None,
        plan_seconds=round(planned - start, 2),
        apply_seconds=round(applied - planned, 2),
        check_seconds=round(report.seconds, 2),
        warnings=[str(w.message)[:200] for w in caught if issubclass(w.category, PruneWarning)],
    )
    return row


def run_child(name: str, size: int, script: str = __file__) -> dict:
    """`script --one NAME --size SIZE` in its own process: its last JSON line, or the error."""
    cmd = [sys.executable, script, "--one", name, "--size", str(size)]
    start = time.perf_counter()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=PER_MODEL_SECONDS, cwd=REPO)
    except subprocess.TimeoutExpired:
        return {"model": name, "input": size, "passed": False, "error": f"timed out after {PER_MODEL_SECONDS} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode == 0 and lines:
        return json.loads(lines[-1])
    tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
    return {"model": name, "input": size, "passed": False, "error": tail[:300],
            "seconds": round(time.perf_counter() - start, 1)}


def markdown(rows: list[dict]) -> str:
    head = [
        "| model | input | MACs dense | MAC reduction at 0.5 | check | result | groups pruned / left whole | time (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    body = []
    for r in sorted(rows, key=lambda r: r["model"]):
        if "error" in r:
            body.append(f"| {r['model']} | {r['input']} | | | | FAIL: {r['error']} | | |")
            continue
        total = r["plan_seconds"] + r["apply_seconds"] + r["check_seconds"]
        left = len(r["left_whole"])
        verdict = "pass" if r["passed"] else "FAIL"
        body.append(
            f"| {r['model']} | {r['input']} | {r['macs_before'] / 1e9:.3f} G | {r['mac_reduction']:.2f}x | "
            f"{r['check_kind']} | {verdict} | {r['groups']} / {left} | {total:.1f} |"
        )
    passed = sum(1 for r in rows if r.get("passed"))
    partial = sum(1 for r in rows if r.get("passed") and r.get("left_whole"))
    summary = f"\n{passed} of {len(rows)} pass ({partial} of them with some groups left whole)."
    return "\n".join(head + body) + "\n" + summary + "\n"


def load_average() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def machine() -> str:
    cpu = cpu_info()["cpu_model"]
    return f"{cpu}, {os.cpu_count()} cores, 1 torch thread per model"


def load_note(rows: list[dict]) -> str:
    """The load the rows were measured under (recorded per row since it can differ run to run)."""
    loads = [r["load_avg"] for r in rows if "load_avg" in r]
    if not loads:
        return "load average not recorded for these rows"
    note = f"1-minute load average {min(loads):.1f}-{max(loads):.1f} as the rows finished"
    return note if len(loads) == len(rows) else note + f" ({len(loads)} of {len(rows)} rows recorded it)"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", help="torchvision names (default: all)")
    parser.add_argument("--resume", action="store_true", help="skip models already in results.jsonl")
    parser.add_argument("--shard", default="1/1", help="I/N: run every N-th model starting at the I-th")
    parser.add_argument("--table", action="store_true", help="only rebuild table.md from results.jsonl")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure_one(args.one, args.size)))
        return 0
    import torchvision

    OUT.mkdir(parents=True, exist_ok=True)
    results = OUT / "results.jsonl"
    if args.table:
        return write_table(read_results(results))
    names = args.models or torchvision.models.list_models(module=torchvision.models)
    index, count = (int(part) for part in args.shard.split("/"))
    names = names[index - 1 :: count]
    if args.resume:
        names = [n for n in names if n not in read_results(results)]
    run_all(names, lambda name: SIZES.get(name, DEFAULT_SIZE), results)
    return write_table(read_results(results))


def run_all(names: list[str], size_of, results: Path, script: str = __file__) -> list[dict]:
    """`script --one NAME` for each name, each in its own process; every row is appended to
    `results` as it finishes, so an interrupted run keeps what it measured."""
    rows = []
    print(f"# {machine()}", flush=True)
    for name in names:
        row = {**run_child(name, size_of(name), script), "load_avg": round(load_average(), 2)}
        rows.append(row)
        with results.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        status = "pass" if row.get("passed") else f"FAIL {row.get('error', '')}"
        print(f"{name}: {status} {row.get('mac_reduction', '')}x {row.get('check_kind', '')}", flush=True)
    return rows


def read_results(path: Path) -> dict[str, dict]:
    """model -> its latest row."""
    if not path.is_file():
        return {}
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {row["model"]: row for row in rows}


def write_table(rows: dict[str, dict]) -> int:
    table = markdown(list(rows.values()))
    header = f"Machine: {machine()}; {load_note(list(rows.values()))}"
    write_text_atomic(OUT / "table.md", f"{header}\n\n" + table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
