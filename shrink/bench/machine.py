"""What machine a result was measured on.

Latency of the same file differs from host to host (int8 was 0.4x of fp32 on one H100 machine and
3x on two others of the same kind), so every result carries this block, and results whose blocks
differ are reported as coming from different machines.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import platform
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

CPUINFO = Path("/proc/cpuinfo")
# The /proc/cpuinfo flags that decide which kernels onnxruntime (MLAS) and oneDNN pick.
TRACKED_CPU_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx512_bf16",
    "avx_vnni",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
)
# Fields that must agree for two results to count as measured on the same machine.
MACHINE_IDENTITY_FIELDS = (
    "hostname",
    "cpu_model",
    "cpu_flags",
    "physical_cores",
    "logical_cpus",
    "gpu_name",
    "gpu_driver",
    "torch_version",
    "onnxruntime_version",
)


@dataclass(frozen=True)
class MachineInfo:
    hostname: str
    os: str
    python_version: str
    cpu_model: str
    cpu_flags: tuple[str, ...]  # the TRACKED_CPU_FLAGS this CPU has
    simd_block: int  # fp32 lanes per vector register: 16 (AVX-512), 8 (AVX2), 4 otherwise
    physical_cores: int
    logical_cpus: int  # CPUs this process may run on (affinity / container limit)
    torch_version: str | None
    torch_cuda_version: str | None
    onnxruntime_version: str | None
    onnxruntime_package: str | None  # onnxruntime or onnxruntime-gpu
    onnxruntime_providers: tuple[str, ...]
    gpu_name: str | None
    gpu_driver: str | None
    gpu_memory_mb: int | None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "MachineInfo":
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        for key in ("cpu_flags", "onnxruntime_providers"):
            values[key] = tuple(values.get(key) or ())
        return cls(**{name: values.get(name) for name in names})


def parse_cpuinfo(text: str) -> dict[str, Any]:
    """CPU model, tracked flags and physical core count from the text of /proc/cpuinfo."""
    model = "unknown"
    flags: set[str] = set()
    cores: set[tuple[str, str]] = set()
    physical_id = "0"
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "model name" and model == "unknown":
            model = value
        elif key == "flags" and not flags:
            flags = set(value.split())
        elif key == "physical id":
            physical_id = value
        elif key == "core id":
            cores.add((physical_id, value))
    return {
        "cpu_model": model,
        "cpu_flags": tuple(f for f in TRACKED_CPU_FLAGS if f in flags),
        "physical_cores": len(cores) or None,
    }


def simd_block(cpu_flags: tuple[str, ...] | list[str]) -> int:
    """fp32 values per SIMD register: the channel multiple convolution kernels prefer."""
    if "avx512f" in cpu_flags:
        return 16
    if "avx2" in cpu_flags:
        return 8
    return 4


def logical_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def physical_cores() -> int:
    """Physical cores this process can use: hyperthreads share a core's vector units, so ORT's
    default of one thread per logical CPU is not what we want for latency."""
    cores = None
    if CPUINFO.is_file():
        cores = parse_cpuinfo(CPUINFO.read_text(errors="replace"))["physical_cores"]
    return max(1, min(cores or logical_cpus(), logical_cpus()))


def _package_version(*names: str) -> tuple[str | None, str | None]:
    for name in names:
        try:
            return importlib.metadata.version(name), name
        except importlib.metadata.PackageNotFoundError:
            continue
    return None, None


def _gpu_from_nvidia_smi() -> tuple[str, str, int] | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    first = out.strip().splitlines()[0] if out.strip() else ""
    parts = [p.strip() for p in first.split(",")]
    if len(parts) < 3:
        return None
    try:
        memory = int(float(parts[2]))
    except ValueError:
        memory = None
    return parts[0], parts[1], memory


def _gpu_from_torch() -> tuple[str, None, int] | None:
    torch = sys.modules.get("torch")  # only if already imported: importing torch costs seconds
    if torch is None or not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(0)
    return props.name, None, int(props.total_memory // 2**20)


def _ort_version_and_providers() -> tuple[str | None, tuple[str, ...]]:
    """From the onnxruntime module really imported: onnxruntime and onnxruntime-gpu install the
    same package, and the one first on sys.path wins."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None, ()
    return ort.__version__, tuple(ort.get_available_providers())


def _torch_cuda_version() -> str | None:
    torch = sys.modules.get("torch")
    return getattr(getattr(torch, "version", None), "cuda", None) if torch else None


def cpu_info() -> dict[str, Any]:
    """CPU model, tracked flags and physical cores (parse_cpuinfo), where /proc/cpuinfo exists."""
    if CPUINFO.is_file():
        return parse_cpuinfo(CPUINFO.read_text(errors="replace"))
    return {"cpu_model": platform.processor() or "unknown", "cpu_flags": (), "physical_cores": None}


def capture_machine() -> MachineInfo:
    """Describe this machine without importing torch (versions come from package metadata)."""
    cpu = cpu_info()
    torch_version, _ = _package_version("torch")
    _, ort_package = _package_version("onnxruntime-gpu", "onnxruntime")
    ort_version, ort_providers = _ort_version_and_providers()
    gpu = _gpu_from_nvidia_smi() or _gpu_from_torch()
    return MachineInfo(
        hostname=socket.gethostname(),
        os=platform.platform(),
        python_version=platform.python_version(),
        cpu_model=cpu["cpu_model"],
        cpu_flags=cpu["cpu_flags"],
        simd_block=simd_block(cpu["cpu_flags"]),
        physical_cores=physical_cores(),
        logical_cpus=logical_cpus(),
        torch_version=torch_version,
        torch_cuda_version=_torch_cuda_version(),
        onnxruntime_version=ort_version,
        onnxruntime_package=ort_package,
        onnxruntime_providers=ort_providers,
        gpu_name=gpu[0] if gpu else None,
        gpu_driver=gpu[1] if gpu else None,
        gpu_memory_mb=gpu[2] if gpu else None,
    )


def machine_differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """Human-readable differences between two machine blocks (empty: the same machine)."""
    diffs = []
    for key in MACHINE_IDENTITY_FIELDS:
        va, vb = a.get(key), b.get(key)
        if isinstance(va, list):
            va = tuple(va)
        if isinstance(vb, list):
            vb = tuple(vb)
        if va != vb:
            diffs.append(f"{key}: {va!r} vs {vb!r}")
    return diffs


def format_machine(machine: Mapping[str, Any]) -> str:
    """The machine block as `key: value` lines, for Markdown reports and stderr."""
    lines = []
    for key, value in machine.items():
        if isinstance(value, (list, tuple)):
            value = " ".join(str(v) for v in value) or "-"
        lines.append(f"{key}: {value if value is not None else '-'}")
    return "\n".join(lines)
