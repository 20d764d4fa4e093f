"""ModelSpec: everything needed to rebuild an architecture from the registry (no pickled code)."""

from __future__ import annotations

from dataclasses import dataclass, field

from shrink.config_io import OMIT_IF_NONE, Record
from shrink.errors import ShrinkValueError
from shrink.models.source import ModelSource, SourceKind
from shrink.tasks import Task

# The task a registry prefix implies; any other source is a classifier unless its spec says otherwise.
PREFIX_TASKS = {SourceKind.TORCHVISION_SEGMENTATION: Task.SEGMENTATION, SourceKind.TORCHVISION_DETECTION: Task.DETECTION}


@dataclass(frozen=True)
class ModelSpec(Record):
    """A registry name plus the constructor arguments that change the architecture."""

    LABEL = "model spec keys"

    name: str
    num_classes: int = 1000
    in_chans: int = 3
    cifar_stem: bool = False
    input_size: tuple[int, int] = (224, 224)
    # A `file.py:factory` model: the sha256 of the file that built it; left out of the record
    # otherwise, so other specs stay as they were.
    code_sha256: str | None = field(default=None, metadata=OMIT_IF_NONE)
    # What the model predicts (shrink.tasks.Task). None: a classifier, left out of the record so
    # classifier specs stay as they were; tvseg:/tvdet: names imply theirs.
    task: str | None = field(default=None, metadata=OMIT_IF_NONE)

    def __post_init__(self) -> None:
        if not self.name:
            raise ShrinkValueError("model name is empty")
        if self.num_classes < 1:
            raise ShrinkValueError(f"num_classes must be >= 1, got {self.num_classes}")
        if self.in_chans < 1:
            raise ShrinkValueError(f"in_chans must be >= 1, got {self.in_chans}")
        size = tuple(int(s) for s in self.input_size)
        if len(size) != 2 or min(size) < 1:
            raise ShrinkValueError(f"input_size must be (H, W) with positive sides, got {self.input_size}")
        object.__setattr__(self, "input_size", size)
        if self.code_sha256 is not None and not (isinstance(self.code_sha256, str) and len(self.code_sha256) == 64):
            raise ShrinkValueError(f"code_sha256 must be a sha256 hex digest, got {self.code_sha256!r}")
        implied = PREFIX_TASKS.get(ModelSource.parse(self.name).kind)
        if self.task is not None and implied is not None and Task.parse(self.task) is not implied:
            raise ShrinkValueError(f"{self.name} is a {implied.value} model, not {self.task}")
        if self.task is None and implied is not None:
            object.__setattr__(self, "task", implied.value)
        if self.task is not None:
            object.__setattr__(self, "task", Task.parse(self.task).value)

    @property
    def predicts(self) -> Task:
        """The task this model does, and so the metric it is scored by."""
        return Task.parse(self.task) if self.task else Task.CLASSIFICATION

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one input image."""
        return (self.in_chans, *self.input_size)
