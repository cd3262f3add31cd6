"""Where a YOLO dataset keeps things: its data.yaml, class names and per-split image folders.

Exports from Roboflow, Ultralytics and hand-made datasets disagree on paths, so resolution is
tolerant: every fallback that is taken is logged as ``resolved_path``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from yolotl.data.formats._common import (
    IMAGE_SUFFIXES,
    SplitNotFoundError,
    split_aliases,
)
from yolotl.data.findings import FindingLog
from yolotl.errors import DatasetError

_YAML_NAMES = ("data.yaml", "dataset.yaml", "data.yml", "dataset.yml")
_KNOWN_SPLITS = ("train", "val", "valid", "validation", "test")


@dataclass(frozen=True)
class YoloLayout:
    """A parsed data.yaml: the dataset root, the folder split entries are relative to, the yaml."""

    root: Path
    base: Path
    yaml_path: Path | None
    config: dict[str, Any]


def load_layout(root: Path, log: FindingLog) -> YoloLayout:
    """Find and parse data.yaml in ``root`` (or ``root`` itself if it is a yaml file)."""
    if root.is_file() and root.suffix in (".yaml", ".yml"):
        yaml_path: Path | None = root
        root = root.parent
    else:
        yaml_path = next((root / n for n in _YAML_NAMES if (root / n).is_file()), None)
    if yaml_path is None:
        return YoloLayout(root, root, None, {})
    try:
        config = yaml.safe_load(yaml_path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise DatasetError(f"Cannot parse {yaml_path} ({exc}); fix the YAML syntax.") from exc
    if not isinstance(config, dict):
        raise DatasetError(f"{yaml_path} is not a mapping; write 'names:' and split keys in it.")
    return YoloLayout(root, _base_folder(root, yaml_path, config, log), yaml_path, config)


def _base_folder(root: Path, yaml_path: Path, config: dict[str, Any], log: FindingLog) -> Path:
    """The folder split entries are relative to: the yaml's ``path:`` if it exists, else its own."""
    if not config.get("path"):
        return yaml_path.parent
    path = Path(str(config["path"])).expanduser()
    path = path if path.is_absolute() else yaml_path.parent / path
    if path.is_dir():
        return path
    log.add("resolved_path", yaml_path, f"path: '{config['path']}' does not exist; using {root}")
    return yaml_path.parent


def class_names_from_yaml(layout: YoloLayout) -> list[str] | None:
    """The ``names:`` of data.yaml as a list ordered by class id (list or {id: name} form)."""
    names = layout.config.get("names")
    if names is None:
        return None
    if isinstance(names, dict):
        try:
            by_id = {int(key): str(value) for key, value in names.items()}
        except (TypeError, ValueError) as exc:
            raise DatasetError(f"{layout.yaml_path}: names keys must be class ids 0..K-1.") from exc
        if sorted(by_id) != list(range(len(by_id))):
            raise DatasetError(
                f"{layout.yaml_path}: names ids {sorted(by_id)} are not 0..{len(by_id) - 1}; "
                f"number the classes contiguously from 0."
            )
        names = [by_id[i] for i in range(len(by_id))]
    elif not isinstance(names, list):
        raise DatasetError(f"{layout.yaml_path}: names must be a list or an {{id: name}} mapping.")
    count = layout.config.get("nc")
    if count is not None and int(count) != len(names):
        raise DatasetError(
            f"{layout.yaml_path}: nc: {count} but names has {len(names)} entries; make them agree."
        )
    return [str(name) for name in names]


def split_image_paths(layout: YoloLayout, split: str, log: FindingLog) -> list[Path]:
    """All image files of ``split``: from its data.yaml entry, or found by folder convention."""
    for alias in split_aliases(split):
        entry = layout.config.get(alias)
        if entry:
            entries = entry if isinstance(entry, list) else [entry]
            paths: list[Path] = []
            for item in entries:
                paths.extend(_images_of(_resolve_entry(layout, alias, str(item), log), layout, log))
            return paths
    found = _find_by_convention(layout, split)
    if found is None:
        raise SplitNotFoundError(
            f"Split '{split}' not found in {layout.yaml_path or layout.root}: no "
            f"'{split}:' entry and no {layout.root / split / 'images'} folder. Splits that exist: "
            f"{layout_splits(layout)}; pick one of them or add the split."
        )
    source = layout.yaml_path or layout.root
    log.add("resolved_path", source, f"split '{split}' has no entry in data.yaml; using {found}")
    return _images_of(found, layout, log)


