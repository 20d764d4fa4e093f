"""Time the subgraphs of a layer kit: needs only Python, numpy and onnxruntime.

This one file is the timing loop of every latency table. `shrink bench layers` runs it in a fresh
worker process of its own on this machine; `--export-kit DIR` copies it into DIR next to the
subgraphs, so that the same loop runs on the deployment device:

    python layer_timer.py DIR            # writes DIR/table.json with that device's machine block

It imports nothing from torch or torch-shrink, on purpose. Method, as `shrink bench` times a file:
- one onnxruntime session at a time, in this process only, made with explicit intra-op threads,
  sequential execution, the kit's graph optimization level and thread spinning setting;
- each session is closed (its thread pool joined) before the next one is made, so no idle pool
  spins next to a timed one (sessions sharing a process moved ratios by up to 40%);
- warm-up runs, then timed runs; the median is kept;
- every round visits the entries in a new random order, and an entry's figure is the median of
  its rounds, so a slow stretch of the machine does not land on one layer only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import socket
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

KIT_FORMAT = "torch-shrink-layer-kit"
# The table this writes is read by shrink.bench.latency_table (a test keeps the two in step).
TABLE_FORMAT = "torch-shrink-latency-table"
TABLE_VERSION = 1
TRACKED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8", "asimd", "asimddp", "sve")
PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}
NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int64)": np.int64,
               "tensor(int32)": np.int32, "tensor(uint8)": np.uint8, "tensor(int8)": np.int8}
MAX_RUNS = 400  # an entry stops here even if min_seconds is not reached


def machine_block() -> dict:
    """The CPU, its tracked flags, the CPUs this process may use, and onnxruntime: the part of a
    machine that decides how fast a layer runs."""
    model, flags = platform.processor() or "unknown", set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            key = key.strip().lower()
            if key in ("model name", "hardware") and model in ("unknown", "", platform.machine()):
                model = value.strip()
            elif key in ("flags", "features"):
                flags.update(value.split())
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    return {
        "hostname": socket.gethostname(),
        "cpu_model": model,
        "cpu_flags": sorted(f for f in flags if f in TRACKED_FLAGS),
        "logical_cpus": cpus,
        "arch": platform.machine(),
        "os": platform.platform(),
        "python_version": platform.python_version(),
        "onnxruntime_version": ort.__version__,
        "onnxruntime_providers": list(ort.get_available_providers()),
    }


def fingerprint(block: dict) -> str:
    """What a latency table is tied to: CPU model and flags, CPUs and onnxruntime version."""
    import hashlib

    text = json.dumps([block.get("cpu_model"), block.get("cpu_flags"), block.get("logical_cpus"),
                       block.get("arch"), block.get("onnxruntime_version")])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def make_session(path: str, kit: dict) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(kit["threads"])
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if kit.get("spinning", True) else "0")
    opts.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[kit.get("graph_optimization", "all")]
    provider = PROVIDERS[kit.get("runtime", "cpu")]
    if provider not in ort.get_available_providers():
        raise SystemExit(f"error: onnxruntime here has no {provider}; available: {', '.join(ort.get_available_providers())}")
    providers = [provider] + (["CPUExecutionProvider"] if provider != "CPUExecutionProvider" else [])
    session = ort.InferenceSession(path, sess_options=opts, providers=providers)
    if session.get_providers()[0] != provider:  # onnxruntime falls back silently; a table must not
        raise SystemExit(f"error: onnxruntime fell back to {session.get_providers()[0]} for {path}")
    return session


def feeds_for(session: ort.InferenceSession, rng: np.random.Generator) -> dict:
    feeds = {}
    for value in session.get_inputs():
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in value.shape]
        dtype = NUMPY_TYPES.get(value.type, np.float32)
        feeds[value.name] = rng.standard_normal(shape).astype(dtype)
    return feeds


def time_entry(path: str, kit: dict, rng: np.random.Generator) -> float:
    """Median ms of one subgraph, alone in its session. `kit` holds the run counts (an entry may
    override them: the whole models of the calibration are timed longer)."""
    session = make_session(path, kit)
    feeds, outputs = feeds_for(session, rng), [o.name for o in session.get_outputs()]
    start, runs = time.perf_counter(), 0
    while runs < kit["warmup_runs"] or time.perf_counter() - start < kit["warmup_seconds"]:
        session.run(outputs, feeds)
        runs += 1
    samples, start = [], time.perf_counter()
    while len(samples) < MAX_RUNS and (len(samples) < kit["min_runs"] or time.perf_counter() - start < kit["min_seconds"]):
        t0 = time.perf_counter()
        session.run(outputs, feeds)
        samples.append(time.perf_counter() - t0)
    del session  # joins its thread pool before the next session is made
    return float(np.median(samples) * 1e3)


class Progress:
    """A bar on stderr when it is a terminal, a line every 10% otherwise."""

    def __init__(self, total: int, quiet: bool) -> None:
        self.total, self.quiet, self.tty, self.shown = total, quiet, sys.stderr.isatty(), -1
        self.start = time.perf_counter()

    def update(self, done: int, what: str) -> None:
        if self.quiet:
            return
        share = done / self.total
        elapsed = time.perf_counter() - self.start
        eta = elapsed / done * (self.total - done) if done else 0.0
        if self.tty:
            bar = "#" * int(share * 30)
            sys.stderr.write(f"\r  timing layers [{bar:<30}] {done}/{self.total}  {elapsed:4.0f} s, ~{eta:3.0f} s left  {what[:28]:<28}")
            if done == self.total:
                sys.stderr.write("\n")
        elif int(share * 10) > self.shown:
            self.shown = int(share * 10)
            sys.stderr.write(f"  timing layers: {done}/{self.total} ({share:.0%}), {elapsed:.0f} s\n")
        sys.stderr.flush()


def run_kit(kit_dir: Path, quiet: bool = False) -> dict:
    kit = json.loads((kit_dir / "kit.json").read_text())
    if kit.get("format") != KIT_FORMAT:
        raise SystemExit(f"error: {kit_dir / 'kit.json'} is not a torch-shrink layer kit")
    entries = kit["entries"]
    rounds = int(kit.get("rounds", 1))
    order_rng, input_rng = random.Random(kit.get("seed", 0)), np.random.default_rng(kit.get("seed", 0))
    per_round: dict[str, list[float]] = {e["id"]: [] for e in entries}
    progress, done, started = Progress(len(entries) * rounds, quiet), 0, time.perf_counter()
    for _ in range(rounds):
        order = list(entries)
        order_rng.shuffle(order)
        for entry in order:
            per_round[entry["id"]].append(time_entry(str(kit_dir / entry["file"]), {**kit, **entry.get("timing", {})}, input_rng))
            done += 1
            progress.update(done, entry["id"])
    ms = {k: float(np.median(v)) for k, v in per_round.items()}
    meta = json.loads((kit_dir / "kit_meta.json").read_text())
    return table_dict(meta, ms, machine_block(), round(time.perf_counter() - started, 2))


def table_dict(meta: dict, ms: dict, block: dict, seconds: float) -> dict:
    """The latency table JSON: the kit's layers and grids with their times, this machine's block,
    and the calibration points (whole-model times), which the package fits when it loads the table."""
    kinds = {}
    for name, k in meta["kinds"].items():
        if k["depthwise"]:
            diagonal = [ms[k["entries"][f"{c}x{c}"]] for c in k["cout"]]
            grid = [[diagonal[i] if i == j else 0.0 for j in range(len(diagonal))] for i in range(len(diagonal))]
        else:
            grid = [[ms[k["entries"][f"{ci}x{co}"]] for co in k["cout"]] for ci in k["cin"]]
        kinds[name] = {"kind": name, "ops": k["ops"], "cin": k["cin"], "cout": k["cout"], "ms": grid, "depthwise": k["depthwise"]}
    target = meta["target"]
    return {
        "format": TABLE_FORMAT,
        "version": TABLE_VERSION,
        "key": {"structure": meta["structure"], "machine": fingerprint(block), "runtime": target["runtime"],
                "precision": target["precision"], "threads": target["threads"], "batch": target["batch"]},
        "machine": block,
        "timing": {"seconds": seconds, "rounds": target["rounds"], "grid_points": target["grid_points"],
                   "subgraphs": len(ms) - len(meta["calibration"]), "min_runs": target["min_runs"],
                   "min_seconds": target["min_seconds"]},
        "notes": meta.get("notes", []),
        "groups": meta["groups"],
        "layers": meta["layers"],
        "kinds": kinds,
        "calibration": {"points": [{"widths": c["widths"], "whole_ms": ms[c["id"]]} for c in meta["calibration"]]},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Time a torch-shrink layer kit on this device (onnxruntime + numpy only).")
    parser.add_argument("kit", type=Path, help="the kit directory (holds kit.json)")
    parser.add_argument("--out", type=Path, help="where to write the latency table (default KIT/table.json)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    result = run_kit(args.kit, args.quiet)
    out = args.out or args.kit / "table.json"
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, out)
    if not args.quiet:
        print(f"wrote {out}: {result['timing']['subgraphs']} layer subgraphs and {len(result['calibration']['points'])} whole "
              f"models in {result['timing']['seconds']:.0f} s on {result['machine']['cpu_model']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
