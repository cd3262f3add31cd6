"""yolotl-eval on a semantic segmenter: the real CLI on a tiny Roboflow PNG-mask dataset, a random-init
checkpoint; the files of the report, and scores equal to SemanticMetrics run directly on the same batches."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import yolotl
from yolotl import ConfigError, create_detector
from yolotl.evaluation import SemanticMetrics
from yolotl.models import checkpoint
from yolotl.ops.semantic import upsample_logits

CLASSES = ["background", "red", "blue", "unused"]  # "unused" is in no class map
SIZE = 64


def _cli(script: str, *args: str) -> subprocess.CompletedProcess:
    executable = Path(sys.executable).parent / script
    return subprocess.run([str(executable), *args], capture_output=True, text=True, timeout=300)


def _write_split(root: Path, split: str, count: int, seed: int) -> None:
    """``X.jpg`` beside ``X_mask.png`` (two rectangles; the top rows ignored, 255) and ``_classes.csv``."""
    rng = np.random.default_rng(seed)
    folder = root / split
    folder.mkdir(parents=True)
    rows = "".join(f"{i}, {name}\n" for i, name in enumerate(CLASSES))
    (folder / "_classes.csv").write_text("Pixel Value, Class\n" + rows)
    for i in range(count):
        height, width = (48, 80) if i % 2 else (72, 56)  # both sides of square: the letterbox pads each
        image = rng.integers(90, 140, (height, width, 3)).astype(np.uint8)
        mask = np.zeros((height, width), np.uint8)
        x, y = (int(v) for v in rng.integers(0, 12, 2))
        for label, colour, (y1, y2, x1, x2) in ((1, (220, 40, 40), (6, 26, 4, 30)), (2, (40, 40, 220), (28, 44, 20, 44))):
            mask[y + y1 : y + y2, x + x1 : x + x2] = label
            image[y + y1 : y + y2, x + x1 : x + x2] = colour
        mask[:2] = 255
        Image.fromarray(image).save(folder / f"img{i}.jpg", quality=95)
        Image.fromarray(mask).save(folder / f"img{i}_mask.png")


@pytest.fixture(scope="module")
def semantic_setup(tmp_path_factory) -> tuple[Path, Path]:
    """(dataset root, random-init task=semantic checkpoint)."""
    base = tmp_path_factory.mktemp("semantic_eval")
    root = base / "shapes"
    for split, count, seed in (("train", 2, 0), ("valid", 2, 1), ("test", 5, 2)):
        _write_split(root, split, count, seed)
    torch.manual_seed(0)
    detector = create_detector("mobilenetv3_small_100", class_names=CLASSES, pretrained=False, image_size=SIZE,
                               neck_width=16, task="semantic")
    path = base / "semantic.ckpt"
    torch.save({"state_dict": {f"detector.{k}": v for k, v in detector.state_dict().items()},
                "yolotl": checkpoint.checkpoint_entry(detector)}, path)
    return root, path


def _data_module(root: Path) -> yolotl.DetectionDataModule:
    return yolotl.DetectionDataModule(root=str(root), format="semantic", masks="semantic", image_size=SIZE, batch_size=2,
                                      reading={"val_split": "valid"}, loader={"num_workers": 0})


def _direct_scores(root: Path, ckpt: Path) -> SemanticMetrics:
    """SemanticMetrics over the test split's letterboxed batches, the model called by hand as training's
    validation does (argmax of the upsampled logits: a softmax first can tie near-equal float32 logits)."""
    detector = checkpoint.load(ckpt)
    metric = SemanticMetrics(CLASSES)
    datamodule = _data_module(root)
    datamodule.prepare_data()
    datamodule.setup("test")
    with torch.inference_mode():
        for images, targets in datamodule.test_dataloader():
            preds = upsample_logits(detector(images).logits, images.shape[-2:]).argmax(1)
            metric.update(preds, torch.stack([t["semantic"] for t in targets]))
    return metric


def test_eval_cli_writes_the_semantic_report_and_scores_like_semantic_metrics(semantic_setup, tmp_path):
    root, ckpt = semantic_setup
    out = tmp_path / "eval"
    done = _cli("yolotl-eval", f"ckpt={ckpt}", "data=semantic", f"data.root={root}", "data.reading.val_split=valid",
                f"data.image_size={SIZE}", "data.loader.num_workers=0", f"output_dir={out}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "test mIoU " in done.stdout and "pixel acc " in done.stdout
    assert all(any(line.split()[:1] == [name] for line in done.stdout.splitlines()) for name in CLASSES)

    saved = json.loads((out / "metrics.json").read_text())
    metric = _direct_scores(root, ckpt)
    expected = metric.compute()
    assert saved["task"] == "semantic" and saved["split"] == "test" and saved["metrics"]["images"] == 5
    for key, value in expected.items():
        assert (saved["metrics"][key] is None) if math.isnan(value) else saved["metrics"][key] == pytest.approx(value)
    matrix = metric.confusion_matrix()
    assert saved["confusion_matrix"] == matrix.tolist()
    assert [saved["classes"][name]["pixels"] for name in CLASSES] == matrix.sum(1).tolist()
    assert saved["classes"]["unused"]["pixels"] == 0
    assert saved["metrics"]["labelled_pixels"] == int(matrix.sum()) > 0

    report = out / "report"
    assert saved["files"]["report"] == str(report / "report.md")
    for name in ("report.md", "confusion_matrix.csv", "confusion_matrix_normalized.csv", "per_image.csv",
                 "confusion_matrix.png", "overlays.png"):
        assert (report / name).stat().st_size > 0, name
    assert len((report / "per_image.csv").read_text().splitlines()) == 1 + 5


def test_evaluate_asks_for_semantic_targets_and_a_known_split(semantic_setup, tmp_path):
    root, ckpt = semantic_setup
    synthetic = yolotl.DetectionDataModule(root=str(tmp_path / "syn"), format="synthetic", image_size=SIZE,
                                           reading={"synthetic": {"num_train": 2, "num_val": 2, "num_test": 2,
                                                                  "image_size": SIZE}})
    with pytest.raises(ConfigError, match="masks='semantic'"):
        yolotl.evaluate(ckpt, data=synthetic, output_dir=tmp_path / "out")
    with pytest.raises(yolotl.DatasetError, match="unknown split"):
        yolotl.evaluate(ckpt, data=_data_module(root), split="holdout", output_dir=tmp_path / "out")
    result = yolotl.evaluate(ckpt, data=_data_module(root), split="val", report=False,
                             output_dir=tmp_path / "val")
    assert result["metrics"]["images"] == 2 and not (tmp_path / "val" / "report").exists()


def test_an_exported_semantic_model_is_scored_like_its_checkpoint(semantic_setup, tmp_path):
    from yolotl.inference.onnx_export import export_onnx

    root, ckpt = semantic_setup
    onnx_path = export_onnx(checkpoint.load(ckpt), tmp_path / "semantic.onnx")
    exported = yolotl.evaluate(onnx_path, data=_data_module(root), report=False, output_dir=tmp_path / "onnx")
    torch_run = yolotl.evaluate(ckpt, data=_data_module(root), report=False, output_dir=tmp_path / "ckpt")
    difference = (torch.tensor(exported["confusion_matrix"]) - torch.tensor(torch_run["confusion_matrix"])).abs()
    # a random-init model's logits are nearly equal, so a few float-rounding flips are allowed
    assert int(difference.sum()) <= 0.01 * torch_run["metrics"]["labelled_pixels"]
    assert exported["metrics"]["miou"] == pytest.approx(torch_run["metrics"]["miou"], abs=0.01)
    assert exported["checkpoint"].endswith("semantic.onnx")
