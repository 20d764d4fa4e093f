"""Channel multiples each runtime's kernels want (the "granule"), kept as data.

A width off the granule costs padding or a slower kernel: onnxruntime's NCHWc fp32 convolutions
block channels by the SIMD width (8 floats on AVX2, 16 on AVX-512), its int8 kernels (VNNI, AMX)
want multiples of 16, and TensorRT tiles fp16 in 8s and int8 in 32s. On the AVX-512 dev VM, tv
mobilenet_v2 pruned 0.5 ran 2.10x faster than dense at 2 threads with widths rounded to 8 and 2.55x
with 16, although 16 removed fewer MACs (benchmarks/round_to_granule.py). So the default rounding
is the granule of the machine the command runs on.
"""

from __future__ import annotations

RUNTIMES: tuple[str, ...] = ("cpu", "cuda", "tensorrt")
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8")

# (runtime, precision) -> channel multiple; "simd" means the CPU's fp32 SIMD block (machine block).
GRANULES: dict[tuple[str, str], int | str] = {
    ("cpu", "fp32"): "simd",
    ("cpu", "int8"): 16,
    ("cuda", "fp32"): 8,
    ("cuda", "fp16"): 8,
    ("cuda", "int8"): 16,
    ("tensorrt", "fp32"): 8,
    ("tensorrt", "fp16"): 8,
    ("tensorrt", "int8"): 32,
}


def granule(runtime: str = "cpu", precision: str = "fp32", cpu_flags: tuple[str, ...] | None = None) -> int:
    """The channel multiple for `runtime` at `precision`; the CPU's own flags unless given."""
    from shrink.bench.machine import cpu_info, simd_block
    from shrink.errors import ShrinkValueError

    if (runtime, precision) not in GRANULES:
        known = ", ".join(f"{r}/{p}" for r, p in GRANULES)
        raise ShrinkValueError(f"no granule for runtime {runtime!r} at precision {precision!r}; known: {known}")
    value = GRANULES[(runtime, precision)]
    if value != "simd":
        return int(value)
    flags = cpu_flags if cpu_flags is not None else tuple(cpu_info()["cpu_flags"])
    return simd_block(flags)
