"""Reader for Pascal VOC datasets (``Annotations/*.xml``, ``JPEGImages/``, ``ImageSets/Main``, or
renamed and split-by-folder variants: see :mod:`yolotl.data.formats._voc_layout`).

VOC pixel indices are 1-based and inclusive, so ``xmin..xmax`` becomes the continuous 0-based
interval ``[xmin - 1, xmax]``. A box with ``xmax <= xmin`` or ``ymax <= ymin`` *as written* is a
single click, not an object: it is dropped as degenerate (logged) before that conversion, which
would otherwise inflate it to a 1x1 box.

Objects marked ``<difficult>1</difficult>`` are kept, flagged ``difficult`` and logged: they train
as ordinary objects (as before), and evaluation ignores them, as the VOC protocol does.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from yolotl.data.formats import _voc_layout as _layout
from yolotl.data.formats._common import (
    SkippedImage,
    check_class_names,
    check_root,
    image_size,
    read_each,
    require_images,
    sanitize_boxes,
)
from yolotl.data.formats._voc_layout import VocSplit, find_split, layout_folders, xml_files
from yolotl.data.findings import FindingLog
from yolotl.data.records import DatasetSplit, ImageRecord
from yolotl.errors import DatasetError

__all__ = ["layout_folders", "read_voc_split", "referenced_images", "split_names"]


def read_voc_split(
    root: str | Path,
    split: str,
    class_names: list[str] | None = None,
    image_dir: str | Path | None = None,
    annotation_dir: str | Path | None = None,
) -> DatasetSplit:
    """Read one split of a VOC dataset into records.

    The folders are ``image_dir`` and ``annotation_dir`` (relative to ``root`` or absolute) when
    given, else found among common names (``JPEGImages``/``images``/``imgs``/``img`` and
    ``Annotations``/``annotations``/``xml``/``labels``, any case; the ones holding images / XML
    files; a non-standard choice is logged). The split is ``ImageSets/Main/<split>.txt``, else a
    split folder (``annotations/<split>`` + ``images/<split>``, or ``<split>/`` with the images
    and XMLs), else, for ``split="all"`` in a dataset without splits, every XML file.

    Images come from the image folder's ``<filename>`` (``<id>.jpg`` if ``<filename>`` is absent;
    the absolute ``<path>`` element is ignored). Without ``class_names`` the classes are collected
    over every split's XMLs, sorted by id, in order of first appearance, so every split gets the
    same list. ``difficult`` objects are kept, flagged and counted. An image whose XML is missing,
    unparseable or malformed, whose file is missing, or that names an unknown class is skipped and
    logged (the whole image: a partly labelled image teaches that objects are background). A
    missing root, split or class list raises DatasetError naming the folders seen.
    """
    root = check_root(root)
    given = check_class_names(class_names)
    found = find_split(root, split, image_dir, annotation_dir)
    names = given if given is not None else _collect_class_names(root, image_dir, annotation_dir)
    log = FindingLog(split, dataset=root.name)
    records = read_each(found.ids, lambda image_id: _read_record(found, image_id, names, log), log)
    require_images(len(records), split, found.source, log)
    return DatasetSplit(split, root, records, names, log)


def split_names(
    root: Path, image_dir: str | Path | None = None, annotation_dir: str | Path | None = None
) -> list[str]:
    """Names of the splits: ``ImageSets/Main`` list files, else split folders, else ``all``."""
    return _layout.split_names(root, image_dir, annotation_dir)


def _collect_class_names(
    root: Path, image_dir: str | Path | None, annotation_dir: str | Path | None
) -> list[str]:
    """Class names over every split's XMLs, ids sorted, in order of first appearance."""
    xml_paths: dict[Path, str] = {}
    for name in _layout.split_names(root, image_dir, annotation_dir):
        found = find_split(root, name, image_dir, annotation_dir)
        xml_paths.update({found.annotation_dir / f"{i}.xml": i for i in found.ids})
    names: dict[str, None] = {}
    for xml_path in sorted(xml_paths, key=lambda p: (xml_paths[p], str(p))):
        try:  # a broken file is reported (and skipped) when its split is read
            for obj in _parse_xml(xml_path).iter("object"):
                names.setdefault(_text(obj, "name", xml_path), None)
        except SkippedImage:
            continue
    if not names:
        folders = sorted({str(p.parent) for p in xml_paths}) or [str(root)]
        raise DatasetError(
            f"No objects found in the {len(xml_paths)} XML files the splits list (in {folders}); "
            f"pass class_names, or set data.reading.annotation_dir if the annotations are elsewhere."
        )
    return list(names)


def _parse_xml(path: Path) -> ET.Element:
    """The root element of an annotation file; SkippedImage naming the file if absent or broken."""
    if not path.is_file():
        raise SkippedImage("missing_annotation", path, f"Annotation {path} is missing; add it or "
                           f"remove '{path.stem}' from the ImageSets/Main split files.")
    try:
        return ET.parse(path).getroot()
    except (ET.ParseError, OSError, UnicodeDecodeError) as exc:
        raise SkippedImage("unparseable_annotation", path,
                           f"Cannot parse {path} ({exc}); fix or remove the XML file.") from exc


