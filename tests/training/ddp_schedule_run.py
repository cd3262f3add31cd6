"""Two-process DDP (gloo, CPU) run through an unfreeze milestone; each rank saves its final state.

Run by tests/training/test_ddp.py as ``python ddp_schedule_run.py OUT_DIR``; Lightning's
``strategy="ddp"`` starts the second rank by running this script again.
"""

import sys
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.strategies import DDPStrategy
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # `tests` importable in both ranks

from tests.training.conftest import IMAGE, SquaresDataset  # noqa: E402
from yolotl import DetectionModule, LossWeights, TransferStrategy, WarmupCosine, adamw, create_detector  # noqa: E402
from yolotl.data import collate_detections  # noqa: E402


class SaveRankState(pl.Callback):
    def __init__(self, out: Path, start: dict) -> None:
        self.out = out
        self.start = start
        self.trainable = {}

    def on_train_epoch_start(self, trainer, pl_module):
        self.trainable[trainer.current_epoch] = sorted(
            n for n, p in pl_module.detector.named_parameters() if p.requires_grad)

    def on_train_end(self, trainer, pl_module):
        detector = pl_module.detector
        frozen_buffers = [f"{m}.{b}" for m in detector.pinned_norms for b in ("running_mean", "running_var")]
        torch.save({"state": detector.state_dict(), "params": dict(detector.named_parameters()),
                    "start": self.start, "frozen_buffers": frozen_buffers, "trainable": self.trainable,
                    "groups": [(g["name"], g["lr_mult"], len(g["params"])) for g in trainer.optimizers[0].param_groups]},
                   self.out / f"rank{trainer.global_rank}.pt")


def main() -> None:
    out = Path(sys.argv[1])
    pl.seed_everything(0)
    detector = create_detector("efficientnet_lite0", num_classes=2, pretrained=False, image_size=IMAGE, neck_width=16)
    strategy = TransferStrategy(freeze=["backbone"], backbone_lr_mult=0.5,
                                schedule=[{"epoch": 1, "unfreeze": ["stage:-1", "stage:-2"], "lr_mult": 0.2}])
    module = DetectionModule(detector, optimizer=adamw(lr=1e-2), schedule=WarmupCosine(warmup_epochs=0), loss=LossWeights(classes=None), strategy=strategy)
    trainer = pl.Trainer(
        accelerator="cpu", devices=2, strategy=DDPStrategy(process_group_backend="gloo",
                                                           find_unused_parameters=True),
        max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
        callbacks=[SaveRankState(out, {k: v.clone() for k, v in detector.state_dict().items()})],
    )
    # different data on each rank (DistributedSampler): gradients must be averaged to stay equal
    loader = DataLoader(SquaresDataset(8), batch_size=2, shuffle=True, collate_fn=collate_detections)
    trainer.fit(module, train_dataloaders=loader)


if __name__ == "__main__":
    main()
