"""Reader for YOLO txt datasets (data.yaml + ``images/`` and sibling ``labels/`` folders).

Each label line is ``class cx cy w h`` with coordinates normalised to [0, 1]; a line with
more than 5 fields, an odd count and at least 3 points is a YOLO-seg polygon ``class x1 y1 ... xn
yn``: its box is the polygon's bounding box (logged as ``polygon_to_box``) and the polygon, in
pixels, is kept as the object's segment. A line of more than 5 fields and an even count has an
odd number of coordinates and skips its image (``odd_polygon_coordinates``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torchvision.ops import box_convert

from yolotl.data.formats._common import (
    IMAGE_SUFFIXES,
    SkippedImage,
    check_class_names,
    check_root,
    image_size,
    read_each,
    require_images,
    sanitize_boxes,
)
from yolotl.data.formats._yolo_layout import (
    YoloLayout,
    class_names_from_yaml,
    label_path,
    layout_splits,
    load_layout,
    split_image_paths,
)
from yolotl.data.findings import FindingLog
from yolotl.data.records import DatasetSplit, ImageRecord
from yolotl.data.segments import Segment
from yolotl.errors import DatasetError

__all__ = ["read_yolo_split", "split_names"]


def read_yolo_split(
    root: str | Path, split: str, class_names: list[str] | None = None
) -> DatasetSplit:
    """Read one split of a YOLO dataset into records with absolute xyxy boxes.

    ``root`` is the folder holding ``data.yaml`` (or the yaml file itself). Split folders come
    from the yaml (``path:`` honoured; Roboflow ``../train/images`` entries that do not resolve
    fall back to ``<root>/train/images``); a split without a yaml key is found as
    ``<root>/<split>/images`` or ``<root>/images/<split>``; "val", "valid" and "validation" are
    aliases. ``class_names``, if given, must hold the same names as the yaml and sets the label
    order. An image without a label file is kept as background and logged. An image whose label
    file has a malformed line or an out-of-range class id is skipped and logged (the whole image:
    a partly labelled image teaches that objects are background), as is an unreadable image; a
    label file without an image is logged. A missing labels folder or data.yaml problem raises
    DatasetError.
    """
    given = check_class_names(class_names)
    path = Path(root) if _is_yaml(root) else check_root(root)
    folder = path.parent if _is_yaml(path) else path
    log = FindingLog(split, dataset=folder.name)
    layout = load_layout(path, log)
    names, remap = _class_mapping(layout, given)
    image_paths = split_image_paths(layout, split, log)
    _check_label_folders(image_paths)
    _log_orphan_labels(image_paths, log)
    records = read_each(image_paths, lambda p: _read_record(p, remap, names, log), log)
    require_images(len(records), split, layout.root, log)
    return DatasetSplit(split, layout.root, records, names, log)


def split_names(root: Path) -> list[str]:
    """Split names the data.yaml at ``root`` (a folder or the yaml itself) lists or the folder
    layout provides."""
    path = root if _is_yaml(root) else check_root(root)
    return layout_splits(load_layout(path, FindingLog()))


def _is_yaml(root: str | Path) -> bool:
    path = Path(root)
    return path.is_file() and path.suffix in (".yaml", ".yml")


def _class_mapping(layout: YoloLayout, given: list[str] | None) -> tuple[list[str], np.ndarray]:
    """Final class names and a lookup from yaml class id to label index."""
    yaml_names = class_names_from_yaml(layout)
    if yaml_names is None:
        if given is None:
            raise DatasetError(
                f"No class names: {layout.yaml_path or layout.root / 'data.yaml'} is missing or "
                f"has no 'names:'; add names: [...] to data.yaml or pass class_names."
            )
        return given, np.arange(len(given))
    if given is None:
        return yaml_names, np.arange(len(yaml_names))
    if sorted(given) != sorted(yaml_names):
        missing = [n for n in yaml_names if n not in given]
        extra = [n for n in given if n not in yaml_names]
        raise DatasetError(
            f"class_names {given} do not match names {yaml_names} in {layout.yaml_path} "
            f"(not in class_names: {missing}; not in the yaml: {extra}); pass the same names, "
            f"in any order, or class_names=None."
        )
    return given, np.array([given.index(name) for name in yaml_names])


def _check_label_folders(image_paths: list[Path]) -> None:
    """Raise if the labels folder next to an images folder does not exist at all."""
    for folder in dict.fromkeys(label_path(p).parent for p in image_paths):
        if not folder.is_dir():
            raise DatasetError(
                f"Labels folder {folder} does not exist; put one YOLO .txt label file per image "
                f"there (the 'images' folder name swapped for 'labels')."
            )


def _log_orphan_labels(image_paths: list[Path], log: FindingLog) -> None:
    """Log each .txt in a split's labels folders that belongs to no image file next door."""
    for images in dict.fromkeys(p.parent for p in image_paths):
        labels = label_path(images / "x.jpg").parent
        stems = {p.stem for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
        for txt in sorted(labels.glob("*.txt")):
            if txt.stem not in stems and txt.name != "classes.txt":  # LabelImg's class list
                log.add("orphan_label_file", txt, f"no image {txt.stem}.* in {images}; ignored")


def _read_record(
    image_path: Path, remap: np.ndarray, names: list[str], log: FindingLog
) -> ImageRecord:
    """One image's record: parse its label file, convert to pixels, apply the box rule."""
    width, height = image_size(image_path)
    labels_file = label_path(image_path)
    if not labels_file.is_file():
        log.add("missing_label_file", image_path, f"no label file {labels_file}")
        return ImageRecord(image_path, np.zeros((0, 4), np.float32), np.zeros(0, np.int64),
                           width, height)
    rows, line_numbers, polygons = _parse_label_file(labels_file, len(remap), names, log)
    boxes = _normalised_cxcywh_to_xyxy(rows[:, 1:], width, height)
    labels = remap[rows[:, 0].astype(np.int64)]
    boxes, labels, kept = sanitize_boxes(boxes, labels, width, height, log, labels_file,
                                         [f"line {n}" for n in line_numbers])
    if len(labels) == 0:
        log.add("background_image", labels_file,
                "label file is empty" if not line_numbers else "every box was dropped")
    segments = [None if polygon is None else Segment(polygons=(polygon * [width, height],))
                for polygon, keep in zip(polygons, kept) if keep]
    return ImageRecord(image_path, boxes, labels, width, height, labels_file,
                       segments=tuple(segments) if any(s is not None for s in segments) else None)


def _parse_label_file(
    path: Path, num_classes: int, names: list[str], log: FindingLog
) -> tuple[np.ndarray, list[int], list[np.ndarray | None]]:
    """Rows of (class, cx, cy, w, h) as float64 [N, 5], the line number of each row and its
    normalised polygon ``[K, 2]`` (None for a box line)."""
    rows: list[list[float]] = []
    line_numbers: list[int] = []
    polygons: list[np.ndarray | None] = []
    try:
        text = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError) as exc:
        raise SkippedImage("malformed_label", path, f"{path}: cannot read the label file as "
                           f"UTF-8 text ({exc}); fix or remove the file.") from exc
    for lineno, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        values = _parse_fields(path, lineno, line, fields)
        polygons.append(np.array(values[1:], dtype=np.float64).reshape(-1, 2)
                        if len(values) > 5 else None)
        if len(values) > 5:
            values = _polygon_to_cxcywh(values)
            log.add("polygon_to_box", path, f"line {lineno}: polygon read as its bounding box")
        class_id = values[0]
        if not class_id.is_integer() or not 0 <= class_id < num_classes:
            raise SkippedImage("unknown_class", path,
                f"{path}:{lineno}: class id {fields[0]} is out of range 0..{num_classes - 1} "
                f"for the classes {names}; fix the id or the names in data.yaml."
            )
        rows.append(values)
        line_numbers.append(lineno)
    return np.array(rows, dtype=np.float64).reshape(-1, 5), line_numbers, polygons


