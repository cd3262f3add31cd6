"""Small settings objects of the DataModule, one per concern, each a config node of its own under ``data``:
how the dataset is read (``data.reading``), how batches are loaded (``data.loader``), which images train and
how often (``data.selection``), and what the health check does with what it finds (``data.checks``).

Each takes its fields as keyword arguments, or is given as a plain mapping of them (:meth:`of`), so a
notebook can write ``loader={"num_workers": 0}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from yolotl.errors import ConfigError

T = TypeVar("T")


def _of(cls: type[T], value: Any, name: str) -> T:
    """``value`` as a ``cls``: None (the defaults), a mapping of its fields, or one already."""
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    if isinstance(value, Mapping):
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(value) - known)
        if unknown:
            raise ConfigError(f"{name} has no setting {unknown}; its settings are {sorted(known)}")
        return cls(**value)
    raise ConfigError(f"{name} must be a {cls.__name__} or a mapping of its settings, got {value!r}")


@dataclass(frozen=True)
class ReadSettings:
    """How the dataset is read: its class names (when its files do not say them, or to fix their order),
    the split names, VOC's image and annotation folders (None: found among common names) and the
    settings of the built-in ``synthetic`` dataset (written to ``root`` before it is read)."""

    class_names: list[str] | None = None
    train_split: str = "train"
    val_split: str = "val"
    test_split: str | None = "test"
    image_dir: str | None = None
    annotation_dir: str | None = None
    synthetic: Mapping[str, Any] | None = None

    @classmethod
    def of(cls, value: Any) -> ReadSettings:
        return _of(cls, value, "data.reading")


@dataclass(frozen=True)
class LoaderSettings:
    """How batches are loaded: worker processes (``"auto"``: one per spare CPU core, at most 4), pinned
    memory (``"auto"``: when a CUDA GPU is there), workers kept between epochs (None: when there are
    workers), and the decoded-image cache (``ram``, ``disk`` with ``cache_dir``, or ``none``)."""

    num_workers: int | str = "auto"
    pin_memory: bool | str = "auto"
    persistent_workers: bool | None = None
    cache: str = "ram"
    cache_dir: str | None = None

    @classmethod
    def of(cls, value: Any) -> LoaderSettings:
        return _of(cls, value, "data.loader")


@dataclass(frozen=True)
class Selection:
    """Which images train and validate, and how often a training image is drawn: fold ``fold`` of
    ``num_folds`` of the train split as val (k-fold cross-validation, stratified by class presence), a
    seeded nested ``train_fraction`` of the training images, and class-balanced sampling
    (``balance="repeat_factor"``: LVIS repeat factors below ``repeat_threshold``; None: each image once)."""

    fold: int | None = None
    num_folds: int = 5
    fold_seed: int = 0
    train_fraction: float = 1.0
    fraction_seed: int = 0
    balance: str | None = "repeat_factor"
    repeat_threshold: float = 0.1

    @classmethod
    def of(cls, value: Any) -> Selection:
        return _of(cls, value, "data.selection")


@dataclass(frozen=True)
class CheckSettings:
    """What the health check does with its findings (``policy``: ``fix`` repairs what is safe and skips the
    rest, ``strict`` stops) and where it keeps its per-image decode results across processes
    (``health_cache``: ``"auto"`` = ``<yolotl cache>/health``, a folder, or None)."""

    policy: str = "fix"
    health_cache: str | None = "auto"

    @classmethod
    def of(cls, value: Any) -> CheckSettings:
        return _of(cls, value, "data.checks")
