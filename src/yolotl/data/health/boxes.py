"""Box checks on the records a reader returned: tiny boxes, exact and near duplicates, and boxes
whose area is far from the rest of their class (a hint of a wrong class label)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial

import numpy as np
import torch
from torchvision.ops import box_iou

from yolotl.data.findings import Finding
from yolotl.data.records import ImageRecord

__all__ = ["area_outliers", "box_findings"]

_DUPLICATE_DECIMALS = 3  # coordinates equal to 1/1000 px are the same box
_MIN_CLASS_BOXES = 20  # fewer boxes give no trustworthy median area
_ROBUST_Z = 5.0  # robust standard deviations of log-area that make a box an outlier


def box_findings(
    split: str,
    records: Sequence[ImageRecord],
    class_names: Sequence[str],
    tiny_box_px: float,
    near_duplicate_iou: float,
) -> list[Finding]:
    """Tiny boxes (a side under ``tiny_box_px`` original pixels), exact duplicates (same class and
    coordinates: every copy after the first) and near duplicates (same class, IoU >=
    ``near_duplicate_iou``, reported once per pair). A crowd region and an object box are never
    duplicates of each other."""
    findings = []
    for index, record in enumerate(records):
        file = str(record.label_file or record.image_path)
        name = partial(box_name, record, class_names=class_names)  # text built only when needed
        boxes = record.boxes
        sides = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        for j in np.flatnonzero(sides < tiny_box_px):
            findings.append(Finding(split, "tiny_box", file, f"{name(j)} is {_size(record, j)} px, "
                                    f"a side under {tiny_box_px:g} px", index, int(j)))
        copies = _exact_copies(record)
        for j, first in copies.items():
            findings.append(Finding(split, "duplicate_box", file,
                                    f"{name(j)} repeats box {first} exactly", index, j))
        for i, j, iou in _near_pairs(record, near_duplicate_iou, set(copies)):
            findings.append(Finding(split, "near_duplicate_box", file,
                                    f"{name(i)} and {name(j)}: IoU {iou:.2f}", index))
    return findings


def box_name(record: ImageRecord, j: int, class_names: Sequence[str]) -> str:
    """'box 3 (RBC [141, 363, 249, 471])': index, class and 0-based pixel corners."""
    label = int(record.labels[j])
    name = class_names[label] if 0 <= label < len(class_names) else str(label)
    return f"box {j} ({name} " + "[" + ", ".join(f"{v:g}" for v in record.boxes[j].round(1)) + "])"


def _size(record: ImageRecord, j: int) -> str:
    x1, y1, x2, y2 = record.boxes[j]
    return f"{x2 - x1:.3g}x{y2 - y1:.3g}"


def _exact_copies(record: ImageRecord) -> dict[int, int]:
    """{index of a copy: index of the first box it repeats} for same-class, same-coordinate boxes
    (both crowd regions or both objects)."""
    first: dict[tuple, int] = {}
    copies = {}
    rounded = record.boxes.round(_DUPLICATE_DECIMALS)
    for j, (box, label, crowd) in enumerate(zip(rounded, record.labels, record.crowd)):
        key = (int(label), bool(crowd), *box.tolist())
        if key in first:
            copies[j] = first[key]
        else:
            first[key] = j
    return copies


def _near_pairs(
    record: ImageRecord, threshold: float, copies: set[int]
) -> list[tuple[int, int, float]]:
    """(i, j, IoU) for i < j of the same class with IoU >= threshold, exact copies left out."""
    if record.num_objects < 2:
        return []
    boxes = torch.from_numpy(np.ascontiguousarray(record.boxes, dtype=np.float32))
    iou = box_iou(boxes, boxes).numpy()
    same_class = ((record.labels[:, None] == record.labels[None, :])
                  & (record.crowd[:, None] == record.crowd[None, :]))
    upper = np.triu(np.ones_like(same_class), k=1)
    pairs = np.argwhere(same_class & upper & (iou >= threshold))
    return [(int(i), int(j), float(iou[i, j])) for i, j in pairs
            if int(j) not in copies and int(i) not in copies]


def area_outliers(
    splits: Mapping[str, Sequence[ImageRecord]], class_names: Sequence[str], ratio: float
) -> list[Finding]:
    """Boxes whose area is far from their class's: at least ``ratio`` times the class median and
    5 robust standard deviations off in log-area (or as far below, not touching the image border:
    objects cut by the border are legitimately small).

    Medians pool every split; classes with under 20 boxes are not judged; COCO crowd regions are
    left out (a box around many objects says nothing of one's size). Both tests together
    keep classes with a wide spread of sizes (close-up and distant fish) quiet. Reported, kept:
    a wrong class label is the likely cause, but only a person looking at the image can tell.
    """
    boxes = [(s, i, j, r) for s, records in splits.items() for i, r in enumerate(records)
             for j in range(r.num_objects) if not r.crowd[j]]
    log_areas: dict[int, list[float]] = {}
    for _, _, j, record in boxes:
        log_areas.setdefault(int(record.labels[j]), []).append(np.log(_area(record, j)))
    spread = {c: _median_and_scale(v) for c, v in log_areas.items() if len(v) >= _MIN_CLASS_BOXES}
    findings = []
    for split, index, j, record in boxes:
        if int(record.labels[j]) not in spread:
            continue
        median, scale = spread[int(record.labels[j])]
        offset = np.log(_area(record, j)) - median
        far = abs(offset) >= max(np.log(ratio), _ROBUST_Z * scale)
        if far and (offset > 0 or not _touches_border(record, j)):
            name = box_name(record, j, class_names)
            file = str(record.label_file or record.image_path)
            detail = (f"{name} area {_area(record, j):.0f} px^2 is {np.exp(offset):.3g}x the class "
                      f"median {np.exp(median):.0f} px^2")
            findings.append(Finding(split, "box_area_outlier", file, detail, index))
    return findings


def _median_and_scale(values: list[float]) -> tuple[float, float]:
    """Median and robust standard deviation (1.4826 x median absolute deviation)."""
    array = np.asarray(values)
    median = float(np.median(array))
    return median, float(1.4826 * np.median(np.abs(array - median)))


def _area(record: ImageRecord, j: int) -> float:
    x1, y1, x2, y2 = record.boxes[j]
    return max(float((x2 - x1) * (y2 - y1)), 1e-6)


def _touches_border(record: ImageRecord, j: int, margin: float = 1.0) -> bool:
    x1, y1, x2, y2 = record.boxes[j]
    return bool(x1 <= margin or y1 <= margin or x2 >= record.width - margin
                or y2 >= record.height - margin)
