"""The JSON card that sits next to a weights file: what the weights are and how they were made.

Convention: the card of `DIR/NAME.safetensors` is `DIR/NAME.json`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from shrink.config_io import OMIT_IF_NONE, Record, from_dict
from shrink.data.preprocessing import Preprocessing, native
from shrink.errors import ShrinkError
from shrink.fileio import read_json, write_json_atomic
from shrink.models.spec import ModelSpec


@dataclass(frozen=True)
class ModelCard(Record):
    LABEL = "model card keys"

    architecture: ModelSpec
    dataset: str
    weights: str  # file name, relative to the card
    sha256: str  # of the weights file
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...]
    # percent on the dataset's test split, by the task's metric (architecture.predicts): top-1, mIoU or mAP
    test_accuracy: float | None = None
    training_command: str = ""
    seed: int | None = None
    epochs: int | None = None
    storage_dtype: str = "float32"
    versions: dict[str, str] = field(default_factory=dict)
    # How an image becomes an input (resize, crop, colour, scale, mean/std); None on older cards,
    # whose images were already at the input size (see `contract`).
    preprocessing: Preprocessing | None = field(default=None, metadata=OMIT_IF_NONE)

    @property
    def contract(self) -> Preprocessing:
        """The preprocessing the weights were trained and measured with."""
        spec = self.architecture
        return self.preprocessing or native(spec.in_chans, spec.input_size, self.mean, self.std)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ModelCard":
        try:
            return from_dict(cls, d, cls.LABEL)
        except TypeError as exc:
            raise ShrinkError(f"model card is incomplete or malformed: {exc}") from exc


def card_path_for(weights: str | Path) -> Path:
    return Path(weights).with_suffix(".json")


def read_card(path: str | Path) -> ModelCard:
    return ModelCard.from_dict(read_json(path, "model card"))


def write_card(card: ModelCard, path: str | Path) -> Path:
    return write_json_atomic(path, card.to_dict())
