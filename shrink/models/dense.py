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
from typing import TYPE_CHECKING, Mapping, Sequence

import torch
import torch.nn as nn

if TYPE_CHECKING:
    from torchvision.models.detection.image_list import ImageList

SEGMENTATION_OUTPUT = "logits"
# torchvision detectors whose heads return fixed-shape tensors (one-stage); a two-stage detector
# chooses its regions from the data: Faster R-CNN is wrapped by shrink.models.two_stage instead.
ONE_STAGE = ("ssd", "ssdlite", "retinanet", "fcos")
TWO_STAGE = ("fasterrcnn",)


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
        set_identity_transform(detector, input_size)
        self.detector = detector
        self.input_size = tuple(input_size)
        # (H, W) of each feature map, all the anchors depend on (pruning changes widths, never these)
        self.level_sizes, self.output_names = self._probe(self._sizes_and_names)

    def _sizes_and_names(self, x: torch.Tensor) -> tuple[tuple[tuple[int, int], ...], tuple[str, ...]]:
        features = self._features(x)
        return tuple(tuple(f.shape[-2:]) for f in features), tuple(sorted(self._head_outputs(features)))

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = self.detector.backbone(x)
        if isinstance(features, torch.Tensor):
            features = OrderedDict([("0", features)])
        return list(features.values())

    def _head_outputs(self, features: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.detector.head(features)

    @property
    def class_activation(self) -> str:
        """How cls_logits become scores: "softmax" over the classes, background (0) among them
        (SSD, trained by cross-entropy), or "sigmoid" per class (RetinaNet and FCOS, focal loss)."""
        return "softmax" if type(self.detector).__name__ == "SSD" else "sigmoid"

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        head = self._head_outputs(self._features(x))
        return tuple(head[name] for name in self.output_names)

    def decode(self, outputs: Sequence[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        """Boxes (xyxy, input pixels), scores and labels per image, from the graph's outputs (torch
        or numpy, as ONNX returns them), by torchvision's own decoding and NMS."""
        head = {name: torch.as_tensor(o).float() for name, o in zip(self.output_names, outputs, strict=True)}
        some = next(iter(head.values()))
        detector = self.detector  # post-processing is the same in either mode: the mode is left as it is
        with torch.no_grad():
            anchors, images = self._anchors(some.shape[0], some.device)
            if type(detector).__name__ == "SSD":
                return detector.postprocess_detections(head, anchors, images.image_sizes)
            per_level = self._anchors_per_level(head)
            split_head = {k: list(v.split(per_level, dim=1)) for k, v in head.items()}
            split_anchors = [list(a.split(per_level)) for a in anchors]
            return detector.postprocess_detections(split_head, split_anchors, images.image_sizes)

    def loss_from_outputs(self, outputs: Sequence[torch.Tensor] | Mapping[str, torch.Tensor],
                          targets: list[dict[str, torch.Tensor]]) -> torch.Tensor:
        """The detector's own training loss (the sum of its terms, as `loss` returns) from head
        outputs this model's forward already produced, so a training loop runs one forward: the
        tail of torchvision's training forward (anchors, SSD's matching, `compute_loss`) without
        the backbone and heads. `targets`: boxes xyxy in input pixels and labels from 1, per image."""
        if not isinstance(outputs, Mapping):
            outputs = dict(zip(self.output_names, outputs, strict=True))
        head = {name: outputs[name].float() for name in self.output_names}
        some = next(iter(head.values()))
        anchors, _ = self._anchors(some.shape[0], some.device)
        detector, kind = self.detector, type(self.detector).__name__
        if kind == "SSD":
            losses = detector.compute_loss(targets, head, anchors, self._ssd_matches(targets, anchors))
        elif kind == "RetinaNet":  # matches inside compute_loss
            losses = detector.compute_loss(targets, head, anchors)
        else:  # FCOS: one anchor point per position, matched inside compute_loss by level
            losses = detector.compute_loss(targets, head, anchors, [h * w for h, w in self.level_sizes])
        return sum(losses.values())

    def _ssd_matches(self, targets: list[dict[str, torch.Tensor]], anchors: list[torch.Tensor]) -> list[torch.Tensor]:
        """SSD.forward's matching of each image's boxes to its default boxes (-1: background)."""
        from torchvision.ops import boxes as box_ops

        matched = []
        for anchors_per_image, targets_per_image in zip(anchors, targets):
            if targets_per_image["boxes"].numel() == 0:
                matched.append(torch.full((anchors_per_image.size(0),), -1, dtype=torch.int64,
                                          device=anchors_per_image.device))
                continue
            quality = box_ops.box_iou(targets_per_image["boxes"], anchors_per_image)
            matched.append(self.detector.proposal_matcher(quality))
        return matched

    def _anchors(self, batch: int, device: torch.device) -> tuple[list[torch.Tensor], "ImageList"]:
        """The detector's anchors (float32) for a batch at input_size, and the ImageList they were
        made for: the generators read only the sizes of the images and feature maps, so blank
        zero-stride tensors stand in for both."""
        from torchvision.models.detection.image_list import ImageList

        blank = torch.zeros((), device=device)
        images = ImageList(blank.expand(batch, 3, *self.input_size), [self.input_size] * batch)
        features = [blank.expand(1, 1, *size) for size in self.level_sizes]
        return self.detector.anchor_generator(images, features), images

    def _anchors_per_level(self, head: Mapping[str, torch.Tensor]) -> list[int]:
        """How many of the head's rows each feature level holds (positions x anchors per position)."""
        positions = [h * w for h, w in self.level_sizes]
        per_position = head["cls_logits"].shape[1] // sum(positions)
        return [n * per_position for n in positions]

    def _probe(self, run):
        """`run` on one blank image in eval mode (a batch of one cannot pass BN in training)."""
        training = self.detector.training
        self.detector.eval()
        device = next(self.detector.parameters()).device
        try:
            with torch.no_grad():
                return run(torch.zeros(1, 3, *self.input_size, device=device))
        finally:
            self.detector.train(training)

    def loss(self, x: torch.Tensor, targets: list[dict[str, torch.Tensor]]) -> torch.Tensor:
        """The detector's own training loss (matching, focal/box losses) on a normalized batch."""
        self.detector.train()
        losses = self.detector(list(x), targets)
        return sum(losses.values())


def set_identity_transform(detector: nn.Module, input_size: tuple[int, int]) -> None:
    """Make a torchvision detector's own transform the identity on images already at input_size
    and normalized by the data contract (mean 0, std 1, no resize; training skips its resize too)."""
    from torchvision.models.detection.transform import GeneralizedRCNNTransform

    detector.transform = GeneralizedRCNNTransform(
        min(input_size), max(input_size), [0.0, 0.0, 0.0], [1.0, 1.0, 1.0],
        size_divisible=1, fixed_size=tuple(input_size), _skip_resize=True)


def one_stage(names: list[str]) -> list[str]:
    """The torchvision detection names this module can cut after their heads."""
    return [n for n in names if n.startswith(ONE_STAGE)]


def two_stage(names: list[str]) -> list[str]:
    """The torchvision detection names shrink.models.two_stage wraps."""
    return [n for n in names if n.startswith(TWO_STAGE)]


def output_names(model: nn.Module) -> tuple[str, ...] | None:
    """The names of a dense model's outputs; None for a classifier's one logits tensor."""
    return getattr(model, "output_names", None)
