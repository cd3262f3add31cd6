"""Training a segmenting detector: polygon records through the dataset (masks=True), mask loss, mask mAP,
every strategy."""

from pathlib import Path

import cv2
import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from yolotl.data import DetectionDataset, ImageRecord
from yolotl.data.dataset import collate_detections
from yolotl.data.segments import Segment
from yolotl.models import create_detector
from yolotl.training import DetectionModule, EndToEnd, FeatureExtract, Finetune, LossWeights, WarmupCosine, adamw

SIZE = 64


def _records(folder: Path, count: int = 4) -> list[ImageRecord]:
    """Non-square images with 2-3 filled ellipses (class 0 red, class 1 blue) on grey noise; the last
    one without objects (the dataset gives it no ``masks``)."""
    rng = np.random.default_rng(0)
    records = []
    for i in range(count):
        width, height = 80, 64
        image = rng.integers(90, 140, (height, width, 3), dtype=np.uint8)
        polygons, labels = [], []
        for _ in range(int(rng.integers(2, 4)) if i < count - 1 else 0):
            radius = rng.uniform(8, 14)
            cx, cy = rng.uniform(radius, width - radius), rng.uniform(radius, height - radius)
            angles = np.linspace(0, 2 * np.pi, 16, endpoint=False)
            polygon = np.stack([cx + radius * np.cos(angles), cy + radius * 0.7 * np.sin(angles)], 1)
            label = int(rng.integers(0, 2))
            cv2.fillPoly(image, [np.round(polygon).astype(np.int32)], [(230, 40, 40), (40, 40, 230)][label])
            polygons.append(polygon)
            labels.append(label)
        path = folder / f"{i}.png"
        cv2.imwrite(str(path), image[..., ::-1])
        segments = tuple(Segment(polygons=(p,)) for p in polygons)
        boxes = np.array([s.bbox() for s in segments], np.float32).reshape(-1, 4)
        records.append(ImageRecord(path, boxes, np.array(labels, np.int64), width, height,
                                   segments=segments or None))
    return records


@pytest.fixture(scope="module")
def seg_data(tmp_path_factory) -> DetectionDataset:
    return DetectionDataset(_records(tmp_path_factory.mktemp("seg")), image_size=SIZE, masks=True)


def _loader(dataset: DetectionDataset, batch_size: int = 4) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_detections)


def _module(**kwargs) -> DetectionModule:
    pl.seed_everything(0)
    detector = create_detector("mobilenetv3_small_100", class_names=["red", "blue"], pretrained=False,
                               image_size=SIZE, neck_width=16, task="segment", num_protos=8)
    return DetectionModule(detector, optimizer=adamw(lr=1e-2), schedule=WarmupCosine(warmup_epochs=0), loss=LossWeights(classes=None), **kwargs)


def _trainer(**kwargs) -> pl.Trainer:
    return pl.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, num_sanity_val_steps=0, **kwargs)


def _train_mask_loss(module: DetectionModule, batch) -> float:
    module.train()  # batch statistics, as in training (a few steps leave the running ones far behind)
    with torch.no_grad():
        return float(module._losses(batch)[1].mask)


@pytest.mark.slow
def test_the_mask_loss_falls_and_validation_scores_masks(seg_data) -> None:
    seg_loader = _loader(seg_data)
    module = _module()
    batch = next(iter(seg_loader))  # the whole data set: one batch
    before = _train_mask_loss(module, batch)
    trainer = _trainer(max_epochs=4, limit_val_batches=1, check_val_every_n_epoch=4)
    trainer.fit(module, train_dataloaders=seg_loader, val_dataloaders=seg_loader)
    assert _train_mask_loss(module, batch) < 0.8 * before
    logged = trainer.callback_metrics
    for key in ("train/mask", "val/mask", "val/mask_map", "val/mask_map_50", "val/map_50"):
        assert key in logged, key
    assert 0.0 <= float(logged["val/mask_map_50"]) <= 1.0


@pytest.mark.parametrize("strategy", [FeatureExtract(), Finetune(freeze_stages=2), EndToEnd()],
                         ids=["feature_extract", "finetune", "end_to_end"])
@pytest.mark.slow
def test_every_strategy_trains_the_mask_branch(seg_data, strategy) -> None:
    module = _module(strategy=strategy)
    before = {n: p.detach().clone() for n, p in module.detector.named_parameters() if "proto" in n or "coef" in n}
    _trainer(max_steps=1, limit_val_batches=0).fit(module, train_dataloaders=_loader(seg_data, 2))
    params = dict(module.detector.named_parameters())
    assert all(params[n].requires_grad for n in before)  # the mask branch is the head's: it always trains
    assert any(not torch.equal(params[n], value) for n, value in before.items())
