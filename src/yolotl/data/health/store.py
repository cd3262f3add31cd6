"""The health check's decode results, kept on disk: each image is decoded and hashed once.

Decoding every image is what makes a dataset check slow; everything else it does (boxes, identical
images, statistics) is quick arithmetic on the records and these results. :class:`ImageInfoStore`
keeps one :class:`~yolotl.data.health.images.ImageInfo` per image file (and one
:class:`~yolotl.data.health.semantic.MaskInfo` per class map of semantic data) in a JSON file per dataset
(``<yolotl cache>/health/<hash of the dataset root>.json``, see
:func:`yolotl.data.cache.cache_root`), keyed by the file's resolved path, size and modification
time: a changed file (size or mtime) is decoded again, the others are not. A second ``setup()`` in
a new process, every DDP rank after the first, and a later evaluation read it instead of decoding.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from yolotl.data.health.images import ImageInfo
from yolotl.data.health.semantic import MaskInfo

__all__ = ["ImageInfoStore", "default_store_dir"]

_LOG = logging.getLogger("yolotl.data")
_VERSION = 1  # bump when ImageInfo or what the check derives from a decode changes

Stamp = tuple[int, int]  # (size in bytes, mtime in ns)
Info = ImageInfo | MaskInfo
# The store's sections: decoded images, decoded class maps (semantic segmentation).
_SECTIONS = {"images": ImageInfo, "masks": MaskInfo}


def default_store_dir() -> Path:
    """``<yolotl cache>/health`` (``$YOLOTL_CACHE``, ``$XDG_CACHE_HOME/yolotl`` or ``~/.cache/yolotl``)."""
    from yolotl.data.cache import cache_root

    return cache_root() / "health"


class ImageInfoStore:
    """Decode results of the images of the dataset at ``root``, in ``folder`` (read lazily)."""

    def __init__(self, folder: str | Path, root: str | Path) -> None:
        key = str(Path(root).expanduser().resolve())
        self.file = Path(folder).expanduser() / f"{hashlib.sha1(key.encode()).hexdigest()[:20]}.json"
        self._sections: dict[str, dict[str, dict[str, Any]]] | None = None
        self._dirty = False

    def lookup(
        self, paths: Iterable[Path], section: str = "images"
    ) -> tuple[dict[Path, Info], dict[Path, Stamp | None]]:
        """(infos found for unchanged files, {path: stamp} of the rest: None if it cannot be stat'ed).
        ``section``: ``images`` (:class:`ImageInfo`) or ``masks`` (:class:`MaskInfo`)."""
        entries = self._load(section)
        hits: dict[Path, Info] = {}
        misses: dict[Path, Stamp | None] = {}
        for path in paths:
            stamp = _stamp(path)
            entry = entries.get(_key(path)) if stamp is not None else None
            if entry is not None and (entry["size"], entry["mtime_ns"]) == stamp:
                hits[path] = _SECTIONS[section](path, **entry["info"])
            else:
                misses[path] = stamp
        return hits, misses

    def update(self, infos: Mapping[Path, Info], stamps: Mapping[Path, Stamp | None],
               section: str = "images") -> None:
        """Keep ``infos`` (of ``section``), each under the stamp its file had before it was decoded."""
        entries = self._load(section)
        for path, info in infos.items():
            stamp = stamps.get(path)
            if stamp is None:
                continue  # a missing file: nothing to key it by
            fields = info.to_fields() if isinstance(info, MaskInfo) else dataclasses.asdict(info)
            fields.pop("path", None)
            entries[_key(path)] = {"size": stamp[0], "mtime_ns": stamp[1], "info": fields}
            self._dirty = True

    def save(self) -> None:
        """Write the file if anything changed (atomically: a reader never sees half of it)."""
        if not self._dirty or self._sections is None:
            return
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.file.with_name(f"{self.file.stem}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"version": _VERSION, **self._sections}), encoding="utf-8")
            tmp.replace(self.file)
        except OSError as exc:  # a read-only cache folder costs speed, never the run
            _LOG.warning("could not write the data health cache %s (%s); the next run decodes the "
                         "images again", self.file, exc)
            return
        self._dirty = False

    def _load(self, section: str) -> dict[str, dict[str, Any]]:
        if section not in _SECTIONS:
            raise ValueError(f"unknown health store section {section!r}; use one of {list(_SECTIONS)}")
        if self._sections is None:
            self._sections = {}
            try:
                data = json.loads(self.file.read_text(encoding="utf-8"))
            except FileNotFoundError:
                data = None
            except (OSError, ValueError) as exc:
                _LOG.warning("ignoring the unreadable data health cache %s (%s)", self.file, exc)
                data = None
            if isinstance(data, dict) and data.get("version") == _VERSION:
                self._sections = {name: dict(data.get(name) or {}) for name in _SECTIONS}
        return self._sections.setdefault(section, {})


def _key(path: Path) -> str:
    return str(Path(path).resolve())


def _stamp(path: Path) -> Stamp | None:
    try:
        stat = Path(path).stat()
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns
