"""The JSON card that sits next to a weights file: what the weights are and how they were made.

Convention: the card of `DIR/NAME.safetensors` is `DIR/NAME.json`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from shrink.data.preprocessing import Preprocessing, native
from shrink.errors import ShrinkError
from shrink.fileio import read_json, write_json_atomic
from shrink.models.spec import ModelSpec


@dataclass(frozen=True)
class ModelCard:
    architecture: ModelSpec
    dataset: str
    weights: str  # file name, relative to the card
    sha256: str  # of the weights file
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...]
    test_accuracy: float | None = None  # percent, top-1 on the dataset's test split
    training_command: str = ""
    seed: int | None = None
    epochs: int | None = None
    storage_dtype: str = "float32"
    versions: dict[str, str] = field(default_factory=dict)
    # How an image becomes an input (resize, crop, colour, scale, mean/std); None on older cards,
    # whose images were already at the input size (see `contract`).
    preprocessing: Preprocessing | None = None

    @property
    def contract(self) -> Preprocessing:
        """The preprocessing the weights were trained and measured with."""
        spec = self.architecture
        return self.preprocessing or native(spec.in_chans, spec.input_size, self.mean, self.std)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["architecture"] = self.architecture.to_dict()
        for k in ("mean", "std", "classes"):
            d[k] = list(d[k])
        if self.preprocessing is None:
            del d["preprocessing"]  # cards written before the record existed stay byte-identical
        else:
            d["preprocessing"] = self.preprocessing.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelCard":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ShrinkError(f"model card has unknown keys {sorted(unknown)}")
        try:
            return cls(
                **{
                    **d,
                    "architecture": ModelSpec.from_dict(d["architecture"]),
                    "mean": tuple(d["mean"]),
                    "std": tuple(d["std"]),
                    "classes": tuple(d["classes"]),
                    "preprocessing": Preprocessing.from_dict(d["preprocessing"]) if d.get("preprocessing") else None,
                }
            )
        except (KeyError, TypeError) as exc:
            raise ShrinkError(f"model card is incomplete or malformed: {exc}") from exc


def card_path_for(weights: str | Path) -> Path:
    return Path(weights).with_suffix(".json")


def read_card(path: str | Path) -> ModelCard:
    return ModelCard.from_dict(read_json(path, "model card"))


def write_card(card: ModelCard, path: str | Path) -> Path:
    return write_json_atomic(path, card.to_dict())
