"""The deployment contract: how one decoded image becomes the model's input.

One record says every step, in order, and `apply` is the only code that does them, so the record
that ships in the ONNX metadata, the manifest and the report is exactly what every accuracy figure
used. It needs only PIL and numpy, as a deployer's code would:

  1. decode, then convert to `color` ("RGB": channels R, G, B; "L": one grey channel);
  2. resize (when `resize` is set) so the shorter side is `resize` pixels, the longer side
     floor(resize * longer / shorter), with PIL's `interpolation` filter; or, when `stretch` is
     set, resize to exactly the crop size (W x H), the aspect ratio not kept (segfolder:, coco:);
  3. centre crop `crop` = (H, W): left = (width - W) // 2, top = (height - H) // 2; without a resize
     the image must already be H x W;
  4. x = pixels * scale, then (x - mean) / std per channel;
  5. layout NCHW, dtype float32.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from shrink.config_io import OMIT_IF_NONE, Record, from_dict, to_dict
from shrink.errors import ShrinkError, ShrinkValueError

COLORS = {"RGB": 3, "L": 1}  # PIL mode -> channels
INTERPOLATIONS = ("nearest", "bilinear", "bicubic")
LAYOUT = "NCHW"
DTYPE = "float32"
FORMAT = "torch-shrink/preprocessing/1"


@dataclass(frozen=True)
class Preprocessing(Record):
    LABEL = "preprocessing record keys"

    color: str  # PIL mode the decoded image is converted to: "RGB" or "L"
    crop: tuple[int, int]  # (H, W) of the centre crop, which is the model's input size
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resize: int | None = None  # shorter side before the crop; None: the image is already crop-sized
    interpolation: str = "bilinear"
    scale: float = 1.0 / 255.0
    layout: str = LAYOUT
    dtype: str = DTYPE
    # True: step 2 resizes to exactly the crop size; left out of the record when unset
    stretch: bool | None = field(default=None, metadata=OMIT_IF_NONE)

    def __post_init__(self) -> None:
        if self.color not in COLORS:
            raise ShrinkValueError(f"preprocessing color must be one of {sorted(COLORS)}, got {self.color!r}")
        crop = tuple(int(s) for s in self.crop)
        if len(crop) != 2 or min(crop) < 1:
            raise ShrinkValueError(f"preprocessing crop must be (H, W) with positive sides, got {self.crop!r}")
        object.__setattr__(self, "crop", crop)
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))
        channels = COLORS[self.color]
        if len(self.mean) != channels or len(self.std) != channels:
            raise ShrinkValueError(f"preprocessing {self.color} needs {channels} mean and std values, got "
                                   f"{list(self.mean)} / {list(self.std)}")
        if any(s <= 0 for s in self.std):
            raise ShrinkValueError(f"preprocessing std must be positive, got {list(self.std)}")
        if self.resize is not None and (isinstance(self.resize, bool) or not isinstance(self.resize, int)
                                        or self.resize < max(crop)):
            raise ShrinkValueError(f"resize (the shorter side before the centre crop) must be an integer >= the crop "
                                   f"{max(crop)}, got {self.resize!r}")
        if self.stretch is not None and not isinstance(self.stretch, bool):
            raise ShrinkValueError(f"preprocessing stretch must be true or false, got {self.stretch!r}")
        if self.stretch and self.resize is not None:
            raise ShrinkValueError("preprocessing takes a resize of the shorter side or a stretch to the crop size, "
                                   "not both")
        if self.interpolation not in INTERPOLATIONS:
            raise ShrinkValueError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, got "
                                   f"{self.interpolation!r}")
        if (self.layout, self.dtype) != (LAYOUT, DTYPE):
            raise ShrinkValueError(f"only {LAYOUT} {DTYPE} inputs are supported, got {self.layout} {self.dtype}")

    @property
    def channels(self) -> int:
        return COLORS[self.color]

    def resized_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) after step 2."""
        if self.stretch:
            return self.crop[1], self.crop[0]
        if self.resize is None:
            return width, height
        if width <= height:
            return self.resize, int(self.resize * height / width)
        return int(self.resize * width / height), self.resize

    def apply(self, image) -> np.ndarray:
        """One PIL image -> float32 (C, H, W), by the steps in the module docstring."""
        from PIL import Image

        image = image.convert(self.color)
        size = self.resized_size(*image.size)
        if size != image.size:
            image = image.resize(size, getattr(Image.Resampling, self.interpolation.upper()))
        width, height = image.size
        crop_h, crop_w = self.crop
        if self.resize is None and (width, height) != (crop_w, crop_h):
            raise ShrinkError(f"an image of {width}x{height} given to a model whose preprocessing takes {crop_w}x{crop_h} "
                              "images without a resize; resize them first, or read them with a resize (--resize)")
        if width < crop_w or height < crop_h:
            raise ShrinkError(f"an image of {width}x{height} is smaller than the {crop_w}x{crop_h} input; set a resize")
        left, top = (width - crop_w) // 2, (height - crop_h) // 2
        image = image.crop((left, top, left + crop_w, top + crop_h))
        x = np.asarray(image, dtype=np.float32) * np.float32(self.scale)
        x = x[None] if x.ndim == 2 else x.transpose(2, 0, 1)
        mean = np.asarray(self.mean, dtype=np.float32).reshape(-1, 1, 1)
        std = np.asarray(self.std, dtype=np.float32).reshape(-1, 1, 1)
        return np.ascontiguousarray((x - mean) / std, dtype=np.float32)

    def steps(self) -> list[str]:
        """The record in words, one step each: what the report's deploy section prints."""
        color = "RGB (channels in the order R, G, B)" if self.color == "RGB" else "one grey channel (PIL mode L)"
        h, w = self.crop
        out = [f"decode the image and convert it to {color}"]
        if self.stretch:
            out.append(f"resize it to exactly {w}x{h} (W x H) with PIL's {self.interpolation} filter (the aspect ratio "
                       f"is not kept); the model's boxes and masks map back to the image by x width / {w}, "
                       f"y height / {h}")
        elif self.resize is not None:
            out.append(f"resize it so its shorter side is {self.resize} px, the longer side "
                       f"floor({self.resize} x longer / shorter), with PIL's {self.interpolation} filter")
            out.append(f"crop the centre {w}x{h} (W x H): left = (width - {w}) // 2, top = (height - {h}) // 2")
        else:
            out.append(f"no resize and no crop: the image must already be {w}x{h} (W x H)")
        out.append(f"x = pixels x {self.scale:.10g} (pixels / 255), then (x - mean) / std per channel, mean "
                   f"{list(self.mean)}, std {list(self.std)}")
        out.append(f"layout {self.layout} (batch, channels, height, width), dtype {self.dtype}")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, **to_dict(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Preprocessing":
        d = dict(d)
        found = d.pop("format", FORMAT)
        if found != FORMAT:
            raise ShrinkError(f"preprocessing record format {found!r} is not {FORMAT!r} (a newer torch-shrink?)")
        try:
            return from_dict(cls, d, cls.LABEL)
        except TypeError as exc:
            raise ShrinkError(f"preprocessing record is incomplete: {exc}") from exc

    def to_json(self) -> str:
        return json.dumps(self.to_dict())


def native(channels: int, size: tuple[int, int], mean, std) -> Preprocessing:
    """The contract of a dataset whose images are already at the model's input size (fmnist, digits)."""
    if channels not in COLORS.values():
        raise ShrinkValueError(f"an image has 1 or 3 channels, got {channels}")
    return Preprocessing(color="RGB" if channels == 3 else "L", crop=tuple(size), mean=tuple(mean), std=tuple(std))


PREPROCESSING_KEY = "preprocessing"  # the ONNX metadata key that holds the record as JSON


def from_metadata(meta: Mapping[str, str]) -> Preprocessing | None:
    """The record an ONNX file carries, or None when it has none (a file not made by torch-shrink,
    or by an older one)."""
    raw = meta.get(PREPROCESSING_KEY)
    if raw is None:
        return None
    try:
        return Preprocessing.from_dict(json.loads(raw))
    except json.JSONDecodeError as exc:
        raise ShrinkError(f"the file's preprocessing metadata is not JSON: {exc}") from exc
