"""Reader for COCO detection JSON (``instances_<split>.json``, Roboflow ``_annotations.coco.json``).

Category ids may have gaps: sorted ids map to contiguous labels ``0..K-1``. Roboflow exports
add an unused parent category (the supercategory of all others, with no annotations); it is
dropped and logged. ``bbox`` is ``[x, y, w, h]`` in absolute 0-based pixels.

Per-file problems in one big JSON are counted skips, not errors: an image listed but missing on
disk, an annotation of an unknown image, and ``iscrowd=1`` annotations are skipped and logged.
If *no* listed image can be found the split raises DatasetError listing the folders tried.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from yolotl.data.formats._common import (
    SplitNotFoundError,
    check_class_names,
    check_root,
    image_size,
    require_images,
    sanitize_boxes,
    split_aliases,
)
from yolotl.data.records import DatasetSplit, DefectLog, ImageRecord
from yolotl.errors import DatasetError

__all__ = ["read_coco_split"]

_PROBE = 20  # images checked per candidate folder when guessing where the images live


def read_coco_split(
    root: str | Path, split: str, class_names: list[str] | None = None
) -> DatasetSplit:
    """Read one split of a COCO-format dataset into records with absolute xyxy boxes.

    The JSON is ``<root>/annotations/instances_<split>.json``,
    ``<root>/<split>/_annotations.coco.json`` or ``<root>/annotations/<split>.json``; images are
    looked for in ``<root>/<split>/``, ``<root>/images/<split>/`` and ``<root>/`` (``file_name``
    relative to root), in that order.
    ``class_names``, if given, must contain every category name and sets the label order.
    """
    root = check_root(root)
    given = check_class_names(class_names)
    json_path, alias = _annotation_file(root, split)
    data = _load_json(json_path)
    log = DefectLog(scope=f"{root.name}/{split}")
    names, label_of = _categories(data, json_path, given, log)
    images = {img["id"]: img for img in _list_of(data, "images", json_path)}
    image_dir = _image_folder(root, alias, list(images.values()), json_path)
    objects = _group_annotations(data, images, label_of, json_path, log)
    records = []
    for image_id, image in images.items():
        record = _record(image_dir, image, objects.get(image_id, []), json_path, log)
        if record is not None:
            records.append(record)
    require_images(len(records), split, json_path)
    return DatasetSplit(split, root, records, names, log)


def _annotation_file(root: Path, split: str) -> tuple[Path, str]:
    """The JSON of ``split`` (any alias) and the alias it was found under."""
    tried = []
    for alias in split_aliases(split):
        for candidate in (root / "annotations" / f"instances_{alias}.json",
                          root / alias / "_annotations.coco.json",
                          root / "annotations" / f"{alias}.json"):
            if candidate.is_file():
                return candidate, alias
            tried.append(str(candidate))
    raise SplitNotFoundError(
        f"Split '{split}' not found in {root}: none of {tried[:3]} exists. Splits that exist: "
        f"{_available_splits(root)}; pick one of them."
    )


def _available_splits(root: Path) -> list[str]:
    """Split names that have an annotation JSON under any of the supported layouts."""
    names = {p.stem.removeprefix("instances_") for p in (root / "annotations").glob("*.json")}
    names.update(p.parent.name for p in root.glob("*/_annotations.coco.json"))
    return sorted(names)


def _load_json(path: Path) -> dict[str, Any]:
    """Parsed JSON; DatasetError naming the file if it cannot be read."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
        raise DatasetError(f"Cannot parse {path} ({exc}); fix or re-export the JSON.") from exc
    if not isinstance(data, dict):
        raise DatasetError(f"{path} is not a COCO object (a dict with images/annotations).")
    return data


def _list_of(data: dict[str, Any], key: str, path: Path) -> list[dict[str, Any]]:
    value = data.get(key, [] if key == "annotations" else None)
    if not isinstance(value, list):
        raise DatasetError(f"{path} has no '{key}' list; is it a COCO detection file?")
    return value


