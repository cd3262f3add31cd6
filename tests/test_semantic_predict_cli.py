"""yolotl-predict and yolotl-export with a semantic segmenter: overlays, label maps, the predictions JSON and
the ONNX file from the command line, and one clear line for what it does not do (video, classes=)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from tests.inference.helpers import SEMANTIC_CLASSES, lively_segmenter, save_checkpoint


def _cli(script: str, *args: str) -> subprocess.CompletedProcess:
    executable = Path(sys.executable).parent / script
    return subprocess.run([str(executable), *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    return save_checkpoint(lively_segmenter(64), tmp_path_factory.mktemp("semantic") / "best.ckpt")


def _images(folder: Path) -> dict[str, tuple[int, int]]:
    folder.mkdir()
    rng = np.random.default_rng(0)
    shapes = {"street": (60, 140), "park": (100, 70)}
    for name, (h, w) in shapes.items():
        small = rng.integers(0, 255, (h // 10, w // 10, 3), dtype=np.uint8)
        Image.fromarray(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)).save(folder / f"{name}.jpg")
    return shapes


def test_predict_cli_writes_overlays_label_maps_and_class_shares(checkpoint, tmp_path):
    shapes = _images(tmp_path / "photos")
    out = tmp_path / "out"
    done = _cli("yolotl-predict", f"ckpt={checkpoint}", f"source={tmp_path / 'photos'}", f"output_dir={out}")
    assert done.returncode == 0, done.stderr
    assert f"2 images, class maps -> {out}/predictions.json, label maps in {out}/labels" in done.stdout
    saved = json.loads((out / "predictions.json").read_text())
    assert saved["task"] == "semantic" and saved["class_names"] == SEMANTIC_CLASSES
    for name, (h, w) in shapes.items():
        label_map = Image.open(out / "labels" / f"{name}.png")
        assert label_map.mode == "L" and label_map.size == (w, h)
        assert int(np.asarray(label_map).max()) < len(SEMANTIC_CLASSES)
        assert cv2.imread(str(out / f"{name}.jpg")).shape == (h, w, 3)
        entry = next(e for e in saved["images"] if e["image"].endswith(f"{name}.jpg"))
        assert (entry["height"], entry["width"]) == (h, w)
        counts = np.bincount(np.asarray(label_map).ravel(), minlength=len(SEMANTIC_CLASSES))
        assert {c["class_name"]: c["pixels"] for c in entry["classes"]} == {
            SEMANTIC_CLASSES[i]: int(n) for i, n in enumerate(counts) if n}


def test_predict_cli_refuses_a_video_and_a_class_filter_in_one_line(checkpoint, tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"never opened")
    done = _cli("yolotl-predict", f"ckpt={checkpoint}", f"source={video}", f"output_dir={tmp_path / 'out'}")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"yolotl: error: {checkpoint} is a semantic segmenter (task=semantic), which predicts images for now, not "
        f"a video (source={video}); pass an image, a folder or a glob of images (extract a video's frames first)"]
    _images(tmp_path / "photos")
    done = _cli("yolotl-predict", f"ckpt={checkpoint}", f"source={tmp_path / 'photos'}", "classes=[road]",
                f"output_dir={tmp_path / 'out'}")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "classes=['road']: a detection option" in done.stderr
    assert not (tmp_path / "out").exists()


def test_export_cli_writes_the_logits_graph_and_its_parity_line(checkpoint):
    pytest.importorskip("onnxruntime")
    done = _cli("yolotl-export", f"ckpt={checkpoint}")
    assert done.returncode == 0, done.stderr
    onnx_file = Path(checkpoint).with_suffix(".onnx")
    assert f"wrote {onnx_file}" in done.stdout
    assert "same class on 100.00% of pixels (ONNX Runtime vs PyTorch)" in done.stdout
