"""From decoded predictions to the torchvision detection contract: ``list[dict(boxes, scores, labels)]``.

Boxes are ``xyxy``; in input pixels until :func:`scale_boxes_to_original` maps them back to
the original image.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torchvision.ops import batched_nms
from torchvision.ops import nms as torchvision_nms

from yolotl.ops.boxes import decode_boxes, flatten_levels, make_anchor_points


def decode_predictions(
    box_maps: Sequence[Tensor], cls_maps: Sequence[Tensor], strides: Sequence[int]
) -> tuple[Tensor, Tensor]:
    """Raw head maps -> boxes ``[B, A, 4]`` xyxy input pixels, class probabilities ``[B, A, C]``."""
    box_logits, cls_logits = flatten_levels(box_maps, cls_maps)  # [B, A, 4, R], [B, A, C]
    sizes = [tuple(m.shape[-2:]) for m in box_maps]
    points, stride_tensor = make_anchor_points(sizes, strides, device=box_logits.device, dtype=box_logits.dtype)
    return decode_boxes(box_logits, points, stride_tensor), cls_logits.sigmoid()


def postprocess(
    boxes: Tensor,
    scores: Tensor,
    score_threshold: float = 0.001,
    iou_threshold: float = 0.6,
    max_detections: int = 300,
    max_candidates: int = 10000,
    class_agnostic: bool = False,
    classes: Sequence[int] | None = None,
    coefficients: Tensor | None = None,
    nms: bool = True,
) -> list[dict[str, Tensor]]:
    """Score filter + NMS per image (``nms=False``, for an NMS-free head: the score filter and the caps only).

    Every (anchor, class) pair with a probability above ``score_threshold`` is a candidate
    (multi-label: one anchor may give boxes of several classes); the ``max_candidates`` best
    go through NMS (per class with :func:`torchvision.ops.batched_nms`, or across classes
    when ``class_agnostic``); the ``max_detections`` best survivors are returned. ``classes`` (ids)
    keeps only those classes, before NMS and the caps, so other classes neither suppress nor crowd
    them out.

    Args:
        boxes: ``[B, A, 4]`` xyxy. scores: ``[B, A, C]`` probabilities.
        coefficients: ``[B, A, P]`` mask coefficients of a segmenting head: each kept detection's
            come back as ``coefficients`` ``[K, P]`` (see :func:`yolotl.ops.masks.process_masks`).

    Returns:
        Per image ``dict(boxes=float[K, 4], scores=float[K], labels=int64[K])`` sorted by
        decreasing score, on the input's device.
    """
    if boxes.shape[:2] != scores.shape[:2]:
        raise ValueError(f"boxes {tuple(boxes.shape)} and scores {tuple(scores.shape)} disagree on [B, A]")
    if classes is not None:
        wanted = torch.zeros(scores.shape[-1], dtype=torch.bool, device=scores.device)
        wanted[torch.as_tensor(list(classes), dtype=torch.long, device=scores.device)] = True
        scores = scores * wanted
    detections = []
    for image, (image_boxes, image_scores) in enumerate(zip(boxes, scores)):
        det, anchors = _postprocess_image(
            image_boxes,
            image_scores,
            score_threshold,
            iou_threshold,
            max_detections,
            max_candidates,
            class_agnostic,
            nms,
        )
        if coefficients is not None:
            det["coefficients"] = coefficients[image, anchors]
        detections.append(det)
    return detections


def _postprocess_image(
    boxes: Tensor,
    scores: Tensor,
    score_threshold: float,
    iou_threshold: float,
    max_detections: int,
    max_candidates: int,
    class_agnostic: bool,
    nms: bool = True,
) -> tuple[dict[str, Tensor], Tensor]:
    """One image: boxes ``[A, 4]``, scores ``[A, C]`` -> detections dict and the detections' anchor indices."""
    anchor_index, labels = (scores > score_threshold).nonzero(as_tuple=True)  # [K] each
    candidate_scores = scores[anchor_index, labels]  # [K]
    if candidate_scores.numel() > max_candidates:
        candidate_scores, top = candidate_scores.topk(max_candidates)
        anchor_index, labels = anchor_index[top], labels[top]
    candidate_boxes = boxes[anchor_index].float()  # [K, 4]
    candidate_scores = candidate_scores.float()
    if not nms:
        keep = candidate_scores.argsort(descending=True)
    elif class_agnostic:
        keep = torchvision_nms(candidate_boxes, candidate_scores, iou_threshold)
    else:
        keep = batched_nms(candidate_boxes, candidate_scores, labels, iou_threshold)
    keep = keep[:max_detections]  # NMS returns indices sorted by decreasing score
    det = {"boxes": candidate_boxes[keep], "scores": candidate_scores[keep], "labels": labels[keep].long()}
    return det, anchor_index[keep]


def scale_boxes_to_original(
    boxes: Tensor, scale: float, pad: tuple[float, float], orig_size: tuple[int, int]
) -> Tensor:
    """Undo a letterbox: ``[K, 4]`` xyxy input pixels -> original pixels, clipped to the image.

    The letterbox mapped an original point ``p`` to ``p * scale + pad``.

    Args:
        boxes: ``[K, 4]`` xyxy in network-input pixels.
        scale: resize factor original -> input.
        pad: ``(pad_x, pad_y)`` pixels added on the left and top.
        orig_size: ``(height, width)`` of the original image.
    """
    pad_x, pad_y = pad
    height, width = orig_size
    offset = boxes.new_tensor([pad_x, pad_y, pad_x, pad_y])
    original = (boxes - offset) / scale
    upper = boxes.new_tensor([width, height, width, height])
    return torch.minimum(original.clamp(min=0), upper)
