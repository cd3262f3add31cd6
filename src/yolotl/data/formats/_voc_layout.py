"""Where a Pascal VOC dataset keeps things: its image and annotation folders and its splits.

The standard layout is ``JPEGImages/``, ``Annotations/`` and ``ImageSets/Main/<split>.txt``.
Datasets in the wild rename the folders (``images/``, ``annotations/``, ...), split by folder
(``annotations/train/`` + ``images/train/``, or Roboflow's ``train/`` holding images and XMLs
side by side) or have no split at all (LabelImg's two folders). :func:`find_split` resolves one
split under any of these; every message about a layout it cannot read names the folders it saw
and the option to set (``data.reading.image_dir``, ``data.reading.annotation_dir``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from yolotl.data.formats._common import IMAGE_SUFFIXES, SplitNotFoundError, split_aliases
from yolotl.errors import DatasetError

__all__ = ["ALL_SPLIT", "VocSplit", "find_split", "layout_folders", "split_names", "xml_files"]

_LOG = logging.getLogger("yolotl.data")

# Folder names of the two halves, in order of preference, matched case-insensitively.
IMAGE_DIR_NAMES = ("JPEGImages", "images", "imgs", "img")
ANNOTATION_DIR_NAMES = ("Annotations", "annotations", "xml", "xmls", "labels")
# The split name that reads every XML of the annotation folder (a dataset without splits).
ALL_SPLIT = "all"

_logged: set[tuple[str, str, str]] = set()  # layouts already logged (once per process)


@dataclass(frozen=True)
class VocSplit:
    """One split: image ids, the folder of their ``<id>.xml`` files, the folder of their images and
    what defines the split (an ``ImageSets/Main`` list file or a folder)."""

    ids: list[str]
    annotation_dir: Path
    image_dir: Path
    source: Path


def xml_files(folder: Path) -> list[Path]:
    """The ``*.xml`` files directly in ``folder`` (sorted; none if it is not a folder)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() == ".xml" and p.is_file())


def _has_images(folder: Path) -> bool:
    return folder.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir())


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def _named(folder: Path, names: tuple[str, ...]) -> list[Path]:
    """Subfolders of ``folder`` whose name is one of ``names`` (any case), in ``names`` order."""
    by_name: dict[str, list[Path]] = {}
    for sub in _subfolders(folder):
        by_name.setdefault(sub.name.lower(), []).append(sub)
    found: list[Path] = []
    for name in names:
        exact = [p for p in by_name.get(name.lower(), []) if p.name == name]
        rest = [p for p in by_name.get(name.lower(), []) if p.name != name]
        found += [p for p in exact + rest if p not in found]
    return found


def _holds(folder: Path, test) -> bool:  # noqa: ANN001 - a predicate over a folder
    """``test`` holds for ``folder`` or for one of its subfolders (a split folder)."""
    return test(folder) or any(test(sub) for sub in _subfolders(folder))


def _given_folder(root: Path, given: str | Path, option: str) -> Path:
    path = Path(given).expanduser()
    path = path if path.is_absolute() else root / path
    if not path.is_dir():
        raise DatasetError(
            f"data.{option}={str(given)!r}: {path} is not a folder. Folders in {root}: "
            f"{_seen(root)}; set data.{option} to one of them (relative to data.root) or null "
            f"(found automatically)."
        )
    return path


def _seen(folder: Path) -> list[str]:
    return [p.name for p in _subfolders(folder)]


def layout_folders(
    root: Path, image_dir: str | Path | None = None, annotation_dir: str | Path | None = None
) -> tuple[Path | None, Path | None]:
    """(image folder, annotation folder) of the dataset at ``root``: the given ones (relative to
    ``root`` or absolute), else the first common name that holds images / XML files, directly or
    in split subfolders (else ``root`` itself, if it holds them directly). None where nothing
    fits."""
    images = (_given_folder(root, image_dir, "image_dir") if image_dir is not None else
              next((p for p in _named(root, IMAGE_DIR_NAMES) if _holds(p, _has_images)),
                   root if _has_images(root) else None))
    annotations = (_given_folder(root, annotation_dir, "annotation_dir")
                   if annotation_dir is not None else
                   next((p for p in _named(root, ANNOTATION_DIR_NAMES)
                         if _holds(p, lambda f: bool(xml_files(f)))),
                        root if xml_files(root) else None))
    if images is not None and annotations is not None and (image_dir, annotation_dir) == (None, None):
        _log_layout(root, images, annotations)
    return images, annotations


def _log_layout(root: Path, images: Path, annotations: Path) -> None:
    """Say which folders were chosen, once per dataset, unless they are the standard ones."""
    if (images.name, annotations.name) == ("JPEGImages", "Annotations"):
        return
    key = (str(root), str(images), str(annotations))
    if key not in _logged:
        _logged.add(key)
        _LOG.info("VOC layout: images in %s, annotations in %s (found automatically; set "
                  "data.reading.image_dir / data.reading.annotation_dir to choose others)", images, annotations)


def _image_sets(root: Path) -> Path:
    """``ImageSets/Main`` (any case; the standard spelling when absent)."""
    for sets in _named(root, ("ImageSets",)):
        for main in _named(sets, ("Main",)):
            return main
    return root / "ImageSets" / "Main"


