"""QuantRecipe: one concrete onnxruntime quantization configuration, and the names it is known by.

A recipe is what auto mode searches over and what a decision record names; `ort_kwargs()` turns it
into the arguments of quantize_static / quantize_dynamic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from shrink.config_io import Record, from_dict, to_dict
from shrink.errors import ShrinkValueError

KINDS = ("static", "dynamic")
FORMATS = ("qdq", "qoperator")
METHODS = ("minmax", "entropy", "percentile")
INT8_TYPES = ("u8", "s8")


def _one_of(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ShrinkValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


@dataclass(frozen=True)
class QuantRecipe(Record):
    """Static (calibrated activations) or dynamic (activations quantized at run time) int8."""

    LABEL = "quantization recipe keys"

    kind: str = "static"
    quant_format: str = "qdq"
    activation_type: str = "u8"
    weight_type: str = "s8"
    per_channel: bool = True
    reduce_range: bool = False  # 7-bit weights: avoids u8s8 overflow on CPUs without VNNI
    method: str = "minmax"
    op_types: tuple[str, ...] | None = None  # None: every op type onnxruntime can quantize
    exclude: tuple[str, ...] = ()  # node names kept in fp32
    why: str = ""  # why the search tries this recipe (not part of its identity)

    def __post_init__(self) -> None:
        _one_of("kind", self.kind, KINDS)
        _one_of("quant_format", self.quant_format, FORMATS)
        _one_of("activation_type", self.activation_type, INT8_TYPES)
        _one_of("weight_type", self.weight_type, INT8_TYPES)
        _one_of("method", self.method, METHODS)
        if self.op_types is not None:
            object.__setattr__(self, "op_types", tuple(self.op_types))
            if not self.op_types:
                raise ShrinkValueError("op_types must name at least one operator type (or be None for all)")
        object.__setattr__(self, "exclude", tuple(self.exclude))
        if self.kind == "dynamic" and self.activation_type != "u8":
            raise ShrinkValueError("dynamic quantization computes u8 activations; activation_type must be u8")

    @property
    def name(self) -> str:
        """Short, unique label: e.g. static-qdq-u8s8-pc-minmax, dynamic-s8-pc-MatMul."""
        if self.kind == "dynamic":
            parts = ["dynamic", self.weight_type, "pc" if self.per_channel else "pt"]
        else:
            parts = ["static", self.quant_format, f"{self.activation_type}{self.weight_type}",
                     "pc" if self.per_channel else "pt", self.method]
        if self.reduce_range:
            parts.append("rr")
        if self.op_types is not None:
            parts.append("+".join(self.op_types))
        if self.exclude:
            parts.append(f"excl{len(self.exclude)}")
        return "-".join(parts)

    def ort_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for onnxruntime.quantization.quantize_static / quantize_dynamic."""
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType

        types = {"u8": QuantType.QUInt8, "s8": QuantType.QInt8}
        kwargs: dict[str, Any] = {
            "per_channel": self.per_channel,
            "reduce_range": self.reduce_range,
            "weight_type": types[self.weight_type],
            "op_types_to_quantize": list(self.op_types) if self.op_types else None,
            "nodes_to_exclude": list(self.exclude) or None,
        }
        if self.kind == "static":
            kwargs["activation_type"] = types[self.activation_type]
            kwargs["quant_format"] = QuantFormat.QDQ if self.quant_format == "qdq" else QuantFormat.QOperator
            kwargs["calibrate_method"] = {
                "minmax": CalibrationMethod.MinMax,
                "entropy": CalibrationMethod.Entropy,
                "percentile": CalibrationMethod.Percentile,
            }[self.method]
        return kwargs

    def to_dict(self) -> dict[str, Any]:
        return {**to_dict(self), "name": self.name}  # the name is derived, written for readers of the file

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "QuantRecipe":
        return from_dict(cls, {k: v for k, v in data.items() if k != "name"}, cls.LABEL)
