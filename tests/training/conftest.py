"""Tiny in-memory detection data and a tiny detector for fast strategy tests."""

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from yolotl.data import collate_detections
from yolotl.models import create_detector
from yolotl.training import DetectionModule, TransferStrategy, WarmupCosine, adamw

IMAGE = 64


class SquaresDataset(Dataset):
    """Bright squares on noise; fixed per index so runs are repeatable."""

    def __init__(self, length: int = 8) -> None:
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        generator = torch.Generator().manual_seed(index)
        image = torch.rand(3, IMAGE, IMAGE, generator=generator) * 0.3
        x, y = (torch.randint(0, IMAGE - 24, (2,), generator=generator)).tolist()
        image[:, y : y + 20, x : x + 20] = 0.9
        target = {
            "boxes": torch.tensor([[x, y, x + 20, y + 20]], dtype=torch.float32),
            "labels": torch.tensor([index % 2]),
        }
        return image, target


def loader() -> DataLoader:
    return DataLoader(SquaresDataset(), batch_size=4, shuffle=False, collate_fn=collate_detections)


@pytest.fixture
def make_module():
    def build(backbone: str = "efficientnet_lite0") -> DetectionModule:
        pl.seed_everything(0)
        detector = create_detector(backbone, num_classes=2, pretrained=False, image_size=IMAGE, neck_width=16)
        return DetectionModule(detector, optimizer=adamw(lr=1e-2), schedule=WarmupCosine(warmup_epochs=0))

    return build


def fit(module, callbacks, epochs: int = 2, ckpt: str | None = None, **trainer_kwargs) -> pl.Trainer:
    """Fit on the squares; a TransferStrategy among ``callbacks`` becomes the module's strategy
    (shorthand for ``DetectionModule(detector, strategy=...)``, which hands it to the Trainer)."""
    strategies = [c for c in callbacks if isinstance(c, TransferStrategy)]
    if strategies:
        (module.strategy,) = strategies
        callbacks = [c for c in callbacks if c not in strategies]
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=trainer_kwargs.pop("enable_checkpointing", False),
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=trainer_kwargs.pop("limit_val_batches", 1),
        callbacks=callbacks,
        **trainer_kwargs,
    )
    trainer.fit(module, train_dataloaders=loader(), val_dataloaders=loader(), ckpt_path=ckpt)
    return trainer
