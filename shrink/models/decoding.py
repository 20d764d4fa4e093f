"""A detector's post-processing for an exported file: rebuilt from the architecture its metadata
names, because decoding (anchors, box coding, NMS) stays outside the graph, in fp32.

The anchors depend only on the architecture and the input size, never on the weights or on the
widths pruning left, so a freshly built model of the same architecture decodes a pruned file's
outputs exactly as the pruned PyTorch model does."""

from __future__ import annotations

from typing import Sequence

from shrink.errors import ShrinkError
from shrink.models.code import ModelCode
from shrink.models.registry import create_model
from shrink.models.spec import ModelSpec


def detection_decoder(architecture: str, num_classes: int, input_size: Sequence[int], code: ModelCode | None = None,
                      code_sha256: str | None = None):
    """`decode(outputs) -> [{boxes, scores, labels}, ...]` for an exported `architecture` detector.
    A detector of your own (`file.py:factory`) decodes by its own code: pass that file as `code`
    (checked against `code_sha256`, the code the file was exported from, when known)."""
    spec = ModelSpec(name=architecture, num_classes=num_classes, input_size=tuple(input_size), task="detection",
                     code_sha256=code_sha256)
    model = create_model(spec, code=code)
    if not hasattr(model, "decode"):
        raise ShrinkError(f"{architecture} has no box decoding: it is not a detector")
    return model.eval().decode


def onnx_detection_decoder(metadata: dict[str, str], session, code: ModelCode | None = None):
    """The decoder of an exported detector, from its metadata (architecture, output names) and its
    input and cls_logits shapes."""
    import json

    if "architecture" not in metadata:
        raise ShrinkError("the ONNX file does not name its detector architecture (metadata 'architecture'); "
                          "export it again with this version of shrink")
    names = json.loads(metadata.get("output_names", "[]"))
    outputs = {o.name: o.shape for o in session.get_outputs()}
    if "cls_logits" not in outputs or names != list(outputs):
        raise ShrinkError(f"the ONNX file's outputs {list(outputs)} are not the detector outputs its metadata lists "
                          f"({names})")
    num_classes = outputs["cls_logits"][-1]
    input_size = session.get_inputs()[0].shape[2:]
    if not all(isinstance(d, int) for d in (num_classes, *input_size)):
        raise ShrinkError(f"the ONNX file's input {input_size} and cls_logits classes ({num_classes}) must be fixed "
                          "sizes to rebuild its decoder; export it again with this version of shrink")
    return detection_decoder(metadata["architecture"], int(num_classes), [int(s) for s in input_size], code,
                             metadata.get("architecture_sha256"))
