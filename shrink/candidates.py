"""The files a run compares: the dense baseline, the pruned model, and its int8 form. One name each,
shared by the pipeline, the manifest, the report and the sweep."""

from __future__ import annotations

import enum


class Candidate(str, enum.Enum):
    DENSE_FP32 = "dense fp32"
    PRUNED_FP32 = "pruned fp32"
    PRUNED_INT8 = "pruned int8"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @classmethod
    def pruned(cls, precision: str) -> "Candidate":
        """The pruned candidate of a precision ("fp32" or "int8")."""
        return cls(f"pruned {precision}")
