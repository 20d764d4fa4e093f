"""The data an ONNX file should be measured on, read the way the file says.

A file exported by torch-shrink carries its preprocessing record in its metadata; `shrink eval`,
`quantize` and `bench` read the images by that record (shrink.data.contract), so the figure they
print is the figure the deployed file gives. A file without one (made elsewhere) is read with the
options typed on the command line, sized to the file's own input.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from shrink.data.preprocessing import Preprocessing, from_metadata
from shrink.errors import ShrinkError


def declared_image_shape(meta: Mapping[str, str]) -> tuple[int, int, int] | None:
    """(C, H, W) that a torch-shrink file declares in its metadata (`input_shape`, else the crop of
    its preprocessing record); None for a file that declares neither."""
    try:
        declared = json.loads(meta["input_shape"]) if "input_shape" in meta else None
    except json.JSONDecodeError:
        declared = None  # informative only: the graph's own shape still holds
    dims = declared[1:] if isinstance(declared, list) else ()
    if len(dims) == 3 and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in dims):
        return tuple(dims)  # type: ignore[return-value]
    record = from_metadata(meta)
    return (record.channels, *record.crop) if record is not None else None


@dataclass(frozen=True)
class OnnxContract:
    input_shape: tuple[int | str, ...]  # as the graph declares it, e.g. ('batch', 3, 64, 64)
    metadata: dict[str, str]

    @property
    def preprocessing(self) -> Preprocessing | None:
        """The file's record; None when it has none (made elsewhere, or by an older torch-shrink)."""
        return from_metadata(self.metadata)

    @property
    def image_shape(self) -> tuple[int, int, int] | None:
        """(C, H, W) when the graph fixes them, else what the metadata declares (None if neither)."""
        dims = self.input_shape[1:]
        if len(dims) == 3 and all(isinstance(d, int) and d > 0 for d in dims):
            return tuple(dims)  # type: ignore[return-value]
        return declared_image_shape(self.metadata)


def read_contract(path: str | Path) -> OnnxContract:
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and friends: one line
        raise ShrinkError(f"{path} cannot be read as ONNX: {str(exc).splitlines()[0] if str(exc) else exc!r}") from exc
    initializers = {t.name for t in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in initializers]
    if not inputs:
        raise ShrinkError(f"{path} has no graph input")
    dims = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                 for d in inputs[0].type.tensor_type.shape.dim)
    return OnnxContract(input_shape=dims, metadata={p.key: p.value for p in proto.metadata_props})


def check_typed_options(args: argparse.Namespace, record: Preprocessing) -> None:
    """Folder options the user typed must say what the file's record says (or be left out)."""
    from shrink.data.arguments import typed_folder_options
    from shrink.data.imagefolder import FolderOptions

    expected = FolderOptions.from_preprocessing(record)
    differ = [k for k, v in typed_folder_options(args).items() if v != getattr(expected, k)]
    if differ:
        raise ShrinkError(f"the file's preprocessing record sets {', '.join(differ)} "
                          f"({', '.join(f'{k} {getattr(expected, k)}' for k in differ)}); leave those options out, "
                          "they are read from the file")


def load_data_for_onnx(path: str | Path, args: argparse.Namespace, split: str, **kwargs):
    """One split of `args.data`, read by the file's record (or by the typed options, sized to the
    file's input, when it has none)."""
    from shrink.data import load_data
    from shrink.data.arguments import folder_options

    from shrink.data.fits import check_data_task
    from shrink.onnxio.metadata import read_metadata
    from shrink.tasks import Task

    contract = read_contract(path)
    check_data_task(args.data, Task.parse(read_metadata(path).get("task", Task.CLASSIFICATION.value)))
    shape, record = contract.image_shape, contract.preprocessing
    options = folder_options(args, image_size=shape[1] if shape else None, channels=shape[0] if shape else None)
    if record is not None and options is not None:
        check_typed_options(args, record)
        options = None  # the record decides how the folder is read
    return load_data(args.data, split, data_dir=getattr(args, "data_dir", None), folder_options=options,
                     synthetic_shape=shape, preprocessing=record, **kwargs)