def _parse_fields(path: Path, lineno: int, line: str, fields: list[str]) -> list[float]:
    """Floats of one label line; raise SkippedImage naming file:line if it is malformed."""
    is_box = len(fields) == 5
    is_polygon = len(fields) >= 7 and len(fields) % 2 == 1
    try:
        values = [float(field) for field in fields]
    except ValueError:
        values = []
    if values and len(fields) > 5 and len(fields) % 2 == 0:
        raise SkippedImage("odd_polygon_coordinates", path,
            f"{path}:{lineno}: YOLO-seg line with {len(fields) - 1} coordinates; 'class x1 y1 ... "
            f"xn yn' needs x, y pairs (an even number). Fix or remove the line."
        )
    if not values or not (is_box or is_polygon):
        raise SkippedImage("malformed_label", path,
            f"{path}:{lineno}: malformed YOLO label line '{line.strip()}'; expected "
            f"'class cx cy w h' (5 numbers, normalised to 0..1). Fix or remove the line."
        )
    return values


def _polygon_to_cxcywh(values: list[float]) -> list[float]:
    """``class x1 y1 x2 y2 ...`` (normalised polygon) -> ``class cx cy w h`` of its bounds."""
    xs, ys = np.array(values[1::2]), np.array(values[2::2])
    x1, x2, y1, y2 = xs.min(), xs.max(), ys.min(), ys.max()
    return [values[0], (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1]


def _normalised_cxcywh_to_xyxy(cxcywh: np.ndarray, width: int, height: int) -> np.ndarray:
    """Normalised centre/size boxes [N, 4] -> absolute-pixel corner boxes [N, 4]."""
    scale = np.array([width, height, width, height], dtype=np.float64)
    corners = box_convert(torch.as_tensor(cxcywh, dtype=torch.float64), "cxcywh", "xyxy")
    return corners.numpy() * scale
