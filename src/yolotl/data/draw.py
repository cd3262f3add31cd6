"""Drawing boxes (and instance masks) onto images (OpenCV): the augmentation grid's ground truth and
what ``yolotl-predict`` saves for a user to look at."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch

__all__ = ["class_color", "draw_detections"]

# A qualitative palette (RGB) that stays readable on photos; classes cycle through it.
_PALETTE = [
    (230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128),
]  # fmt: skip


def class_color(label: int) -> tuple[int, int, int]:
    """The RGB colour of a class id."""
    return _PALETTE[int(label) % len(_PALETTE)]


def draw_detections(
    image: np.ndarray, detections: dict[str, torch.Tensor], class_names: Sequence[str]
) -> np.ndarray:
    """A copy of ``image`` (HWC uint8 RGB) with each box, class name and score drawn on it.

    ``detections`` holds ``boxes`` and ``labels``; without ``scores`` (ground truth, augmented
    training samples) only the class name is written; with ``track_ids`` (tracking) each label starts
    with ``#<id>``. ``masks`` (``[K, H, W]``, the image's size),
    where given, are filled in their class colour, half transparent, under the boxes.
    """
    canvas = np.ascontiguousarray(image.copy())
    if "masks" in detections and len(detections["masks"]):
        _fill_masks(canvas, detections["masks"], detections["labels"])
    thickness = max(1, round(max(canvas.shape[:2]) / 400))
    font_scale = max(0.4, max(canvas.shape[:2]) / 1200)
    boxes = detections["boxes"].detach().cpu().round().int().tolist()
    labels = detections["labels"].detach().cpu().tolist()
    scores = detections["scores"].detach().cpu().tolist() if "scores" in detections else [None] * len(labels)
    tracks = detections["track_ids"].detach().cpu().tolist() if "track_ids" in detections else [None] * len(labels)
    for (x1, y1, x2, y2), score, label, track in zip(boxes, scores, labels, tracks):
        color = class_color(label)
        name = class_names[label] if 0 <= label < len(class_names) else str(label)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), color, thickness, cv2.LINE_AA)
        text = name if score is None else f"{name} {score:.2f}"
        if track is not None:
            text = f"#{track} {text}"
        (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
        top = max(0, y1 - h - base - 2)
        cv2.rectangle(canvas, (x1, top), (x1 + w + 2, top + h + base + 2), color, -1)
        cv2.putText(canvas, text, (x1 + 1, top + h + 1), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (255, 255, 255), 1,
                    cv2.LINE_AA)
    return canvas


def _fill_masks(canvas: np.ndarray, masks: torch.Tensor, labels: torch.Tensor, alpha: float = 0.45) -> None:
    """Blend each mask's class colour into ``canvas`` (in place), the lowest-ranked first."""
    masks = masks.detach().cpu().bool().numpy()
    if masks.shape[1:] != canvas.shape[:2]:
        raise ValueError(f"masks {masks.shape[1:]} are not the image's size {canvas.shape[:2]}")
    for mask, label in reversed(list(zip(masks, labels.detach().cpu().tolist()))):
        color = np.array(class_color(label), dtype=np.float32)
        canvas[mask] = (canvas[mask] * (1 - alpha) + color * alpha).astype(np.uint8)
