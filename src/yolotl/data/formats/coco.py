"""Reader for COCO detection JSON (``instances_<split>.json``, Roboflow ``_annotations.coco.json``).

Category ids may have gaps: sorted ids map to contiguous labels ``0..K-1``. Roboflow exports
add an unused parent category (the supercategory of all others, with no annotations); it is
dropped and logged. ``bbox`` is ``[x, y, w, h]`` in absolute 0-based pixels.

``iscrowd=1`` annotations (one box around a crowd of objects) are kept, flagged ``crowd``, and
logged: evaluation ignores them as COCO does, training leaves them out of its targets.

``segmentation`` (polygons in absolute pixels, or an RLE dict with compressed or uncompressed
``counts``) is kept as read in the record's ``segments`` (None for an image none of whose objects
has one: detection data). A polygon with an odd number of coordinates skips its image (``odd_polygon_coordinates``);
a segmentation of another shape is a ``malformed_label``. What the outlines themselves get wrong
is for the health checks (:mod:`yolotl.data.health.masks`).

Per-file problems in one big JSON are counted skips, not errors: an image listed but missing on
disk and an annotation of an unknown image are skipped and logged; an image with an annotation
of an unknown ``category_id`` or a malformed ``bbox`` (crowd or not) is skipped whole (a partly
labelled image teaches that objects are background). A ``bbox`` with a negative width or height
is dropped as ``negative_size_box`` (not clipped). Files in the image folder that the JSON does
not list are logged. If *no* listed image can be found the split raises DatasetError listing the
folders tried.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision.ops import box_convert

from yolotl.data.formats._common import (
    IMAGE_SUFFIXES,
    SplitNotFoundError,
    check_class_names,
    check_root,
    image_size,
    read_each,
    require_images,
    sanitize_boxes,
    split_aliases,
)
from yolotl.data.findings import FindingLog
from yolotl.data.records import DatasetSplit, ImageRecord
from yolotl.data.segments import Segment
from yolotl.errors import DatasetError

__all__ = ["read_coco_split"]

_PROBE = 20  # images checked per candidate folder when guessing where the images live

# bbox [x, y, w, h], label, where, iscrowd, segment
_Object = tuple[list[float], int, str, bool, Segment | None]


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
    log = FindingLog(split, dataset=root.name)
    names, label_of = _categories(data, json_path, given, log)
    images = _images(data, json_path, log)
    image_dir = _image_folder(root, alias, list(images.values()), json_path)
    objects, broken = _group_annotations(data, images, label_of, json_path, log)
    _log_unlisted(image_dir, root, images.values(), log)
    wanted = [image for image_id, image in images.items() if image_id not in broken]
    records = read_each(
        wanted, lambda image: _record(image_dir, image, objects.get(image["id"], []), json_path, log),
        log)
    require_images(len(records), split, json_path, log)
    return DatasetSplit(split, root, records, names, log)


def _images(data: dict[str, Any], path: Path, log: FindingLog) -> dict[Any, dict[str, Any]]:
    """Listed images by id; an entry without ``id`` or ``file_name`` is logged and left out."""
    images = {}
    for index, image in enumerate(_list_of(data, "images", path)):
        if not isinstance(image, dict) or "id" not in image or not image.get("file_name"):
            log.add("malformed_label", path, f"images[{index}] {image!r:.80} has no id or "
                    f"file_name; image skipped")
            continue
        images[image["id"]] = image
    return images


def _log_unlisted(
    image_dir: Path, root: Path, images: Iterable[dict[str, Any]], log: FindingLog
) -> None:
    """Log image files in the split's image folder that the JSON does not list."""
    if image_dir == root:  # the dataset root holds every split: "unlisted" would mean nothing
        return
    listed = {(image_dir / str(image["file_name"])).resolve() for image in images}
    for path in sorted(image_dir.rglob("*")):
        if path.suffix.lower() in IMAGE_SUFFIXES and path.resolve() not in listed:
            log.add("unlisted_image", path, "not listed in the split's JSON; ignored")


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
        f"{split_names(root)}; pick one of them."
    )


