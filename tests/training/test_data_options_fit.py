"""A short real fit with every data option on: heavy augmentation (mosaic, mixup, multi-scale),
repeat-factor sampling and class weights (both configured by default; recipe=fixed keeps them, where
recipe=auto would turn them off on these balanced classes), RAM cache. It must run and record what it
used."""

from __future__ import annotations

import json

import pytest

import torch
from hydra import compose, initialize_config_dir

from yolotl.data.datamodule import multi_scale_size, resize_batch
from yolotl.api import config_dir, train


@pytest.mark.slow
def test_fit_with_every_data_option(tmp_path):
    overrides = [f"paths.output_dir={tmp_path}", "debug=fast", "recipe=fixed", "pretrained=false", "augment=heavy",
                 "data.augment.close_mosaic=0", "logger=csv", "data.image_size=128",
                 f"data.root={tmp_path / 'syn'}", "data.reading.synthetic.num_train=24", "data.reading.synthetic.num_val=4",
                 "data.reading.synthetic.num_test=4", "data.reading.synthetic.image_size=128", "data.batch_size=8"]
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    metrics = train(cfg)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["augment"]["mosaic"] == 1.0 and saved["augment"]["multi_scale"] == 0.25
    assert set(saved["class_counts"]) == {"circle", "square", "triangle"}
    counts = [c["boxes"] for c in saved["class_counts"].values()]
    assert sum(counts) > 0
    assert saved["balance"] == "repeat_factor"  # as configured
    assert saved["class_weights"] == [round((max(counts) / n) ** 0.5, 4) for n in counts]
    assert metrics["test"]["loss"] > 0


def test_multi_scale_sizes_and_batch_resize():
    sizes = {multi_scale_size(320, 0.25, seed=[0, step]) for step in range(200)}
    assert sizes <= set(range(224, 416 + 1, 32)) and len(sizes) >= 5
    assert multi_scale_size(320, 0.25, seed=[0, 7]) == multi_scale_size(320, 0.25, seed=[0, 7])
    images = torch.rand(2, 3, 128, 128)
    targets = [{"boxes": torch.tensor([[10.0, 20.0, 64.0, 128.0]]), "labels": torch.tensor([1])},
               {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}]
    resized, new_targets = resize_batch((images, targets), 192)
    assert resized.shape == (2, 3, 192, 192)
    assert new_targets[0]["boxes"].tolist() == [[15.0, 30.0, 96.0, 192.0]]
    assert new_targets[1]["boxes"].shape == (0, 4)