def listed_splits(main: Path) -> list[str]:
    """Split names with a list file in ImageSets/Main (per-class files like 'cat_train' skipped)."""
    if not main.is_dir():
        return []
    return sorted(p.stem for p in main.glob("*.txt") if "_" not in p.stem)


def read_ids(split_file: Path) -> list[str]:
    """Image ids of a split file: the first word of each non-empty line."""
    lines = split_file.read_text(encoding="utf-8").splitlines()
    return [line.split()[0] for line in lines if line.strip()]


def _folder_splits(
    root: Path, images: Path | None, annotations: Path | None
) -> dict[str, VocSplit]:
    """Splits given as folders: ``<annotations>/<split>/*.xml`` (images in ``<images>/<split>/``
    or ``<images>/``), or ``<root>/<split>/`` holding the XMLs (beside the images, or in its own
    image and annotation folders)."""
    found: dict[str, VocSplit] = {}
    if annotations is not None:
        for sub in _subfolders(annotations):
            if xml_files(sub):
                image_dir = next(iter(_named(images, (sub.name,))), images) if images else sub
                found[sub.name] = VocSplit([], sub, image_dir, sub)
    for sub in _subfolders(root):
        if sub.name in found or sub in (images, annotations):
            continue
        if xml_files(sub) and _has_images(sub):
            found[sub.name] = VocSplit([], sub, sub, sub)
            continue
        inner_images, inner_annotations = (
            next((p for p in _named(sub, IMAGE_DIR_NAMES) if _has_images(p)), None),
            next((p for p in _named(sub, ANNOTATION_DIR_NAMES) if xml_files(p)), None))
        if inner_annotations is not None:
            found[sub.name] = VocSplit([], inner_annotations, inner_images or inner_annotations, sub)
    return {name: VocSplit([p.stem for p in xml_files(s.annotation_dir)], s.annotation_dir,
                           s.image_dir, s.source) for name, s in found.items()}


def split_names(
    root: Path, image_dir: str | Path | None = None, annotation_dir: str | Path | None = None
) -> list[str]:
    """Split names of the dataset: ImageSets/Main list files, else split folders, else ``all``
    when the annotation folder holds XML files directly."""
    listed = listed_splits(_image_sets(root))
    if listed:
        return listed
    images, annotations = layout_folders(root, image_dir, annotation_dir)
    folders = _folder_splits(root, images, annotations)
    if folders:
        return sorted(folders)
    return [ALL_SPLIT] if annotations is not None and xml_files(annotations) else []


def find_split(
    root: Path, split: str, image_dir: str | Path | None = None,
    annotation_dir: str | Path | None = None,
) -> VocSplit:
    """The ids and folders of ``split`` (any alias): from ``ImageSets/Main/<split>.txt``, else a
    split folder, else (``split="all"``, no splits defined) every XML of the annotation folder.
    Raises :class:`SplitNotFoundError` naming the folders seen and the options to set."""
    images, annotations = layout_folders(root, image_dir, annotation_dir)
    main = _image_sets(root)
    listed = listed_splits(main)
    for alias in split_aliases(split):
        if (main / f"{alias}.txt").is_file() and annotations is not None:
            return VocSplit(read_ids(main / f"{alias}.txt"), annotations, images or annotations,
                            main / f"{alias}.txt")
    folders = {} if listed else _folder_splits(root, images, annotations)
    lowered = {name.lower(): name for name in folders}
    for alias in split_aliases(split):
        if alias.lower() in lowered:
            return folders[lowered[alias.lower()]]
    if split == ALL_SPLIT and not listed and not folders and annotations is not None:
        found = xml_files(annotations)
        if found:
            return VocSplit([p.stem for p in found], annotations, images or annotations,
                            annotations)
    raise SplitNotFoundError(_not_found(root, split, images, annotations, main, listed, folders))


def _not_found(
    root: Path, split: str, images: Path | None, annotations: Path | None, main: Path,
    listed: list[str], folders: dict[str, VocSplit],
) -> str:
    """The message for a split that is not there: what was seen, and what to set."""
    if annotations is None:
        return (
            f"Split '{split}' not found: no folder of VOC XML files in {root} (folders seen: "
            f"{_seen(root)}; looked for {list(ANNOTATION_DIR_NAMES)}, any case, and split folders "
            f"inside them). Set data.reading.annotation_dir=<folder of the .xml files> (and "
            f"data.reading.image_dir=<folder of the images>) relative to data.root."
        )
    where = (f"annotations in {annotations}, images in {images}" if images is not None else
             f"annotations in {annotations}, no image folder found (set data.reading.image_dir)")
    if listed:
        return (f"Split '{split}' not found: no {main / (split + '.txt')}. Splits that exist: "
                f"{listed}; pick one of them or write the id list file ({where}).")
    if folders:
        return (f"Split '{split}' not found: no split folder '{split}' ({where}). Splits that "
                f"exist: {sorted(folders)} (folders {[str(s.source) for s in folders.values()]}); "
                f"pick one of them or add the folder.")
    return (
        f"Split '{split}' not found: {root} defines no splits ({where}; folders seen: "
        f"{_seen(root)}; no {main}). Write {main}/<split>.txt (one image id a line), put the "
        f"files in split folders ({annotations.name}/train, {annotations.name}/val), or read "
        f"every XML as one split: data.reading.train_split={ALL_SPLIT} data.reading.val_split=null data.selection.fold=0 "
        f"(validation on a fold of it)."
    )
