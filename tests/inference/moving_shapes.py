"""A short video of the synthetic data's shapes moving on known paths: the ground truth for tracking tests.

The shapes, background and colours come from the synthetic dataset's own drawing code
(:mod:`yolotl.data.synthetic`) at the 128 px scale the ``trained_run`` fixture trained on, so its
detector finds them; each object keeps its class, size and rotation and moves in a straight line
across the frame, on a lane of its own (no crossings: an id switch is the tracker's, not an occlusion).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from yolotl.data.synthetic import _background, _contrasting_colour, _fill, _shape_outline

SIZE = 128
# (class id, lane centre y, x at the start, x at the end): circle, square, triangle
LANES = ((0, 24.0, 20.0, 100.0), (1, 64.0, 104.0, 28.0), (2, 104.0, 24.0, 96.0))
EXTENT = 30.0  # px across, mid-range of the 10..45 px the 128 px synthetic set draws


@dataclass(frozen=True)
class MovingShapes:
    path: Path
    frames: int
    fps: float
    boxes: np.ndarray  # [frames, objects, 4] xyxy ground truth
    labels: tuple[int, ...]  # class id per object


def write_moving_shapes(path: Path, frames: int = 30, fps: float = 10.0, seed: int = 0, fourcc: str = "mp4v",
                        size: tuple[int, int] = (SIZE, SIZE)) -> MovingShapes:
    """Write the video (OpenCV, ``fourcc``) and return its per-frame ground truth boxes."""
    rng = np.random.default_rng(seed)
    width, height = size
    background = cv2.resize(_background(rng, SIZE), (width, height)) if size != (SIZE, SIZE) else _background(rng, SIZE)
    outlines = [_shape_outline(rng, class_id, EXTENT) for class_id, *_ in LANES]
    colours = [_contrasting_colour(rng, background, np.array([0, y - 20, width - 1, y + 20])) for _, y, *_ in LANES]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
    assert writer.isOpened(), f"OpenCV cannot write {path} with {fourcc}"
    boxes = np.zeros((frames, len(LANES), 4), np.float32)
    for index in range(frames):
        image = background.copy()
        step = index / max(1, frames - 1)
        for k, ((_, y, x0, x1), outline, colour) in enumerate(zip(LANES, outlines, colours)):
            placed = outline + np.array([x0 + (x1 - x0) * step, y])
            _fill(image, placed, colour)
            boxes[index, k] = np.concatenate([placed.min(axis=0), placed.max(axis=0)])
        writer.write(image)
    writer.release()
    return MovingShapes(path, frames, fps, boxes, tuple(class_id for class_id, *_ in LANES))


def id_switches(truth: np.ndarray, frames: list[dict], min_iou: float = 0.5) -> tuple[int, float]:
    """(id switches, share of ground-truth boxes matched): each true object is matched per frame to the
    tracked box of highest IoU (>= ``min_iou``); a switch is a matched id differing from that object's
    previous matched id (the CLEAR-MOT count, for objects that never cross)."""
    switches, matched, last = 0, 0, [None] * truth.shape[1]
    for boxes, record in zip(truth, frames):
        found = [(np.array(d["box"]), d.get("track_id")) for d in record["detections"]]
        for k, box in enumerate(boxes):
            ious = [(_iou(box, other), track) for other, track in found]
            best = max(ious, default=(0.0, None), key=lambda item: item[0])
            if best[0] < min_iou or best[1] is None:
                continue
            matched += 1
            if last[k] is not None and best[1] != last[k]:
                switches += 1
            last[k] = best[1]
    return switches, matched / truth[:, :, 0].size


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0, None).prod()
    union = (a[2:] - a[:2]).prod() + (b[2:] - b[:2]).prod() - inter
    return float(inter / union) if union > 0 else 0.0


class StubDetector:
    """yolotl's ``predict()`` contract with no network (fast, for pipeline tests): in each frame, one box
    around the pixels whose green level is above 128, scored 0.9, class ``b``."""

    class_names = ["a", "b"]
    image_size = 64

    def predict(self, images, score_threshold=0.25, iou_threshold=0.6, max_detections=300, classes=None,
                batch_size=16):
        import torch

        results = []
        for image in images:
            ys, xs = np.nonzero(image[:, :, 1] > 128)
            if len(xs):
                boxes = torch.tensor([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], dtype=torch.float32)
            else:
                boxes = torch.zeros((0, 4))
            results.append({"boxes": boxes, "scores": torch.full((len(boxes),), 0.9),
                            "labels": torch.ones(len(boxes), dtype=torch.int64)})
        return results


def write_moving_square(path: Path, frames: int, size: tuple[int, int] = (96, 64), fps: float = 25.0) -> None:
    """A green square (what :class:`StubDetector` finds) crossing a noisy dark frame, written as MJPG."""
    width, height = size
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 60, (height, width, 3), dtype=np.uint8)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    for index in range(frames):
        image = noise.copy()
        x = int((width - 16) * (index % 50) / 50)
        image[height // 2 - 8 : height // 2 + 8, x : x + 16] = (0, 255, 0)
        writer.write(image)
    writer.release()