def _text(element: ET.Element, tag: str, path: Path) -> str:
    """Stripped text of a required child element."""
    child = element.find(tag)
    if child is None or child.text is None or not child.text.strip():
        raise SkippedImage("malformed_label", path,
                           f"{path}: an <{element.tag}> has no <{tag}>; add it or fix the XML.")
    return child.text.strip()


def _read_record(found: VocSplit, image_id: str, names: list[str], log: FindingLog) -> ImageRecord:
    """One image's record from its XML, with the box rule applied."""
    xml_path = found.annotation_dir / f"{image_id}.xml"
    annotation = _parse_xml(xml_path)
    image_path = found.image_dir / image_filename(annotation, image_id)
    if not image_path.is_file():
        raise SkippedImage("skipped_missing_image", image_path,
                           f"Image {image_path} (from {xml_path}) is missing; restore it or "
                           f"remove '{image_id}' from the split files.")
    width, height = _size(annotation, image_path)
    boxes, labels, difficult, where = _objects(annotation, xml_path, names, log)
    boxes, labels, kept = sanitize_boxes(boxes, labels, width, height, log, xml_path, where)
    if len(labels) == 0:
        log.add("background_image", xml_path,
                "no <object>" if not where else "every box was dropped")
    return ImageRecord(image_path, boxes, labels, width, height, xml_path,
                       difficult=difficult[kept])


def image_filename(annotation: ET.Element, image_id: str) -> str:
    """The image file an XML refers to: its ``<filename>``, else ``<id>.jpg``."""
    return annotation.findtext("filename", default="").strip() or f"{image_id}.jpg"


def referenced_images(annotation_dir: Path) -> set[str]:
    """File names that some ``<annotation_dir>/*.xml`` refers to (broken XMLs: by id)."""
    names = set()
    for xml_path in xml_files(annotation_dir):
        try:
            names.add(image_filename(_parse_xml(xml_path), xml_path.stem))
        except SkippedImage:
            names.update(f"{xml_path.stem}{suffix}" for suffix in (".jpg", ".jpeg", ".png"))
    return names


def _size(annotation: ET.Element, image_path: Path) -> tuple[int, int]:
    """(width, height) from ``<size>`` when it states a positive size, else the image header."""
    try:
        width = int(float(annotation.findtext("size/width", default="0")))
        height = int(float(annotation.findtext("size/height", default="0")))
    except ValueError:
        width = height = 0
    return (width, height) if width > 0 and height > 0 else image_size(image_path)


def _objects(
    annotation: ET.Element, xml_path: Path, names: list[str], log: FindingLog
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Boxes (0-based xyxy), labels, difficult flags and a location tag for each ``<object>``."""
    boxes, labels, difficult, where = [], [], [], []
    for index, obj in enumerate(annotation.iter("object")):
        name = _text(obj, "name", xml_path)
        if name not in names:
            raise SkippedImage("unknown_class", xml_path,
                               f"{xml_path}: class '{name}' is not in the known classes {names}; "
                               f"add it to class_names or fix the annotation.")
        xmin, ymin, xmax, ymax = _bndbox(obj, xml_path)
        tag = f"object {index} ({name})"
        hard = obj.findtext("difficult", default="0").strip() in ("1", "true")
        if hard:
            log.add("difficult_object", xml_path, f"{tag} is marked difficult; trained on, "
                    f"ignored by evaluation")
        if xmax <= xmin or ymax <= ymin:
            log.add("dropped_degenerate_box", xml_path,
                    f"{tag}: [{xmin:g}, {ymin:g}, {xmax:g}, {ymax:g}] has zero area as written")
            continue
        boxes.append([xmin - 1.0, ymin - 1.0, xmax, ymax])
        labels.append(names.index(name))
        difficult.append(hard)
        where.append(tag)
    return (np.array(boxes, np.float64).reshape(-1, 4), np.array(labels, np.int64),
            np.array(difficult, bool), where)


def _bndbox(obj: ET.Element, xml_path: Path) -> tuple[float, float, float, float]:
    """xmin, ymin, xmax, ymax of an object's ``<bndbox>`` as floats (NaN kept for the box rule)."""
    box = obj.find("bndbox")
    if box is None:
        raise SkippedImage("malformed_label", xml_path,
                           f"{xml_path}: an <object> has no <bndbox>; add it or remove the object.")
    try:
        return tuple(float(_text(box, tag, xml_path)) for tag in ("xmin", "ymin", "xmax", "ymax"))
    except ValueError as exc:
        raise SkippedImage("malformed_label", xml_path, f"{xml_path}: a <bndbox> coordinate is "
                           f"not a number ({exc}); fix the XML.") from exc