def split_names(root: Path) -> list[str]:
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
    data: dict[str, Any], path: Path, given: list[str] | None, log: FindingLog
) -> tuple[list[str], dict[int, int]]:
    """Class names and a map category id -> label (sorted ids -> 0..K-1, or given order)."""
    categories = _list_of(data, "categories", path)
    if not all(isinstance(c, dict) and isinstance(c.get("id"), int) and "name" in c
               for c in categories):
        raise DatasetError(f"{path}: every entry of 'categories' needs an integer 'id' and a "
                           f"'name'; fix the JSON.")
    categories = sorted(categories, key=lambda c: c["id"])
    used = {a.get("category_id") for a in data.get("annotations", []) if isinstance(a, dict)}
    parents = {c.get("supercategory") for c in categories}
    kept = []
    for cat in categories:
        if cat["name"] in parents and cat["id"] not in used and len(categories) > 1:
            log.add("dropped_parent_category", path, f"category {cat['id']} '{cat['name']}' is "
                    f"the supercategory of others and has no annotations")
        else:
            kept.append(cat)
    names = [str(c["name"]) for c in kept]
    ids = [c["id"] for c in kept]
    if ids and ids != list(range(ids[0], ids[0] + len(ids))):
        log.add("category_id_gap", path, f"category ids {ids} are not contiguous; mapped to "
                f"labels 0..{len(ids) - 1} in id order")
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
    log: FindingLog,
) -> tuple[dict[Any, list[_Object]], set[Any]]:
    """Annotations per image id as (xywh, label, where, iscrowd, segment), skipping orphan ones, and the
    ids of images with a broken annotation (logged; the reader skips those images)."""
    grouped: dict[Any, list[_Object]] = {}
    broken: set[Any] = set()
    for ann in _list_of(data, "annotations", path):
        ann = ann if isinstance(ann, dict) else {"id": repr(ann)[:40]}
        image = images.get(ann.get("image_id"))
        where = f"annotation {ann.get('id')}"
        if image is None:
            log.add("skipped_orphan_annotation", path, f"{where}: image_id {ann.get('image_id')}")
            continue
        where = f"{where} ({image['file_name']})"
        problem = _annotation_problem(ann, label_of)
        if problem is not None:
            log.add(problem[0], path, f"{path}: {where} {problem[1]}; image skipped")
            broken.add(image["id"])
            continue
        crowd = bool(ann.get("iscrowd", 0))
        if crowd:
            log.add("skipped_crowd_annotation", path, f"{where} has iscrowd=1; kept as a region "
                    f"evaluation ignores, not a training target")
        label = label_of[ann["category_id"]]
        grouped.setdefault(image["id"], []).append(
            (ann["bbox"], label, where, crowd, _segment(ann.get("segmentation"))))
    return grouped, broken


def _annotation_problem(ann: dict[str, Any], label_of: dict[int, int]) -> tuple[str, str] | None:
    """(kind, text) if an annotation's category or bbox is unusable, else None."""
    if ann.get("category_id") not in label_of:
        category = ann.get("category_id")
        return "unknown_class", f"has category_id {category}, not in 'categories'; fix the JSON"
    bbox = ann.get("bbox")
    numbers = isinstance(bbox, list) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox)
    if not numbers or len(bbox) != 4:
        return "malformed_label", f"has bbox {bbox!r}; expected [x, y, w, h] (4 numbers)"
    return _segmentation_problem(ann.get("segmentation"))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _segmentation_problem(segmentation: Any) -> tuple[str, str] | None:
    """(kind, text) if ``segmentation`` is neither absent, a list of polygons nor an RLE dict."""
    if segmentation is None or segmentation == []:
        return None
    if isinstance(segmentation, dict):
        counts, size = segmentation.get("counts"), segmentation.get("size")
        sized = isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) for v in size)
        counted = isinstance(counts, (str, bytes)) or (
            isinstance(counts, list) and all(isinstance(v, int) for v in counts))
        if sized and counted:
            return None
        return "malformed_label", (f"has an RLE segmentation {segmentation!r:.80}; expected "
                                   f"{{'size': [h, w], 'counts': str or list of ints}}")
    polygons = isinstance(segmentation, list) and all(
        isinstance(p, list) and all(_is_number(v) for v in p) for p in segmentation)
    if not polygons:
        return "malformed_label", (f"has segmentation {segmentation!r:.80}; expected polygons "
                                   f"[[x1, y1, x2, y2, ...], ...] or an RLE dict")
    odd = [i for i, polygon in enumerate(segmentation) if len(polygon) % 2]
    if odd:
        return "odd_polygon_coordinates", (f"polygon {odd[0]} has {len(segmentation[odd[0]])} "
                                           f"coordinates; x, y pairs need an even number")
    return None


