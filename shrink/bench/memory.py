"""Peak memory of one candidate, measured in a fresh process of its own.

In one process the peak RSS is a high-water mark shared by every candidate (and freed memory is
reused by the next one), so a per-candidate number taken there would be wrong. Instead each
candidate is loaded and run a few times in a child process (`python -m shrink.bench.memory`), which
reports:
- CPU: its peak RSS (VmHWM) and that peak minus the RSS it had after imports, before the model
  was loaded: the memory the candidate itself costs;
- GPU: device memory taken by the candidate (free memory before loading minus free memory after
  the runs; onnxruntime's arena and PyTorch's caching allocator both keep their peak).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shrink.bench.config import BenchConfig, Candidate, TorchCandidate, candidate_from_dict, candidate_to_dict

MEMORY_PROBE_RUNS = 5  # memory peaks on the first run or two; a few more make sure
MEMORY_PROBE_TIMEOUT_S = 900  # TensorRT engine builds can take minutes
PROC_STATUS = Path("/proc/self/status")


@dataclass(frozen=True)
class MemoryUsage:
    method: str  # how it was measured
    peak_rss_mb: float | None  # whole child process
    candidate_rss_mb: float | None  # peak minus the RSS before the model was loaded
    device_mb: float | None  # GPU memory taken by the candidate
    note: str = ""


def _status_kb(field_name: str) -> int | None:
    if not PROC_STATUS.is_file():
        return None
    for line in PROC_STATUS.read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    return None


def _mb(kb: int | None) -> float | None:
    return None if kb is None else kb / 1024.0


def measure_memory(candidate: Candidate, config: BenchConfig, threads: int) -> MemoryUsage:
    """Run the candidate in a child process and read back its memory use."""
    spec = candidate_to_dict(candidate)
    if spec is None:
        return MemoryUsage("not measured", None, None, None, "an in-memory module cannot be re-created in a fresh process; give a model spec")
    request = json.dumps({"candidate": spec, "config": config.to_dict(), "threads": threads})
    # The child must import this same shrink package even where it is not pip-installed.
    package_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])))
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "shrink.bench.memory"],
            input=request,
            env=env,
            capture_output=True,
            text=True,
            timeout=MEMORY_PROBE_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return MemoryUsage("failed", None, None, None, f"memory probe timed out after {MEMORY_PROBE_TIMEOUT_S} s")
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return MemoryUsage("failed", None, None, None, f"memory probe failed: {last}")
    return MemoryUsage(**json.loads(lines[-1]))


def _device_free_bytes() -> int | None:
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    torch.cuda.init()
    torch.cuda.synchronize()
    return torch.cuda.mem_get_info()[0]


def probe(request: dict[str, Any]) -> MemoryUsage:
    """Child side: load the candidate, run it, report memory. Imports happen before the baseline."""
    import numpy  # noqa: F401  (part of the baseline, not of the candidate)

    from shrink.bench.engines import create_engine

    config = BenchConfig.from_dict(request["config"])
    candidate = candidate_from_dict(request["candidate"])
    if isinstance(candidate, TorchCandidate) or config.device == "cuda":
        import torch  # noqa: F401
    if isinstance(candidate, TorchCandidate):
        import shrink.models  # noqa: F401  (the registry's imports are not the model's memory)
    else:
        import onnxruntime  # noqa: F401
    free_before = _device_free_bytes() if config.device == "cuda" else None
    baseline_kb = _status_kb("VmRSS")
    engine = create_engine(candidate, config, int(request["threads"]))
    for _ in range(MEMORY_PROBE_RUNS):
        engine.run_once()
    peak_kb = _status_kb("VmHWM")
    device_mb = None
    note = f"fresh process per candidate, {MEMORY_PROBE_RUNS} runs"
    if config.device == "cuda":
        free_after = _device_free_bytes()
        if free_before is None or free_after is None:
            note += "; device memory not measured (needs torch with CUDA in the bench process)"
        else:
            device_mb = (free_before - free_after) / 2**20
    candidate_kb = None if peak_kb is None or baseline_kb is None else peak_kb - baseline_kb
    method = "subprocess VmHWM" + (" + cuda mem_get_info" if device_mb is not None else "")
    return MemoryUsage(method, _mb(peak_kb), _mb(candidate_kb), device_mb, note)


def _main() -> int:
    import dataclasses

    usage = probe(json.loads(sys.stdin.read()))
    print(json.dumps(dataclasses.asdict(usage)))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