def _categories(
    data: dict[str, Any], path: Path, given: list[str] | None, log: DefectLog
) -> tuple[list[str], dict[int, int]]:
    """Class names and a map category id -> label (sorted ids -> 0..K-1, or given order)."""
    categories = sorted(_list_of(data, "categories", path), key=lambda c: c["id"])
    used = {a.get("category_id") for a in data.get("annotations", [])}
    parents = {c.get("supercategory") for c in categories}
    kept = []
    for cat in categories:
        if cat["name"] in parents and cat["id"] not in used and len(categories) > 1:
            log.add("dropped_parent_category", path, f"category {cat['id']} '{cat['name']}' is "
                    f"the supercategory of others and has no annotations")
        else:
            kept.append(cat)
    names = [str(c["name"]) for c in kept]
    if given is None:
        return names, {c["id"]: i for i, c in enumerate(kept)}
    unknown = [n for n in names if n not in given]
    if unknown:
        raise DatasetError(f"{path}: categories {unknown} are not in class_names {given}; "
                           f"add them to class_names or pass class_names=None.")
    return given, {c["id"]: given.index(str(c["name"])) for c in kept}


def _image_folder(root: Path, alias: str, images: list[dict[str, Any]], path: Path) -> Path:
    """The first candidate folder holding the most of the first listed images."""
    candidates = [root / alias, root / "images" / alias, root]
    probe = [str(img["file_name"]) for img in images[:_PROBE]]
    hits = [sum((folder / name).is_file() for name in probe) for folder in candidates]
    if probe and max(hits) == 0:
        raise DatasetError(
            f"{path}: none of the listed images (e.g. '{probe[0]}') was found; tried "
            f"{[str(c) for c in candidates]}. Put the images in one of those folders."
        )
    return candidates[hits.index(max(hits))] if probe else root


def _group_annotations(
    data: dict[str, Any],
    images: dict[Any, dict[str, Any]],
    label_of: dict[int, int],
    path: Path,
    log: DefectLog,
) -> dict[Any, list[tuple[list[float], int, str]]]:
    """Annotations per image id as (xywh, label, where), skipping crowd and orphan ones."""
    grouped: dict[Any, list[tuple[list[float], int, str]]] = {}
    for ann in _list_of(data, "annotations", path):
        where = f"annotation {ann.get('id')}"
        if ann.get("image_id") not in images:
            log.add("skipped_orphan_annotation", path, f"{where}: image_id {ann.get('image_id')}")
            continue
        if ann.get("iscrowd", 0):
            log.add("skipped_crowd_annotation", path, f"{where} has iscrowd=1")
            continue
        if ann.get("category_id") not in label_of:
            raise DatasetError(f"{path}: {where} has category_id {ann.get('category_id')} which "
                               f"is not in 'categories'; fix the JSON.")
        bbox = ann.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4:
            raise DatasetError(f"{path}: {where} has bbox {bbox!r}; expected [x, y, w, h].")
        grouped.setdefault(ann["image_id"], []).append((bbox, label_of[ann["category_id"]], where))
    return grouped


def _record(
    image_dir: Path,
    image: dict[str, Any],
    objects: list[tuple[list[float], int, str]],
    path: Path,
    log: DefectLog,
) -> ImageRecord | None:
    """One image's record (None and logged if its file is missing)."""
    image_path = image_dir / str(image["file_name"])
    if not image_path.is_file():
        log.add("skipped_missing_image", path, f"image {image_path} is listed but missing")
        return None
    width, height = int(image.get("width") or 0), int(image.get("height") or 0)
    if width <= 0 or height <= 0:
        width, height = image_size(image_path)
    xywh = np.array([o[0] for o in objects], dtype=np.float64).reshape(-1, 4)
    boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
    labels = np.array([o[1] for o in objects], dtype=np.int64)
    boxes, labels = sanitize_boxes(boxes, labels, width, height, log, path,
                                   [f"{o[2]} ({image['file_name']})" for o in objects])
    if len(labels) == 0:
        log.add("background_image", path, f"image {image['file_name']} has no objects")
    return ImageRecord(image_path, boxes, labels, width, height)
