"""Segmenters and detectors as graphs of plain tensors: what prune, export and bench see.

torchvision's dense-prediction models return dicts, and its detectors resize, normalize, decode
boxes and run NMS inside `forward`. None of that belongs in a pruned, exported graph:
- `SegmentationNet` returns the per-pixel logits (N, K, H, W), the model's "out".
- `DetectionNet` returns the raw outputs of the detector's heads, one tensor per output, in
  `output_names` order (for SSDlite: bbox_regression (N, A, 4) and cls_logits (N, A, K)).
  Decoding against the anchors and NMS run outside the graph, in fp32, in `decode`, which calls
  torchvision's own post-processing for that architecture: the reference implementation of
  whoever deploys the ONNX file.

Inputs arrive resized and normalized by the data contract, as for a classifier, so the detector's
own transform is made the identity (mean 0, std 1, no resize).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch
import torch.nn as nn

SEGMENTATION_OUTPUT = "logits"
# torchvision detectors whose heads return fixed-shape tensors (one-stage); a two-stage detector
# (Faster R-CNN) chooses its regions from the data, so its graph is not a fixed set of tensors.
ONE_STAGE = ("ssd", "ssdlite", "retinanet", "fcos")


class SegmentationNet(nn.Module):
    """A torchvision segmentation model that returns its "out" logits, not a dict."""

    output_names = (SEGMENTATION_OUTPUT,)

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)["out"]


class DetectionNet(nn.Module):
    """A one-stage torchvision detector cut after its heads (see the module docstring)."""

    def __init__(self, detector: nn.Module, input_size: tuple[int, int]) -> None:
        super().__init__()
        from torchvision.models.detection.transform import GeneralizedRCNNTransform

        # The identity on images already at input_size and normalized; training skips its resize too.
        detector.transform = GeneralizedRCNNTransform(
            min(input_size), max(input_size), [0.0, 0.0, 0.0], [1.0, 1.0, 1.0],
            size_divisible=1, fixed_size=tuple(input_size), _skip_resize=True)
        self.detector = detector
        self.input_size = tuple(input_size)
        self.output_names = tuple(sorted(self._probe(lambda x: self._head_outputs(self._features(x)))))

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = self.detector.backbone(x)
        if isinstance(features, torch.Tensor):
            features = OrderedDict([("0", features)])
        return list(features.values())

    def _head_outputs(self, features: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.detector.head(features)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        head = self._head_outputs(self._features(x))
        return tuple(head[name] for name in self.output_names)

    def decode(self, outputs: Sequence[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        """Boxes (xyxy, input pixels), scores and labels per image, from the graph's outputs (torch
        or numpy, as ONNX returns them), by torchvision's own decoding and NMS."""
        from torchvision.models.detection.image_list import ImageList

        head = {name: torch.as_tensor(o).float() for name, o in zip(self.output_names, outputs, strict=True)}
        batch = next(iter(head.values())).shape[0]
        shapes = self._feature_shapes()
        features = [torch.zeros(batch, *shape) for shape in shapes]  # the anchors need only their sizes
        images = ImageList(torch.zeros(batch, 3, *self.input_size), [self.input_size] * batch)
        detector = self.detector.eval()
        with torch.no_grad():
            anchors = detector.anchor_generator(images, features)
            if type(detector).__name__ == "SSD":
                return detector.postprocess_detections(head, anchors, images.image_sizes)
            per_level = [s[-2] * s[-1] for s in shapes]
            if type(detector).__name__ == "RetinaNet":
                per_level = [n * (head["cls_logits"].shape[1] // sum(per_level)) for n in per_level]
            split_head = {k: list(v.split(per_level, dim=1)) for k, v in head.items()}
            split_anchors = [list(a.split(per_level)) for a in anchors]
            return detector.postprocess_detections(split_head, split_anchors, images.image_sizes)

    def _feature_shapes(self) -> list[tuple[int, ...]]:
        """(C, H, W) of each feature map at input_size (widths as pruned: read from this model)."""
        return [tuple(f.shape[1:]) for f in self._probe(self._features)]

    def _probe(self, run):
        """`run` on one blank image in eval mode (a batch of one cannot pass BN in training)."""
        training = self.detector.training
        self.detector.eval()
        try:
            with torch.no_grad():
                return run(torch.zeros(1, 3, *self.input_size))
        finally:
            self.detector.train(training)

    def loss(self, x: torch.Tensor, targets: list[dict[str, torch.Tensor]]) -> torch.Tensor:
        """The detector's own training loss (matching, focal/box losses) on a normalized batch."""
        self.detector.train()
        losses = self.detector(list(x), targets)
        return sum(losses.values())


def one_stage(names: list[str]) -> list[str]:
    """The torchvision detection names this module can cut after their heads."""
    return [n for n in names if n.startswith(ONE_STAGE)]


def output_names(model: nn.Module) -> tuple[str, ...] | None:
    """The names of a dense model's outputs; None for a classifier's one logits tensor."""
    return getattr(model, "output_names", None)
