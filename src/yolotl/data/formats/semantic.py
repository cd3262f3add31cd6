"""Reader for semantic segmentation datasets: images with a PNG class map each (``format: semantic``).

The layout (Roboflow PNG masks, VOC ``SegmentationClass``, or image/mask folder pairs) is found
automatically (:mod:`yolotl.data.formats._semantic_layout`). A record holds the image, its size (from
the header) and its mask's path; masks are decoded only when a sample is built, so reading a split
costs what reading the image headers costs. Class names come from ``class_names`` (the config's
``data.reading.class_names``), else ``_classes.csv``, else ``data.yaml``'s ``names``, else, in the VOC
layout, VOC's 21 classes.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from yolotl.data.formats._common import (
    SkippedImage,
    check_class_names,
    check_root,
    image_size,
    read_each,
    require_images,
)
from yolotl.data.formats._semantic_layout import (
    CLASSES_CSV,
    SemanticSplit,
    find_layout,
    find_split,
    layout_splits,
)
from yolotl.data.formats._yolo_layout import class_names_from_yaml, load_layout
from yolotl.data.findings import FindingLog
from yolotl.data.records import DatasetSplit, ImageRecord
from yolotl.errors import ConfigError, DatasetError

__all__ = ["VOC_CLASS_NAMES", "read_semantic_split", "split_names"]

# Pascal VOC's segmentation classes in index order (0 background; 255 marks object boundaries).
VOC_CLASS_NAMES = [
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
]
_IGNORE_VALUE = 255  # a _classes.csv row for it names the ignore value, not a class


def read_semantic_split(
    root: str | Path, split: str, class_names: list[str] | None = None
) -> DatasetSplit:
    """Read one split of a semantic segmentation dataset into records (no objects, a mask each).

    Each record has empty ``boxes``/``labels``, the image's header size and ``semantic_mask`` (also
    ``label_file``): the PNG whose pixel values are class indices. An image without its mask is
    skipped and logged (``missing_annotation``), as is an image whose header cannot be read; an id
    a VOC list names without an image is logged (``skipped_missing_image``); a mask without an image
    is logged (``orphan_label_file``). ``class_names`` names the mask values 0..K-1; when a
    ``_classes.csv`` is there too it must have as many classes. A root that fits no layout is a
    DatasetError naming the layouts looked for; a dataset with no class names anywhere a ConfigError
    asking for ``data.reading.class_names``.
    """
    path = check_root(root)
    given = check_class_names(class_names)
    layout = find_layout(path)
    found = find_split(path, layout, split)
    names = _class_names(path, layout, found, given)
    log = FindingLog(split, dataset=path.name)
    for image_id, source in found.missing_images:
        log.add("skipped_missing_image", source,
                f"{source}: image '{image_id}' is listed but has no file in JPEGImages; restore the "
                f"image or remove the line; image skipped")
    for mask in found.orphan_masks:
        log.add("orphan_label_file", mask, "no image for this mask; ignored")
    records = read_each(found.pairs, _read_record, log)
    require_images(len(records), split, found.source, log)
    return DatasetSplit(split, path, records, names, log)


def split_names(root: Path) -> list[str]:
    """Names of the splits of the semantic dataset at ``root``, as its files spell them."""
    return layout_splits(root, find_layout(root))


def _read_record(pair: tuple[Path, Path]) -> ImageRecord:
    """The record of one image and its mask; SkippedImage if the mask is missing or the image
    header unreadable."""
    image_path, mask_path = pair
    if not mask_path.is_file():
        raise SkippedImage("missing_annotation", image_path,
                           f"Image {image_path} has no mask {mask_path.name} in {mask_path.parent}; "
                           f"add the mask (a PNG of class indices) or remove the image.")
    width, height = image_size(image_path)
    return ImageRecord(image_path, np.zeros((0, 4), np.float32), np.zeros(0, np.int64), width,
                       height, label_file=mask_path, semantic_mask=mask_path)


def _class_names(root: Path, layout: str, found: SemanticSplit, given: list[str] | None) -> list[str]:
    """Given names, else ``_classes.csv``, else data.yaml ``names``, else VOC's names (VOC layout)."""
    csv_path = _classes_csv(root, found)
    from_csv = read_classes_csv(csv_path) if csv_path is not None else None
    if given is not None:
        if from_csv is not None and len(from_csv) != len(given):
            raise DatasetError(
                f"class_names has {len(given)} names {given} but {csv_path} lists {len(from_csv)} "
                f"classes {from_csv}; mask values are class indices, so give one name per value "
                f"0..{len(from_csv) - 1} (or class_names=null to use the file's names)."
            )
        return given
    if from_csv is not None:
        return from_csv
    yaml_names = class_names_from_yaml(load_layout(root, FindingLog()))
    if yaml_names:
        return yaml_names
    if layout == "voc":
        return list(VOC_CLASS_NAMES)
    raise ConfigError(
        f"No class names for the semantic dataset at {root}: no {CLASSES_CSV} (in {found.folder} or "
        f"{root}) and no data.yaml with names:. Set data.reading.class_names=[background, ...] (one "
        f"name per mask value, in value order)."
    )


def _classes_csv(root: Path, found: SemanticSplit) -> Path | None:
    """The split's own ``_classes.csv``, else the dataset's, else another split folder's."""
    candidates = [found.folder / CLASSES_CSV, root / CLASSES_CSV]
    candidates += [root / name / CLASSES_CSV for name in ("train", "valid", "val", "test")]
    candidates += sorted(root.glob(f"*/{CLASSES_CSV}"))
    return next((p for p in candidates if p.is_file()), None)


def read_classes_csv(path: Path) -> list[str]:
    """Class names by pixel value from a Roboflow ``_classes.csv`` ("Pixel Value, Class" rows).

    A header row is skipped; a row for 255 (the ignore value) is not a class. The values must be
    0..K-1, each once; otherwise a DatasetError names the file."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"Cannot read {path} ({exc}); fix or remove the file.") from exc
    by_value: dict[int, str] = {}
    for lineno, row in enumerate(csv.reader(text.splitlines(), skipinitialspace=True), 1):
        cells = [cell.strip() for cell in row]
        if not any(cells):
            continue
        try:
            value = int(cells[0])
        except ValueError:
            if lineno == 1:
                continue  # the header
            raise DatasetError(f"{path}:{lineno}: '{','.join(row)}' does not start with a pixel "
                               f"value; write 'value, name' rows.") from None
        if len(cells) < 2 or not cells[1]:
            raise DatasetError(f"{path}:{lineno}: pixel value {value} has no class name.")
        if value in by_value:
            raise DatasetError(f"{path}:{lineno}: pixel value {value} is listed twice.")
        by_value[value] = ",".join(cells[1:]).strip()
    by_value.pop(_IGNORE_VALUE, None)
    if sorted(by_value) != list(range(len(by_value))) or not by_value:
        raise DatasetError(
            f"{path}: pixel values {sorted(by_value)} are not 0..K-1; list each class's value once, "
            f"numbered from 0 (255 may name the ignore value)."
        )
    return [by_value[value] for value in range(len(by_value))]
