"""Where a semantic segmentation dataset keeps its images and masks, for three common layouts.

- ``roboflow`` (Roboflow "PNG masks" export): ``<root>/<split>/X.jpg`` beside ``X_mask.png``, and a
  ``_classes.csv`` per split folder.
- ``voc`` (Pascal VOC segmentation): ``<root>/JPEGImages/<id>.jpg``, ``<root>/SegmentationClass/<id>.png``,
  the split's ids in ``<root>/ImageSets/Segmentation/<split>.txt``.
- ``folders`` (image and mask folders side by side): ``<root>/images/<split>/X.jpg`` with
  ``<root>/masks/<split>/X.png``, or ``<root>/<split>/images`` with ``<root>/<split>/masks``.

:func:`find_layout` tells them apart from the folders present; :func:`find_split` lists one split's
(image, mask) pairs, the mask path whether or not the file is there (the reader reports a missing one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from yolotl.data.formats._common import IMAGE_SUFFIXES, SplitNotFoundError, split_aliases
from yolotl.errors import DatasetError

__all__ = ["LAYOUTS", "SemanticSplit", "find_layout", "find_split", "layout_splits"]

LAYOUTS = ("roboflow", "voc", "folders")
MASK_SUFFIX = "_mask"  # Roboflow: X.jpg -> X_mask.png
CLASSES_CSV = "_classes.csv"
_KNOWN_SPLITS = ("train", "val", "valid", "validation", "test")
_ALL_SPLIT = "all"  # VOC layout without ImageSets/Segmentation: every mask of SegmentationClass


@dataclass(frozen=True)
class SemanticSplit:
    """One split: its (image, mask) pairs, the folder or list file that defines it, ids listed
    without an image (VOC list files), masks without an image, and the folder holding the split's
    own files (where a ``_classes.csv`` may lie)."""

    layout: str
    pairs: list[tuple[Path, Path]]
    source: Path
    folder: Path
    missing_images: list[tuple[str, Path]] = field(default_factory=list)  # (id, where listed)
    orphan_masks: list[Path] = field(default_factory=list)


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()


def _is_roboflow_mask(path: Path) -> bool:
    return path.suffix.lower() == ".png" and path.stem.endswith(MASK_SUFFIX)


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def _child(folder: Path, name: str) -> Path | None:
    """The subfolder of ``folder`` named ``name`` (exact spelling first, then any case)."""
    exact = folder / name
    if exact.is_dir():
        return exact
    return next((p for p in _subfolders(folder) if p.name.lower() == name.lower()), None)


def _roboflow_folders(root: Path) -> dict[str, Path]:
    """Split folders of a Roboflow export: subfolders of ``root`` holding ``*_mask.png`` files or a
    ``_classes.csv``."""
    found = {}
    for sub in _subfolders(root):
        if (sub / CLASSES_CSV).is_file() or any(_is_roboflow_mask(p) for p in sub.iterdir()):
            found[sub.name] = sub
    return found


def _pair_folders(root: Path) -> dict[str, tuple[Path, Path]]:
    """(images, masks) folders per split: ``images/<split>`` + ``masks/<split>``, or
    ``<split>/images`` + ``<split>/masks``."""
    found: dict[str, tuple[Path, Path]] = {}
    images, masks = _child(root, "images"), _child(root, "masks")
    if images is not None and masks is not None:
        for sub in _subfolders(images):
            twin = _child(masks, sub.name)
            if twin is not None:
                found[sub.name] = (sub, twin)
    for sub in _subfolders(root):
        if sub in (images, masks) or sub.name in found:
            continue
        inner_images, inner_masks = _child(sub, "images"), _child(sub, "masks")
        if inner_images is not None and inner_masks is not None:
            found[sub.name] = (inner_images, inner_masks)
    return found


def find_layout(root: Path) -> str:
    """``voc``, ``folders`` or ``roboflow``: the layout of the dataset at ``root``; DatasetError
    naming every layout looked for (and the folders seen) when none fits."""
    if _child(root, "SegmentationClass") is not None:
        return "voc"
    if _pair_folders(root):
        return "folders"
    if _roboflow_folders(root):
        return "roboflow"
    seen = [p.name for p in _subfolders(root)]
    raise DatasetError(
        f"No semantic segmentation dataset found in {root} (folders seen: {seen}). Looked for "
        f"(a) Roboflow PNG masks: <root>/<split>/X.jpg beside X_mask.png (and _classes.csv); "
        f"(b) VOC: <root>/SegmentationClass/<id>.png with <root>/JPEGImages/<id>.jpg and "
        f"<root>/ImageSets/Segmentation/<split>.txt; (c) folder pairs: <root>/images/<split>/X.jpg "
        f"with <root>/masks/<split>/X.png, or <root>/<split>/images with <root>/<split>/masks. "
        f"Arrange the files in one of these layouts, or check data.root."
    )


def _voc_sets(root: Path) -> Path:
    """``ImageSets/Segmentation`` (any case; the standard spelling when absent)."""
    sets = _child(root, "ImageSets")
    found = _child(sets, "Segmentation") if sets is not None else None
    return found if found is not None else root / "ImageSets" / "Segmentation"


def layout_splits(root: Path, layout: str) -> list[str]:
    """Split names of the dataset at ``root`` in ``layout``, as its files spell them."""
    if layout == "voc":
        sets = _voc_sets(root)
        listed = sorted(p.stem for p in sets.glob("*.txt")) if sets.is_dir() else []
        return listed or [_ALL_SPLIT]
    folders = _roboflow_folders(root) if layout == "roboflow" else _pair_folders(root)
    known = [name for name in _KNOWN_SPLITS if name in folders]
    return known + sorted(name for name in folders if name not in known)


def find_split(root: Path, layout: str, split: str) -> SemanticSplit:
    """The (image, mask) pairs of ``split`` (any alias: val, valid, validation) in ``layout``;
    :class:`SplitNotFoundError` naming the splits that exist."""
    if layout == "voc":
        found = _voc_split(root, split)
    elif layout == "roboflow":
        folders = _roboflow_folders(root)
        name = _match(split, folders)
        found = _roboflow_split(folders[name]) if name is not None else None
    else:
        pairs = _pair_folders(root)
        name = _match(split, pairs)
        found = _folder_split(*pairs[name]) if name is not None else None
    if found is None:
        raise SplitNotFoundError(
            f"Split '{split}' not found in {root} ({layout} layout{_where(root, layout, split)}). "
            f"Splits that exist: {layout_splits(root, layout)}; pick one of them "
            f"(data.reading.train_split / val_split / test_split) or add the split."
        )
    return found


def _where(root: Path, layout: str, split: str) -> str:
    if layout == "voc":
        return f": no {_voc_sets(root) / (split + '.txt')}"
    if layout == "roboflow":
        return f": no folder {root / split} holding X_mask.png files"
    return f": no {root / 'images' / split} + {root / 'masks' / split} folders"


def _match(split: str, names: dict[str, object]) -> str | None:
    """The name in ``names`` that ``split`` or one of its aliases spells (case-insensitively)."""
    lowered = {name.lower(): name for name in names}
    for alias in split_aliases(split):
        if alias.lower() in lowered:
            return lowered[alias.lower()]
    return None


def _roboflow_split(folder: Path) -> SemanticSplit:
    """Images of a Roboflow split folder, each with its ``<stem>_mask.png``."""
    files = sorted(p for p in folder.iterdir() if p.is_file())
    images = [p for p in files if _is_image(p) and not _is_roboflow_mask(p)]
    stems = {p.stem for p in images}
    orphans = [p for p in files if _is_roboflow_mask(p) and p.stem[: -len(MASK_SUFFIX)] not in stems]
    pairs = [(p, p.with_name(p.stem + MASK_SUFFIX + ".png")) for p in images]
    return SemanticSplit("roboflow", pairs, folder, folder, orphan_masks=orphans)


def _folder_split(images: Path, masks: Path) -> SemanticSplit:
    """Images under ``images`` (recursively), each with the PNG of the same relative path and stem
    under ``masks`` (``X.png``, or ``X_mask.png`` when only that exists)."""
    found = sorted(p for p in images.rglob("*") if _is_image(p))
    pairs = []
    for image in found:
        relative = image.relative_to(images)
        mask = masks / relative.with_suffix(".png")
        roboflow_style = mask.with_name(relative.stem + MASK_SUFFIX + ".png")
        pairs.append((image, roboflow_style if not mask.is_file() and roboflow_style.is_file() else mask))
    taken = {mask for _, mask in pairs}
    orphans = [p for p in sorted(masks.rglob("*.png")) if p not in taken]
    return SemanticSplit("folders", pairs, images, masks.parent, orphan_masks=orphans)


def _voc_split(root: Path, split: str) -> SemanticSplit | None:
    """The ids of ``ImageSets/Segmentation/<split>.txt`` (or, without that folder, ``all``: every
    mask of SegmentationClass), each with ``JPEGImages/<id>.*`` and ``SegmentationClass/<id>.png``."""
    masks = _child(root, "SegmentationClass")
    assert masks is not None
    images = _child(root, "JPEGImages") or root / "JPEGImages"
    sets = _voc_sets(root)
    source = next((sets / f"{alias}.txt" for alias in split_aliases(split)
                   if (sets / f"{alias}.txt").is_file()), None)
    if source is not None:
        lines = source.read_text(encoding="utf-8").splitlines()
        ids = [line.split()[0] for line in lines if line.strip()]
    elif split == _ALL_SPLIT and not sets.is_dir():
        source = masks
        ids = sorted(p.stem for p in masks.glob("*.png"))
    else:
        return None
    by_stem: dict[str, Path] = {}
    if images.is_dir():
        for path in sorted(images.iterdir()):
            if _is_image(path):
                by_stem.setdefault(path.stem, path)
    pairs, missing = [], []
    for image_id in dict.fromkeys(ids):
        image = by_stem.get(image_id)
        if image is None:
            missing.append((image_id, source))
        else:
            pairs.append((image, masks / f"{image_id}.png"))
    return SemanticSplit("voc", pairs, source, root, missing_images=missing)
