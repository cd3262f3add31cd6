"""Checks of semantic segmentation records (``ImageRecord.semantic_mask`` set): each class map is
decoded once (:class:`MaskInfo`: its size and how many pixels hold each value), then compared with
its image and the class list.

Per record, the first of: a mask that does not decode (``unreadable_mask``), a mask sized unlike its
image (``mask_size_mismatch``: never resized, a stretched label map is wrong everywhere), values that
are no class and not the ignore value (``unknown_mask_value``), a mask of nothing but the ignore value
(``ignore_only_mask``): all four skip the image under ``policy="fix"``. A mask of nothing but
background (and ignore) is reported and kept (``background_only_mask``: it can be a true negative).
Across splits, :func:`semantic_class_findings` notes classes without a pixel in a split.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from yolotl.data.findings import Finding
from yolotl.data.health.images import ImageInfo, decode_threads
from yolotl.data.records import ImageRecord
from yolotl.data.class_maps import IGNORE_INDEX  # the data layer may not import ops/ (test_layers)

__all__ = ["BACKGROUND_NAMES", "MaskInfo", "background_index", "inspect_mask", "inspect_masks",
           "class_pixel_counts", "semantic_class_findings", "semantic_mask_findings", "semantic_masks"]

# Names of class 0 that mean "no object here" (compared lower-case, without '_' and spaces).
BACKGROUND_NAMES = frozenset({"background", "bg", "backdrop", "unlabeled", "unlabelled", "void"})
_SHOWN_VALUES = 5
# Modes whose pixels are class indices as they are (P: the palette index is the class).
_INDEX_MODES = frozenset({"L", "P", "1", "I", "I;16", "I;16B", "I;16L"})


@dataclass(frozen=True)
class MaskInfo:
    """What decoding one class map found. ``problem`` is ``unreadable_mask`` when it did not decode.

    ``counts`` holds ``(value, pixels)`` pairs of every value present, ascending by value."""

    path: Path
    problem: str | None = None
    detail: str = ""
    mode: str = ""
    width: int = 0
    height: int = 0
    counts: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        """Pairs as tuples of ints (the health store gives them back as JSON lists)."""
        object.__setattr__(self, "counts", tuple((int(v), int(n)) for v, n in self.counts))

    @property
    def values(self) -> list[int]:
        """The values present, ascending."""
        return [value for value, _ in self.counts]

    def to_fields(self) -> dict[str, Any]:
        """The fields the health store keeps (every field but ``path``)."""
        fields = dataclasses.asdict(self)
        fields.pop("path")
        fields["counts"] = [list(pair) for pair in self.counts]
        return fields


def inspect_mask(path: Path) -> MaskInfo:
    """Decode the class map at ``path`` and count its values (never raises for a bad file).

    L, P (the palette index, never the colour), 1 and 16/32-bit single-channel modes are read as
    they are (values over 255 then show as values of no class); any other mode (RGB, RGBA, LA) is
    unreadable, as the training reader (:func:`yolotl.data.class_maps.read_class_map`) refuses it:
    a colour-coded mask needs converting to class indices first."""
    try:
        with Image.open(path) as image:
            image.load()
            mode, (width, height) = image.mode, image.size
            array = np.asarray(image)
    except Exception as exc:  # noqa: BLE001 - PIL raises many types (OSError, SyntaxError, ...)
        reason = "the file is missing" if isinstance(exc, FileNotFoundError) else (
            f"it does not decode ({type(exc).__name__}: {exc})")
        return MaskInfo(path, "unreadable_mask", f"{reason}; the image is skipped")
    if mode not in _INDEX_MODES or array.ndim != 2:
        return MaskInfo(path, "unreadable_mask", f"a mode-{mode} image is no class map (one class "
                        f"index per pixel: an 8-bit L or P PNG); convert it to class indices; the "
                        f"image is skipped", mode, width, height)
    values, pixels = np.unique(array.astype(np.int64, copy=False), return_counts=True)
    return MaskInfo(path, None, "", mode, width, height, tuple(zip(values.tolist(), pixels.tolist())))


def inspect_masks(paths: Iterable[Path], threads: int | None = None) -> dict[Path, MaskInfo]:
    """:func:`inspect_mask` of every distinct path, decoded in a thread pool."""
    unique = list(dict.fromkeys(paths))
    threads = decode_threads(threads)
    if threads <= 1 or len(unique) < 2:
        return {path: inspect_mask(path) for path in unique}
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return dict(zip(unique, pool.map(inspect_mask, unique)))


def semantic_masks(records: Iterable[ImageRecord]) -> list[Path]:
    """The class-map paths of the semantic records among ``records``."""
    return [mask for record in records if (mask := getattr(record, "semantic_mask", None)) is not None]


def background_index(class_names: Sequence[str]) -> int | None:
    """0 when class 0 is named as background (:data:`BACKGROUND_NAMES`), else None."""
    if not class_names:
        return None
    name = str(class_names[0]).lower().replace("_", "").replace(" ", "")
    return 0 if name in BACKGROUND_NAMES else None


def semantic_mask_findings(
    split: str,
    records: Sequence[ImageRecord],
    masks: Mapping[Path, MaskInfo],
    images: Mapping[Path, ImageInfo],
    class_names: Sequence[str],
) -> list[Finding]:
    """Findings of each semantic record's class map (see the module docstring), ``index`` set so
    the fix policy skips the image where the catalogue says so. ``images`` (decoded images) give
    the size the image really has; a record whose image did not decode is left to its own finding."""
    findings = []
    for index, record in enumerate(records):
        path = getattr(record, "semantic_mask", None)
        if path is None or path not in masks:
            continue
        image = images.get(record.image_path)
        if image is not None and image.problem is not None:
            continue  # unreadable image: already skipped by its own finding
        size = (image.width, image.height) if image is not None else (record.width, record.height)
        problem = _mask_problem(masks[path], size, class_names)
        if problem is not None:
            findings.append(Finding(split, problem[0], str(path), problem[1], index))
    return findings


def _mask_problem(info: MaskInfo, size: tuple[int, int],
                  class_names: Sequence[str]) -> tuple[str, str] | None:
    """(kind, detail) of the first problem of one class map, or None."""
    if info.problem is not None:
        return info.problem, info.detail
    background = background_index(class_names)
    if (info.width, info.height) != size:
        return "mask_size_mismatch", (
            f"mask {info.width}x{info.height} but its image is {size[0]}x{size[1]}"
            f"{_blank_note(info, class_names, background)}; the image is skipped (a mask is never "
            f"resized to fit: a label map of another canvas is wrong everywhere); export the "
            f"mask at the image's size")
    unknown = [(v, n) for v, n in info.counts
               if v < 0 or (v >= len(class_names) and v != IGNORE_INDEX)]
    if unknown:
        shown = ", ".join(str(v) for v, _ in unknown[:_SHOWN_VALUES])
        more = f" and {len(unknown) - _SHOWN_VALUES} more" if len(unknown) > _SHOWN_VALUES else ""
        pixels = sum(n for _, n in unknown)
        return "unknown_mask_value", (
            f"values {shown}{more} ({pixels} px) are no class of the {len(class_names)} "
            f"(0-{len(class_names) - 1}) and not the ignore value {IGNORE_INDEX}; the image is "
            f"skipped, not repaired: values outside the class list mean the mask and the class "
            f"list disagree, so none of its pixels can be trusted (as unknown_class skips an image "
            f"with a box of an unknown class); fix the class list (data.reading.class_names, "
            f"_classes.csv) or the mask")
    values = set(info.values)
    if values == {IGNORE_INDEX}:
        return "ignore_only_mask", (f"every pixel is the ignore value {IGNORE_INDEX}: the image "
                                    f"teaches nothing and is skipped")
    if background is not None and values <= {background, IGNORE_INDEX}:
        ignored = " and ignore" if IGNORE_INDEX in values else ""
        return "background_only_mask", (
            f"every pixel is '{class_names[background]}'{ignored}: no object; kept (it can be a "
            f"true negative), check that its labels were not lost")
    return None


def _blank_note(info: MaskInfo, class_names: Sequence[str], background: int | None) -> str:
    """', all 'background'' when the mask holds one value (a placeholder rather than a label)."""
    if len(info.counts) != 1:
        return ""
    value = info.counts[0][0]
    name = class_names[value] if 0 <= value < len(class_names) else str(value)
    return f", and every pixel of it is '{name}'" if value in (background, IGNORE_INDEX) else ""


def class_pixel_counts(
    records: Sequence[ImageRecord], masks: Mapping[Path, MaskInfo], class_names: Sequence[str]
) -> dict[str, dict[str, int]]:
    """Per class: ``images`` whose class map holds it and its ``pixels``, over the semantic records
    with a decoded class map (values outside the class list and the ignore value are not counted)."""
    counts = {name: {"images": 0, "pixels": 0} for name in class_names}
    for path in semantic_masks(records):
        info = masks.get(path)
        if info is None or info.problem is not None:
            continue
        for value, pixels in info.counts:
            if 0 <= value < len(class_names):
                counts[class_names[value]]["images"] += 1
                counts[class_names[value]]["pixels"] += pixels
    return counts


def semantic_class_findings(
    splits: Mapping[str, Sequence[ImageRecord]],
    masks: Mapping[Path, MaskInfo],
    class_names: Sequence[str],
    train: str | None,
    file: str,
    fresh: Sequence[str] | None = None,
) -> list[Finding]:
    """Classes without a pixel in a split, from the class maps of the semantic records.

    In each other split: ``class_absent_from_split`` (info) for a class train has and it lacks (it
    cannot be scored there), ``class_missing_in_train`` (warning) for one it has and train lacks
    (the model cannot learn it). In train: ``class_absent_from_split`` for a class no split has.
    Only the ``fresh`` splits (default all; every split if train is fresh) are reported on; no
    finding when no split holds a semantic record. ``file`` (the dataset root) is what they name."""
    if train is None or train not in splits or not any(semantic_masks(r) for r in splits.values()):
        return []
    fresh = list(splits) if fresh is None or train in fresh else list(fresh)
    counts = {split: class_pixel_counts(records, masks, class_names)
              for split, records in splits.items()}
    in_train = counts[train]
    findings = []
    for split in splits:
        if split == train or split not in fresh or not semantic_masks(splits[split]):
            continue
        for name in class_names:
            here, there = counts[split][name], in_train[name]
            if there["images"] and not here["images"]:
                findings.append(Finding(
                    split, "class_absent_from_split", file,
                    f"class '{name}' is in {there['images']} {train} image"
                    f"{'s' if there['images'] != 1 else ''} ({there['pixels']} px) but in no {split} "
                    f"image: its IoU cannot be measured on {split} (mIoU leaves it out)"))
            elif here["images"] and not there["images"]:
                findings.append(Finding(
                    split, "class_missing_in_train", file,
                    f"class '{name}' has {here['pixels']} px in {here['images']} {split} image"
                    f"{'s' if here['images'] != 1 else ''} but none in {train}: the model cannot "
                    f"learn it; add training images of it, or drop it from {split}"))
    if train in fresh:
        for name in class_names:
            if not any(counts[split][name]["images"] for split in splits):
                findings.append(Finding(
                    train, "class_absent_from_split", file,
                    f"class '{name}' has no pixel in any split ({', '.join(splits)}): it is never "
                    f"learned nor scored; drop it from the class list or add images of it"))
    return findings
