"""Segment checks on the records a reader returned (instance segmentation data only): outlines that
are no shape, lie outside their image, cross themselves, do not fit their image's size or
disagree with their box.

Each finding names the object (``index``, ``box``), so ``policy="fix"`` drops or skips what its
catalogue action says and ``policy="strict"`` stops on it. The mask's own box is what trains: the
dataset derives every target box of a segmentation sample from its mask after augmentation, so a
``box_mask_mismatch`` is reported and the annotated box is not used.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torchvision.ops import box_iou

from yolotl.data.findings import Finding
from yolotl.data.health.boxes import box_name
from yolotl.data.records import ImageRecord
from yolotl.data.segments import Segment, polygon_area, self_intersects

__all__ = ["BOX_MASK_MIN_IOU", "mask_findings"]

BOX_MASK_MIN_IOU = 0.5  # an annotated box overlapping its mask's box less than this disagrees
_OUTSIDE_TOLERANCE = 1e-2  # px outside the image that are rounding noise (as for boxes)
_ZERO_AREA = 1e-6  # px^2: a polygon this small encloses nothing


def mask_findings(split: str, records: Sequence[ImageRecord],
                  class_names: Sequence[str]) -> list[Finding]:
    """Findings about the segments of ``records`` (none when no record of the split has any).

    Per object, the first of: no segment (``missing_segment``, its box is its mask); an RLE sized
    unlike its image (``rle_size_mismatch``, image skipped); a polygon under 3 points
    (``polygon_too_few_points``) or a zero-area outline (``zero_area_segment``); polygons wholly
    outside the image (``polygon_outside_image``), all three dropping the object. Then, reported
    each: polygons reaching outside the image (``clipped_polygon``: clipped when rasterised), a
    self-crossing polygon (``self_intersecting_polygon``, kept) and a box whose IoU with the
    mask's box is under :data:`BOX_MASK_MIN_IOU` (``box_mask_mismatch``)."""
    if all(record.segments is None for record in records):
        return []
    findings = []
    for index, record in enumerate(records):
        file = str(record.label_file or record.image_path)
        segments = record.segments or (None,) * record.num_objects
        for j, segment in enumerate(segments):
            for kind, detail in _object_problems(record, j, segment):
                findings.append(Finding(split, kind, file,
                                        f"{box_name(record, j, class_names)}: {detail}", index, j))
    return findings


def _object_problems(record: ImageRecord, j: int, segment: Segment | None) -> list[tuple[str, str]]:
    """(kind, detail) of each problem of object ``j`` (its segment ``segment``)."""
    if segment is None:
        return [("missing_segment", "no polygon or RLE; its box is used as its mask")]
    size = [record.height, record.width]
    if segment.rle is not None and list(segment.rle["size"]) != size:
        return [("rle_size_mismatch", f"RLE size {list(segment.rle['size'])} (h, w) but the "
                 f"image is {size}")]
    short = [len(p) for p in segment.polygons if len(p) < 3]
    if short:
        return [("polygon_too_few_points", f"a polygon has {short[0]} point(s); a shape needs 3")]
    if (segment.rle is not None and segment.area() == 0) or any(
            polygon_area(p) < _ZERO_AREA for p in segment.polygons):
        return [("zero_area_segment", "the outline encloses no area")]
    bbox = segment.bbox()
    bounds = np.array([record.width, record.height] * 2, dtype=np.float64)
    clipped = np.clip(bbox, 0, bounds)
    if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
        return [("polygon_outside_image", f"its outline {_fmt(bbox)} lies wholly outside the "
                 f"{record.width}x{record.height} image")]
    problems = []
    if np.abs(clipped - bbox).max() > _OUTSIDE_TOLERANCE:
        problems.append(("clipped_polygon", f"its outline {_fmt(bbox)} reaches outside the "
                         f"{record.width}x{record.height} image; clipped when rasterised"))
    if any(self_intersects(p) for p in segment.polygons):
        problems.append(("self_intersecting_polygon", "a polygon crosses itself"))
    iou = float(box_iou(torch.from_numpy(clipped[None]),
                        torch.from_numpy(record.boxes[j:j + 1].astype(np.float64)))[0, 0])
    if iou < BOX_MASK_MIN_IOU:
        problems.append(("box_mask_mismatch", f"IoU {iou:.2f} with its mask's box {_fmt(clipped)} "
                         f"(under {BOX_MASK_MIN_IOU:g}); the mask's box is used"))
    return problems


def _fmt(box: np.ndarray) -> str:
    return "[" + ", ".join(f"{v:.1f}" for v in box) + "]"
