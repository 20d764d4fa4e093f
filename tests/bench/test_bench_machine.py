"""Machine capture: /proc/cpuinfo parsing, SIMD block, and telling machines apart."""

from shrink.bench.machine import capture_machine, machine_differences, parse_cpuinfo, simd_block

CPUINFO = """\
processor	: 0
model name	: Intel(R) Xeon(R) Platinum 8480+
physical id	: 0
core id		: 0
flags		: fpu sse2 avx2 fma avx512f avx512bw avx512_vnni amx_tile amx_int8 amx_bf16
processor	: 1
model name	: Intel(R) Xeon(R) Platinum 8480+
physical id	: 0
core id		: 0
flags		: fpu sse2 avx2 fma avx512f avx512bw avx512_vnni amx_tile amx_int8 amx_bf16
processor	: 2
model name	: Intel(R) Xeon(R) Platinum 8480+
physical id	: 0
core id		: 1
flags		: fpu sse2 avx2 fma avx512f avx512bw avx512_vnni amx_tile amx_int8 amx_bf16
"""


def test_parse_cpuinfo_counts_physical_cores_not_hyperthreads():
    info = parse_cpuinfo(CPUINFO)
    assert info["cpu_model"] == "Intel(R) Xeon(R) Platinum 8480+"
    assert info["physical_cores"] == 2  # three logical CPUs, two cores
    assert info["cpu_flags"] == ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "amx_tile", "amx_int8", "amx_bf16")


def test_simd_block():
    assert simd_block(("avx2", "avx512f")) == 16
    assert simd_block(("avx2",)) == 8
    assert simd_block(()) == 4


def test_capture_machine_fills_every_field():
    machine = capture_machine().to_dict()
    assert machine["physical_cores"] >= 1
    assert machine["logical_cpus"] >= machine["physical_cores"]
    assert machine["onnxruntime_version"]
    assert "CPUExecutionProvider" in machine["onnxruntime_providers"]
    assert machine["simd_block"] in (4, 8, 16)
    assert machine["cpu_model"]


def test_machine_differences():
    machine = capture_machine().to_dict()
    assert machine_differences(machine, dict(machine)) == []
    other = dict(machine, hostname="elsewhere", gpu_name="NVIDIA H100 80GB HBM3")
    diffs = machine_differences(machine, other)
    assert any(d.startswith("hostname:") for d in diffs)
    assert any(d.startswith("gpu_name:") for d in diffs)
    # A block loaded from JSON has lists where the live one has tuples; that is not a difference.
    as_json = dict(machine, cpu_flags=list(machine["cpu_flags"]))
    assert machine_differences(machine, as_json) == []
