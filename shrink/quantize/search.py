"""The small space of recipes auto mode measures: one axis changed at a time from the base recipe.

Each recipe says why it is tried. The space is small on purpose: every recipe costs a quantization,
a bench slot and possibly an accuracy run, and each axis below is one that changes int8 speed or
accuracy on real CPUs:
- per-tensor weights: simpler requantization than per-channel;
- reduce_range (7-bit weights): avoids u8s8 overflow on CPUs without VNNI (an accuracy fix);
- QOperator format: QLinear* nodes directly, instead of relying on the QDQ fusion;
- s8s8: the other type pair; fast on some hosts, very slow on others;
- compute ops only (Conv/Gemm/MatMul): Add/pooling stay fp32, fewer requantizations;
- SQNR-chosen layers kept in fp32 (typically the first conv and the classifier);
- dynamic quantization, for MatMul/Gemm-heavy graphs (ViT).
"""

from __future__ import annotations

import dataclasses

from shrink.quantize.recipe import QuantRecipe

COMPUTE_OPS = ("Conv", "Gemm", "MatMul")


def matmul_heavy(op_counts: dict[str, int]) -> bool:
    """More MatMul/Gemm than Conv nodes: a transformer-like graph."""
    return op_counts.get("MatMul", 0) + op_counts.get("Gemm", 0) > op_counts.get("Conv", 0)


def search_space(base: QuantRecipe, op_counts: dict[str, int]) -> tuple[QuantRecipe, ...]:
    """Recipes to try, base first (the SQNR-driven one is added once the base has been analysed)."""
    replace = dataclasses.replace
    recipes = [replace(base, kind="static", why="base recipe (naive default: QDQ u8s8 per-channel MinMax)")]
    static = recipes[0]
    recipes += [
        replace(static, per_channel=not static.per_channel,
                why="per-tensor weights" if static.per_channel else "per-channel weights"),
        replace(static, reduce_range=not static.reduce_range, why="toggle reduce_range (7-bit weights)"),
        replace(static, quant_format="qoperator" if static.quant_format == "qdq" else "qdq",
                why="the other format (QOperator QLinear* nodes vs QDQ)"),
        replace(static, activation_type="s8" if static.activation_type == "u8" else "u8", weight_type="s8",
                why="the other activation type (s8s8 vs u8s8)"),
    ]
    if static.op_types is None:
        recipes.append(replace(static, op_types=COMPUTE_OPS, why="quantize only Conv/Gemm/MatMul"))
    if matmul_heavy(op_counts):
        recipes += [
            QuantRecipe(kind="dynamic", weight_type="s8", per_channel=True, op_types=("MatMul", "Gemm"),
                        why="dynamic quantization of MatMul/Gemm (transformer-like graph)"),
            QuantRecipe(kind="dynamic", weight_type="s8", per_channel=False, op_types=("MatMul", "Gemm"),
                        why="dynamic, per-tensor weights"),
        ]
    unique: dict[str, QuantRecipe] = {}
    for recipe in recipes:
        unique.setdefault(recipe.name, recipe)
    return tuple(unique.values())


def with_excluded(base: QuantRecipe, layers: tuple[str, ...]) -> QuantRecipe:
    return dataclasses.replace(base, exclude=tuple(dict.fromkeys((*base.exclude, *layers))),
                               why=f"keep the lowest-SQNR layers in fp32: {', '.join(layers)}")
