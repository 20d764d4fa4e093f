"""Faster R-CNN as one graph of batch-wide tensor operations, with a dynamic batch axis.

torchvision's Faster R-CNN chooses its regions from the data: the RPN keeps a different number of
proposals per image, and its eval forward loops over the images in Python. Traced, that loop is
unrolled for the traced batch size, and the region stage cannot be cut off as a one-stage
detector's decoding is, because the second stage reads the regions the first one chose.

`TwoStageNet` keeps the region stage in the graph and writes it without a per-image loop:
- the anchors depend only on the input size: computed once, shared by every image;
- the RPN's filtering (top-n per level, clipping, small boxes, score threshold) is batch-wide; its
  NMS runs per image, as torchvision's does, in a scripted loop that exports as an ONNX Loop;
- each image's proposals, best first, are padded with empty (all-zero) boxes to a fixed count, so
  the outputs are fixed-shape per image; `decode` drops the padding;
- RoIAlign reads every image's regions at once (rois carry their image index).

The graph ends at the box head (class logits and box regression per proposal); the last step,
class-wise box decoding, score threshold and NMS, runs outside it in fp32 by torchvision's own
`postprocess_detections`, as a one-stage detector's decoding does. The RPN head's outputs are
graph outputs too: pruning must see every layer that reads the FPN, and parity checks them.

Proposals are ranked by their objectness logits, in a stable order (`best_first`): the same
order as torchvision's sigmoid scores, except where the sigmoid rounds to 1.0 or scores tie, which
torchvision leaves to chance and which PyTorch and onnxruntime would break differently.
`tests/models/test_two_stage.py` shows `decode(forward(x))` gives torchvision's own detections (to
float rounding: the box head also runs on the padding rows).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torchvision  # noqa: F401 - registers torch.ops.torchvision.nms, which the scripted loop calls

from shrink.models.dense import set_identity_transform

OUTPUT_NAMES = ("bbox_regression", "cls_logits", "proposals", "rpn_bbox_deltas", "rpn_objectness")


class TwoStageNet(nn.Module):
    """A torchvision Faster R-CNN with its eval forward as batch-wide tensor operations (see the
    module docstring). Inputs arrive resized and normalized by the data contract."""

    output_names = OUTPUT_NAMES
    class_activation = "softmax"  # Fast R-CNN's box classifier: softmax over the classes, background 0
    # Why training (fine-tuning, distillation) refuses it: the loop's one eval-style forward cannot
    # give Faster R-CNN's training losses, which sample regions against the targets inside forward.
    untrainable = ("Faster R-CNN cannot be fine-tuned or distilled by shrink: its training samples regions "
                   "against the targets inside the forward; recover it with bn-recal or reconstruction")
    # torch.export cannot trace the data-dependent region selection (NMS keeps a data-dependent
    # number of boxes); the TorchScript exporter can, as torchvision's own ONNX tests do.
    onnx_exporter = "torchscript"
    # Layers whose rows follow this model's own proposals: layer-wise reconstruction leaves them as
    # pruned, since the dense model's rows at the same positions describe other boxes.
    unaligned_layers = ("detector.roi_heads.",)

    def __init__(self, detector: nn.Module, input_size: tuple[int, int]) -> None:
        super().__init__()
        from torchvision.models.detection.image_list import ImageList

        set_identity_transform(detector, input_size)
        self.detector = detector
        self.input_size = tuple(input_size)
        training = detector.training
        detector.eval()
        with torch.no_grad():
            blank = torch.zeros(1, 3, *self.input_size, device=next(detector.parameters()).device)
            features = detector.backbone(blank)
            levels = list(features.values())
            anchors = detector.rpn.anchor_generator(ImageList(blank, [self.input_size]), levels)[0]
            per_level = [int(o[0].numel()) for o in detector.rpn.head(levels)[0]]
            # sets the pooler's scales and level mapper, which it otherwise sets on its first call
            detector.roi_heads.box_roi_pool(features, [torch.zeros(1, 4, device=blank.device)], [self.input_size])
        detector.train(training)
        self.anchors_per_level = per_level
        self.anchor_count = int(anchors.shape[0])
        # not persistent: derived from the architecture and input size, never part of the weights
        self.register_buffer("anchors", anchors, persistent=False)
        self.register_buffer("anchor_levels", torch.cat(
            [torch.full((n,), i, dtype=torch.int64) for i, n in enumerate(per_level)]), persistent=False)

    @property
    def proposals_per_image(self) -> int:
        return int(self.detector.rpn.post_nms_top_n())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        from torchvision.models.detection.rpn import concat_box_prediction_layers

        rpn, batch = self.detector.rpn, x.shape[0]
        features = self.detector.backbone(x)
        objectness, deltas = rpn.head(list(features.values()))
        objectness, deltas = concat_box_prediction_layers(objectness, deltas)  # (N*A, 1), (N*A, 4)
        anchors = self.anchors.repeat(batch, 1)
        decoded = rpn.box_coder.decode_single(deltas.detach(), anchors).view(batch, -1, 4)
        proposals = self._proposals(decoded, objectness.detach().view(batch, -1))
        class_logits, box_regression = self._box_head(features, proposals)
        per_image, classes = self.proposals_per_image, self.detector.roi_heads.box_predictor.cls_score.out_features
        # the class count written out, not -1: the file's cls_logits then has a fixed last axis,
        # from which its decoder learns the number of classes
        return (box_regression.view(batch, per_image, 4 * classes), class_logits.view(batch, per_image, classes), proposals,
                deltas.view(batch, self.anchor_count, 4), objectness.view(batch, self.anchor_count))

    def _proposals(self, boxes: torch.Tensor, objectness: torch.Tensor) -> torch.Tensor:
        """RegionProposalNetwork.filter_proposals for the whole batch at once: (N, P, 4), each
        image's proposals best first, then all-zero rows."""
        from torchvision.ops import boxes as box_ops

        rpn, batch = self.detector.rpn, boxes.shape[0]
        top = self._top_per_level(objectness)  # (N, T)
        image = torch.arange(batch, device=boxes.device)[:, None].expand_as(top)
        boxes = box_ops.clip_boxes_to_image(boxes[image, top], self.input_size)
        # ranked by the logits, thresholded by the probability: the same order as torchvision's
        # sigmoid scores, without the ties a saturated sigmoid (1.0 in float32) leaves to chance
        logits = objectness[image, top]
        level = self.anchor_levels[top]
        widths, heights = boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]
        kept = (widths >= rpn.min_size) & (heights >= rpn.min_size) & (torch.sigmoid(logits) >= rpn.score_thresh)
        return _nms_per_image(boxes, logits, level, kept, rpn.nms_thresh, self.proposals_per_image)

    def _top_per_level(self, objectness: torch.Tensor) -> torch.Tensor:
        """RegionProposalNetwork._get_top_n_idx: each level's pre_nms_top_n best anchors, best
        first. Sorted stably, so equal logits (a flat background gives many) keep anchor order in
        PyTorch and in onnxruntime alike; topk leaves their order to the implementation."""
        chosen, offset = [], 0
        for level in objectness.split(self.anchors_per_level, 1):
            chosen.append(best_first(level, min(self.detector.rpn.pre_nms_top_n(), level.shape[1])) + offset)
            offset += level.shape[1]
        return torch.cat(chosen, dim=1)

    def _box_head(self, features, proposals: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The second stage on every image's proposals at once: MultiScaleRoIAlign with each roi's
        image index, the box head and the predictor."""
        from torchvision.ops import roi_align

        heads = self.detector.roi_heads
        pool = heads.box_roi_pool
        batch, per_image = proposals.shape[:2]
        boxes = proposals.reshape(-1, 4)
        image = torch.arange(batch, device=boxes.device).repeat_interleave(per_image)
        rois = torch.cat([image[:, None].to(boxes.dtype), boxes], dim=1)
        levels = [features[name] for name in pool.featmap_names if name in features]
        which = pool.map_levels([boxes])
        pooled = boxes.new_zeros(rois.shape[0], levels[0].shape[1], *pool.output_size)  # shape[0]: traced, not fixed
        for level, (feature, scale) in enumerate(zip(levels, pool.scales)):
            idx = torch.where(which == level)[0]
            part = roi_align(feature, rois[idx], output_size=pool.output_size, spatial_scale=scale,
                             sampling_ratio=pool.sampling_ratio)
            pooled = pooled.index_put((idx,), part)
        return heads.box_predictor(heads.box_head(pooled))

    def decode(self, outputs: Sequence[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        """Boxes (xyxy, input pixels), scores and labels per image from the graph's outputs (torch
        or numpy), by torchvision's own `postprocess_detections`; padding rows are dropped."""
        named = {n: torch.as_tensor(o).float() for n, o in zip(self.output_names, outputs, strict=True)}
        proposals = named["proposals"]
        real = (proposals[..., 2] > proposals[..., 0]) & (proposals[..., 3] > proposals[..., 1])
        with torch.no_grad():
            boxes, scores, labels = self.detector.roi_heads.postprocess_detections(
                named["cls_logits"][real], named["bbox_regression"][real], [p[r] for p, r in zip(proposals, real)],
                [self.input_size] * len(proposals))
        return [{"boxes": b, "scores": s, "labels": l} for b, s, l in zip(boxes, scores, labels)]


