"""COCO JSON files any external tool can score: ground truth and detection results.

Ids follow COCO's conventions so that ``pycocotools`` reads the files as they are: image ids are
1-based positions in the evaluated split; category ids are ``label + 1`` with the class names as
category names; boxes are ``[x, y, width, height]`` in original-image pixels. Ground truth a target
flags ``iscrowd`` (COCO crowd regions, VOC difficult objects) is written with ``"iscrowd": 1``, so
COCOeval ignores it as yolotl's metrics do.

With instance masks (``segmentation``: RLE dicts, see :mod:`yolotl.evaluation.mask_rle`) both files
carry them, so the same pair is scored with ``COCOeval(..., "segm")``; a ground-truth object's
``area`` is then its mask's pixel count (COCO's convention, which COCOeval's small / medium / large
ranges use for boxes too; yolotl's box figures use box areas there).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torchvision.ops import box_convert

from yolotl.evaluation.mask_rle import mask_areas
from yolotl.evaluation.matching import crowd_flags


def coco_ground_truth(
    targets: Sequence[dict[str, Any]],
    image_paths: Sequence[str | Path],
    image_sizes: Sequence[tuple[int, int]],
    class_names: Sequence[str],
) -> dict[str, Any]:
    """A COCO ground-truth dict; ``image_sizes`` are ``(height, width)`` of the decoded images."""
    images, annotations = [], []
    for index, (target, path, (height, width)) in enumerate(zip(targets, image_paths, image_sizes), start=1):
        images.append({"id": index, "file_name": str(path), "height": int(height), "width": int(width)})
        segments = target.get("segmentation")
        objects = zip(_xywh(target["boxes"]), target["labels"].tolist(), crowd_flags(target).tolist())
        for j, (box, label, crowd) in enumerate(objects):
            annotation = {
                "id": len(annotations) + 1,
                "image_id": index,
                "category_id": int(label) + 1,
                "bbox": box,
                "area": box[2] * box[3],
                "iscrowd": int(crowd),
            }
            if segments is not None:
                annotation["segmentation"] = segments[j]
                annotation["area"] = mask_areas([segments[j]])[0]
            annotations.append(annotation)
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(class_names)]
    return {"images": images, "annotations": annotations, "categories": categories}


def coco_results(predictions: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """COCO detection results (``loadRes`` format) for per-image predictions in original pixels, with
    each detection's RLE ``segmentation`` where the predictions carry masks."""
    results = []
    for index, pred in enumerate(predictions, start=1):
        segments = pred.get("segmentation")
        rows = zip(_xywh(pred["boxes"]), pred["scores"].tolist(), pred["labels"].tolist())
        for j, (box, score, label) in enumerate(rows):
            result = {"image_id": index, "category_id": int(label) + 1, "bbox": box, "score": float(score)}
            if segments is not None:
                result["segmentation"] = segments[j]
            results.append(result)
    return results


def write_json(data: Any, path: str | Path) -> Path:
    """Write ``data`` as compact JSON (results files get large) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, separators=(",", ":")))
    return path


def _xywh(boxes: torch.Tensor) -> list[list[float]]:
    return box_convert(boxes.detach().cpu().double().reshape(-1, 4), "xyxy", "xywh").tolist()
