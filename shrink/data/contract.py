"""Read a dataset exactly as a shipped file's preprocessing record says.

`shrink eval`, `quantize` and `bench` given an ONNX file take its input size and preprocessing from
the file's metadata, so a figure measured on the file uses the contract it ships with. A folder of
images is read through the record itself; a dataset held in memory at its native size (fmnist,
digits) is normalized with the record's mean and std, and refused when the record asks for a
resize, a crop or a colour its images cannot give.
"""

from __future__ import annotations

from dataclasses import replace

from shrink.data.preprocessing import Preprocessing
from shrink.data.splits import TensorSplit
from shrink.errors import ShrinkError


def with_contract(data: TensorSplit, record: Preprocessing, name: str) -> TensorSplit:
    """A dataset held in memory at its native size, normalized as `record` says; refused when the
    record asks for a resize, a crop or a colour its images cannot give. (A folder of files is read
    through the record itself: shrink.data.imagefolder.)"""
    info = data.info
    native = (record.resize is None and record.crop == tuple(info.image_size) and record.channels == info.in_chans
              and abs(record.scale - 1 / 255) < 1e-12)
    if not native:
        raise ShrinkError(f"the file's preprocessing ({'; '.join(record.steps()[:3])}) cannot be applied to {name}, "
                          f"whose images are {info.in_chans}x{info.image_size[0]}x{info.image_size[1]} in memory; "
                          "give the images as files (imagefolder:DIR)")
    if (record.mean, record.std) == (tuple(info.mean), tuple(info.std)):
        return data
    contracted = replace(info, mean=record.mean, std=record.std, preprocessing=record)
    return TensorSplit(data.images, data.labels, contracted)  # it normalizes with its info's mean and std
