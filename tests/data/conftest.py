"""Fixtures for the data tests: tiny YOLO / VOC / COCO datasets written to tmp_path."""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from .helpers import write_image


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own yolotl cache (the data health cache lives there): tests neither read
    a user's cache nor leave files in it."""
    folder = tmp_path / "yolotl-cache"
    monkeypatch.setenv("YOLOTL_CACHE", str(folder))
    return folder


def _seed(*parts: str) -> int:
    """A seed per image, so no two generated images are identical (that would be leakage)."""
    return zlib.crc32("/".join(parts).encode())


@pytest.fixture
def make_yolo(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``make_yolo({"train": {"a.jpg": "0 0.5 0.5 0.2 0.2"}}, yaml={...})``.

    Each split maps image file names to label text (None: no label file). Images are 100x80.
    Folders are ``<root>/<split>/images`` and ``labels``; ``yaml`` (dict) is written as data.yaml
    (default: names a/b/c and ``<split>: <split>/images`` for every split).
    """

    def build(splits: dict[str, dict[str, str | None]], yaml_config: dict | None = None,
              size: tuple[int, int] = (100, 80)) -> Path:
        root = tmp_path / "yolo_ds"
        for split, files in splits.items():
            for name, label in files.items():
                write_image(root / split / "images" / name, *size, seed=_seed(split, name))
                (root / split / "labels").mkdir(parents=True, exist_ok=True)
                if label is not None:
                    (root / split / "labels" / Path(name).with_suffix(".txt")).write_text(label)
        if yaml_config is None:
            yaml_config = {s: f"{s}/images" for s in splits} | {"names": ["a", "b", "c"]}
        root.mkdir(parents=True, exist_ok=True)
        (root / "data.yaml").write_text(yaml.safe_dump(yaml_config))
        return root

    return build


@pytest.fixture
def make_voc(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``make_voc({"train": {"id1": xml_text}, ...})`` -> root; images are 100x80 jpg."""

    def build(splits: dict[str, dict[str, str]], size: tuple[int, int] = (100, 80)) -> Path:
        root = tmp_path / "voc_ds"
        main = root / "ImageSets" / "Main"
        main.mkdir(parents=True, exist_ok=True)
        (root / "Annotations").mkdir(parents=True, exist_ok=True)
        for split, items in splits.items():
            (main / f"{split}.txt").write_text("".join(f"{i}\n" for i in items))
            for image_id, xml in items.items():
                (root / "Annotations" / f"{image_id}.xml").write_text(xml)
                write_image(root / "JPEGImages" / f"{image_id}.jpg", *size, seed=_seed(image_id))
        return root

    return build


@pytest.fixture
def make_coco(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``make_coco("train", coco_dict, layout="instances"|"roboflow")`` -> root.

    Writes the JSON and a 100x80 PNG for every listed image (unless its name is in ``skip``).
    """

    def build(split: str, data: dict, layout: str = "instances",
              skip: tuple[str, ...] = ()) -> Path:
        root = tmp_path / "coco_ds"
        if layout == "instances":
            json_path = root / "annotations" / f"instances_{split}.json"
        else:
            json_path = root / split / "_annotations.coco.json"
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(data))
        for image in data.get("images", []):
            if image["file_name"] not in skip:
                write_image(root / split / image["file_name"], 100, 80,
                            seed=_seed(split, image["file_name"]))
        return root

    return build