def _segment(segmentation: Any) -> Segment | None:
    """A checked ``segmentation`` as a :class:`Segment` (None when absent or empty)."""
    if segmentation is None or segmentation == []:
        return None
    if isinstance(segmentation, dict):
        return Segment(rle=dict(segmentation))
    return Segment(polygons=tuple(np.array(p, dtype=np.float64).reshape(-1, 2)
                                  for p in segmentation))


def _record(
    image_dir: Path,
    image: dict[str, Any],
    objects: list[_Object],
    path: Path,
    log: FindingLog,
) -> ImageRecord | None:
    """One image's record (None and logged if its file is missing)."""
    image_path = image_dir / str(image["file_name"])
    if not image_path.is_file():
        log.add("skipped_missing_image", path, f"image {image_path} is listed but missing")
        return None
    try:
        width, height = int(image.get("width") or 0), int(image.get("height") or 0)
    except (TypeError, ValueError):
        width = height = 0
    if width <= 0 or height <= 0:
        width, height = image_size(image_path)
    objects = _drop_negative_sizes(objects, path, log)
    xywh = torch.as_tensor(np.array([o[0] for o in objects], dtype=np.float64).reshape(-1, 4))
    boxes = box_convert(xywh, "xywh", "xyxy").numpy()  # float64, as written
    labels = np.array([o[1] for o in objects], dtype=np.int64)
    crowd = np.array([o[3] for o in objects], dtype=bool)
    segments = [o[4] for o in objects]
    boxes, labels, kept = sanitize_boxes(boxes, labels, width, height, log, path,
                                         [f"{o[2]} ({image['file_name']})" for o in objects])
    if len(labels) == 0:
        log.add("background_image", path, f"image {image['file_name']} has no objects")
    segments = [segment for segment, keep in zip(segments, kept) if keep]
    return ImageRecord(image_path, boxes, labels, width, height, path, crowd=crowd[kept],
                       segments=tuple(segments) if any(s is not None for s in segments) else None)


def _drop_negative_sizes(objects: list[_Object], path: Path, log: FindingLog) -> list[_Object]:
    """The objects whose bbox width and height are not negative; the others are logged and dropped.

    A negative ``w`` or ``h`` is not a box crossing the border (no clip repairs it): the annotation
    tool wrote something other than ``[x, y, w, h]``, so the box is dropped as such."""
    kept = []
    for bbox, label, where, crowd, segment in objects:
        sides = [name for name, value in (("width", bbox[2]), ("height", bbox[3])) if value < 0]
        if sides:
            log.add("negative_size_box", path,
                    f"{where}: bbox [x, y, w, h] = {_fmt_bbox(bbox)} has a negative {' and '.join(sides)}; "
                    f"COCO boxes need w, h >= 0; box dropped")
            continue
        kept.append((bbox, label, where, crowd, segment))
    return kept


def _fmt_bbox(bbox: list[float]) -> str:
    return "[" + ", ".join(f"{v:g}" for v in bbox) + "]"