def _resolve_entry(layout: YoloLayout, alias: str, entry: str, log: FindingLog) -> Path:
    """The folder or list file a split entry names, trying fallbacks next to data.yaml in order.

    As written (absolute, or relative to the base folder), then without its ``..``/``.`` parts
    (Roboflow's ``../train/images``), then its trailing parts under the dataset folder (a Windows
    or foreign absolute path such as ``C:\\data\\trees\\valid\\images`` -> ``valid/images``),
    then ``<split>/images`` and ``images/<split>`` under every alias of the split (``val`` <->
    ``valid``). A fallback taken is logged as ``resolved_path``.
    """
    written = Path(entry).expanduser()
    parts = [p for p in entry.replace("\\", "/").split("/") if p not in ("", ".", "..")]
    parts = parts[1:] if parts and parts[0].endswith(":") else parts  # a drive letter
    if written.is_absolute():
        tried = [written]
    else:
        stripped = Path(*[p for p in written.parts if p not in ("..", ".")] or ["."])
        tried = [layout.base / written, layout.base / stripped, layout.root / stripped]
    tried += [layout.root / Path(*parts[i:]) for i in range(len(parts) - 1) if len(parts) - i >= 2]
    for name in split_aliases(alias):
        tried += [layout.root / name / "images", layout.root / "images" / name]
    for candidate in dict.fromkeys(tried):
        if candidate.exists():
            if candidate != tried[0]:
                detail = (f"'{entry}' does not resolve from {layout.base}; using {candidate} "
                          f"(found next to data.yaml)")
                log.add("resolved_path", layout.yaml_path or layout.root, f"{alias}: {detail}")
            return candidate
    raise DatasetError(
        f"{layout.yaml_path}: {alias}: '{entry}' not found; tried "
        f"{[str(p) for p in dict.fromkeys(tried)]}. Fix the '{alias}:' entry in the yaml "
        f"(a path relative to the yaml's folder, e.g. {alias}/images)."
    )


def _find_by_convention(layout: YoloLayout, split: str) -> Path | None:
    """``<root>/<split>/images`` or ``<root>/images/<split>`` under any alias of ``split``."""
    for alias in split_aliases(split):
        for base in dict.fromkeys((layout.base, layout.root)):
            for candidate in (base / alias / "images", base / "images" / alias):
                if candidate.is_dir():
                    return candidate
    return None


def layout_splits(layout: YoloLayout) -> list[str]:
    """Split names that the yaml lists or the folder layout provides."""
    names = [key for key in _KNOWN_SPLITS if layout.config.get(key)]
    for key in _KNOWN_SPLITS:
        if key not in names and _find_by_convention(layout, key) is not None:
            if not any(alias in names for alias in split_aliases(key)):
                names.append(key)
    return names


def _images_of(source: Path, layout: YoloLayout, log: FindingLog) -> list[Path]:
    """Images in a folder (recursively, sorted) or listed in a .txt file (one path a line).

    A listed image that is missing is logged as ``skipped_missing_image`` and left out.
    """
    if source.is_dir():
        return sorted(
            p for p in source.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        )
    paths = []
    for lineno, line in enumerate(source.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            found = _listed_image(source, lineno, line.strip(), layout, log)
            paths.extend([found] if found is not None else [])
    return paths


def _listed_image(
    list_file: Path, lineno: int, line: str, layout: YoloLayout, log: FindingLog
) -> Path | None:
    """Resolve one image path of a split list file (absolute, or relative to it or the base)."""
    written = Path(line).expanduser()
    candidates = [written] if written.is_absolute() else [
        list_file.parent / written, layout.base / written, layout.root / written]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    log.add("skipped_missing_image", list_file,
            f"{list_file}:{lineno}: image '{line}' is listed but missing (tried "
            f"{[str(c) for c in candidates]}); restore the image or remove the line; image skipped")
    return None


def label_path(image_path: Path) -> Path:
    """The label file of an image: the last 'images' folder swapped for 'labels', suffix .txt."""
    parts = list(image_path.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            return Path(*parts).with_suffix(".txt")
    return image_path.with_suffix(".txt")
