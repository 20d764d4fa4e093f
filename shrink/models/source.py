"""What a model source names, read from the text alone: the one parser of `tv:NAME`, `tvseg:NAME`,
`tvdet:NAME`, `timm:NAME`, `path/file.py:factory`, files and directories, after timm's
`parse_model_name` (prefix, then name).

    ModelSource.parse("tv:resnet50")             -> kind TORCHVISION, name "resnet50"
    ModelSource.parse("nets/tiny.py:build")       -> kind CODE, path nets/tiny.py, name "build"
    ModelSource.parse("runs/p50")                 -> kind DIRECTORY (a pruned model or a card's folder)
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

CODE_SEPARATOR = ".py:"  # a model name with this in it is built by a function in a Python file
WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")
PREFIXES = {"tv": "TORCHVISION", "tvseg": "TORCHVISION_SEGMENTATION", "tvdet": "TORCHVISION_DETECTION",
            "timm": "TIMM"}


class SourceKind(enum.Enum):
    TORCHVISION = "tv"  # tv:NAME, any torchvision classification model
    TORCHVISION_SEGMENTATION = "tvseg"  # tvseg:NAME, a torchvision segmentation model
    TORCHVISION_DETECTION = "tvdet"  # tvdet:NAME, a one-stage torchvision detector
    TIMM = "timm"  # timm:NAME
    CODE = "code"  # path/file.py:factory, built by running the user's file
    BUILTIN = "builtin"  # a name of the built-in registry (fmnist_resnet18)
    DIRECTORY = "directory"  # a pruned model (plan.json) or a folder with a model card
    CARD = "card"  # a model card (.json) next to its weights
    WEIGHTS = "weights"  # a weights file with its card
    ONNX = "onnx"  # an exported file: not a PyTorch model
    FILE = "file"  # some other file: no model source

    @property
    def is_registry(self) -> bool:
        """Built from a registry name, not read from files."""
        return self in (SourceKind.TORCHVISION, SourceKind.TORCHVISION_SEGMENTATION, SourceKind.TORCHVISION_DETECTION,
                        SourceKind.TIMM, SourceKind.CODE, SourceKind.BUILTIN)


@dataclass(frozen=True)
class ModelSource:
    text: str  # as the user gave it
    kind: SourceKind
    name: str  # the registry name after its prefix, the factory of a CODE source, else the text

    @property
    def path(self) -> Path | None:
        """The file or directory the source reads (a CODE source: its Python file)."""
        if self.kind is SourceKind.CODE:
            return Path(self.text.rpartition(":")[0])
        return None if self.kind.is_registry else Path(self.text)

    @property
    def names_file(self) -> bool:
        """A path on disk (to anchor against a recipe's folder), not a bare registry name."""
        return self.kind is SourceKind.CODE or not self.kind.is_registry

    @classmethod
    def parse(cls, text: str) -> "ModelSource":
        prefix, sep, rest = text.partition(":")
        if sep and prefix in PREFIXES:
            return cls(text, SourceKind[PREFIXES[prefix]], rest)
        if CODE_SEPARATOR in text:
            return cls(text, SourceKind.CODE, text.rpartition(":")[2])
        path = Path(text).expanduser()
        if path.suffix == ".json":
            return cls(text, SourceKind.CARD, text)
        if path.suffix in WEIGHT_SUFFIXES:
            return cls(text, SourceKind.WEIGHTS, text)
        if path.suffix == ".onnx":
            return cls(text, SourceKind.ONNX, text)
        if path.suffix:
            return cls(text, SourceKind.FILE, text)
        if path.is_dir() or "/" in text or text.startswith("."):
            return cls(text, SourceKind.DIRECTORY, text)
        return cls(text, SourceKind.BUILTIN, text)