def best_first(scores: torch.Tensor, k: int) -> torch.Tensor:
    """The indices of the `k` largest along the last axis, largest first, equal values in index
    order: a stable sort in PyTorch; in an exported graph ONNX TopK, whose specification breaks
    ties the same way (the exporters cannot write a stable sort)."""
    if torch.onnx.is_in_onnx_export():
        return scores.topk(k, dim=-1, largest=True, sorted=True)[1]
    return scores.sort(dim=-1, descending=True, stable=True)[1][..., :k]


@torch.jit._script_if_tracing
def _nms_per_image(boxes: torch.Tensor, scores: torch.Tensor, level: torch.Tensor, kept: torch.Tensor,
                   threshold: float, count: int) -> torch.Tensor:
    """Each image's kept boxes after NMS per level, best first, padded with zero rows to `count`:
    (N, count, 4). One image at a time, as torchvision does, so each image's NMS is torchvision's to
    the bit; scripted when traced, so the loop becomes an ONNX Loop over a dynamic batch."""
    out = []
    for i in range(boxes.shape[0]):
        mine = kept[i]
        image_boxes, image_scores, image_level = boxes[i][mine], scores[i][mine], level[i][mine]
        # batched_nms's coordinate trick, which torchvision itself takes on inputs this size; the
        # zero joined in gives an image without boxes a maximum (clipped boxes are never negative)
        largest = torch.cat([image_boxes.reshape(-1), image_boxes.new_zeros(1)]).max()
        offsets = image_level.to(image_boxes) * (largest + 1)
        # NMS visits the boxes by a rank from a stable sort, not by score: equal scores are then
        # visited in the same order by torchvision's kernel and by onnxruntime's
        # (best_first written out for TorchScript: a second scripted function in the same script was
        # once resolved with the other's signature when a process exported twice)
        if torch.jit.is_scripting():
            order = image_scores.topk(image_scores.shape[0], dim=-1, largest=True, sorted=True)[1]
        else:
            order = image_scores.sort(dim=-1, descending=True, stable=True)[1]
        rank = torch.empty_like(image_scores).index_put_((order,), -torch.arange(order.shape[0]).to(image_scores))
        keep = torch.ops.torchvision.nms(image_boxes + offsets[:, None], rank, threshold).long()
        chosen = image_boxes[keep][:count]
        out.append(torch.cat([chosen, chosen.new_zeros(count - chosen.shape[0], 4)]))
    return torch.stack(out)
