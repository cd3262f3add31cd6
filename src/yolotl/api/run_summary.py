"""The lines a training run starts with: data, classes, weights, strategy, schedule, device, run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from omegaconf import DictConfig

from yolotl.models.freezing import frozen_summary
from yolotl.training.module import DetectionModule
from yolotl.training.strategies import TransferStrategy


def start_summary(cfg: DictConfig, datamodule: Any, module: DetectionModule, strategy: TransferStrategy,
                  trainer: pl.Trainer, run_dir: Path) -> list[str]:
    """The lines a run starts with: data, classes, weights, strategy, schedule and device, run folder."""
    detector = module.detector
    semantic = getattr(detector, "semantic", False)
    sizes = []
    for role in ("train", "val", "test"):
        if role == "test" and not getattr(datamodule, "has_test_split", True):
            continue
        records = datamodule.split(role).records
        sizes.append(f"{role} {len(records)} images" if semantic else
                     f"{role} {len(records)} images / {sum(len(r.labels) for r in records)} boxes")
    counts = datamodule.class_counts("train")
    if semantic:  # pixel shares: a class per pixel, no boxes
        total = max(1, sum(c["pixels"] for c in counts.values()))
        classes = ", ".join(f"{name} {c['pixels'] / total:.1%}" for name, c in counts.items())
    else:
        classes = ", ".join(f"{name} {c['boxes']}" for name, c in counts.items())
    selection = []
    if getattr(datamodule, "fold", None) is not None:
        selection.append(f"fold {datamodule.fold} of {datamodule.num_folds}")
    if getattr(datamodule, "train_fraction", 1.0) < 1.0:
        selection.append(f"train fraction {datamodule.train_fraction:g}")
    epochs = cfg.trainer.get("max_epochs")
    steps = cfg.trainer.get("max_steps")
    length = plural(epochs, "epoch") + (f" (at most {steps} steps)" if steps and steps > 0 else "")
    lines = [
        f"data      {datamodule.format} at {datamodule.root}: {', '.join(sizes)}"
        + (f" ({', '.join(selection)})" if selection else ""),
        f"classes   {len(counts)}, training {'pixels' if semantic else 'boxes'}: {classes}",
        f"model     {detector.config.backbone}, {detector.load_report.summary()}",
        f"strategy  {_strategy_line(strategy, detector)}",
        f"training  {datamodule.image_size} px, batch {datamodule.batch_size}, {length}, "
        f"device {_device(trainer)}",
        f"run       {run_dir}",
    ]
    return lines


def _strategy_line(strategy: TransferStrategy, detector: Any) -> str:
    """``finetune: frozen backbone.conv_stem, backbone.blocks.0 (1.2k of 3.4M parameters); ...``"""
    frozen = strategy.frozen_at(detector, 0)
    params = dict(detector.named_parameters())
    summary = frozen_summary(detector, frozen)
    wholly, partly = summary["frozen"], summary["partly_frozen"]
    count = sum(params[n].numel() for n in frozen)
    total = sum(p.numel() for p in params.values())
    text = f"{strategy.name}: "
    if not frozen:
        text += "nothing frozen"
    else:
        text += "frozen " + ", ".join(wholly + [f"part of {label}" for label in partly])
        text += f" ({_count(count)} of {_count(total)} parameters)"
    for milestone, _names in strategy.resolve(detector).milestones:
        text += f"; epoch {milestone.epoch}: unfreeze {', '.join(milestone.unfreeze)}"
        if milestone.lr_mult is not None:
            text += f" at {milestone.lr_mult:g} x LR"
    if strategy.backbone_lr_mult != 1.0:
        text += f"; backbone LR {strategy.backbone_lr_mult:g} x"
    return text


def _count(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.1f}k" if n >= 1e3 else str(n)


def _device(trainer: pl.Trainer) -> str:
    device = trainer.strategy.root_device
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({plural(torch.get_num_threads(), 'thread')})"
    return str(device)


def plural(n: object, noun: str) -> str:
    """``1 epoch``, ``6 epochs``: the console reads as a sentence."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
