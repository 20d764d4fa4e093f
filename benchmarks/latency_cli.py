"""Issue 25's "done when": `shrink prune tv:resnet50 --target-latency 0.3 --runtime cpu --threads 2`
from an empty table cache, timed end to end (table + closed loop + exactness check + writing).

    python benchmarks/latency_cli.py --out runs/latency_cli
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

from bench_zoo import machine_lines  # also puts the repo root on sys.path

from shrink.bench.machine import capture_machine
from shrink.fileio import write_text_atomic


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tv:resnet50")
    parser.add_argument("--budget", default="0.3")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/latency_cli"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    cache, plan_dir = args.out / "cache", args.out / "plan"
    command = ["shrink", "prune", args.model, "--target-latency", args.budget, "--runtime", "cpu", "--threads",
               str(args.threads), "--out", str(plan_dir), "--force", "--table-cache", str(cache)]
    for old in cache.glob("*.json") if cache.is_dir() else ():
        old.unlink()  # from an empty cache: the table is built inside the timed command
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "shrink", *command[1:]], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    latency = json.loads((plan_dir / "plan.json").read_text())["latency"]
    shipped = next(r for r in latency["measured"] if r["shipped"])
    rounds = [line for line in done.stdout.splitlines() if line.startswith("latency")]
    budget = float(args.budget)
    lines = [f"## `shrink prune {args.model} --target-latency {args.budget}` end to end (issue 25, done when)", "",
             f"Command: `python benchmarks/latency_cli.py {shlex.join(sys.argv[1:])}`, which runs `{shlex.join(command)}` "
             "from an empty table cache.", "",
             f"- wall time, table + closed loop + exactness check: **{seconds / 60:.1f} min** (target: 8 min)",
             f"- shipped round {shipped['index']}: measured share of dense **{shipped['ratio']:.3f}** "
             f"[{shipped['ratio_ci'][0]:.3f}, {shipped['ratio_ci'][1]:.3f}] for a budget of {budget:g} "
             f"({shipped['ratio'] / budget - 1:+.1%}; target ±5%)", "", "What it printed:", "", "```", *rounds, "```", ""]
    lines += machine_lines(capture_machine().to_dict())
    path = args.out / "latency_cli.md"
    write_text_atomic(path, "\n".join(lines) + "\n")
    print(path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
