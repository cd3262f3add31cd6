"""``train(cfg)``: one training run from a composed config, as a plain function that returns metrics.

Data first (it knows the classes), then the detector, the strategy and the Lightning module,
which receives everything it uses through its constructor; then fit, and the best checkpoint
scored on val and test. ``yolotl-train`` (:mod:`yolotl.cli.train`) is its Hydra shell.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from yolotl.training.callbacks import Throughput
from yolotl.training.module import DetectionModule
from yolotl.training.param_groups import count_parameters
from yolotl.training.run import clean_metrics, write_metrics
from yolotl.training.strategies import TransferStrategy, freeze_report

log = logging.getLogger("yolotl.train")


def build(cfg: DictConfig) -> tuple[pl.LightningDataModule, DetectionModule, TransferStrategy]:
    """The DataModule (set up: every split read and checked), the module and its strategy."""
    datamodule = instantiate(cfg.data, _convert_="all")
    datamodule.prepare_data()
    datamodule.setup()  # every split now: a bad test split must stop us before training, not after
    class_names = list(datamodule.class_names)
    detector = instantiate(cfg.model.detector, num_classes=len(class_names), class_names=class_names,
                           _convert_="all")
    distiller = None
    if cfg.get("distill"):
        distiller = instantiate(cfg.distill, student_class_names=list(detector.class_names), _convert_="all")
    strategy = instantiate(cfg.strategy, _convert_="all")
    train_counts = {name: counts["boxes"] for name, counts in datamodule.class_counts("train").items()}
    module = instantiate(cfg.model.module, detector=detector, distiller=distiller, strategy=strategy,
                         data_class_names=class_names, train_class_counts=train_counts, _convert_="all")
    return datamodule, module, strategy


def _loggers(cfg: DictConfig) -> list[Any]:
    loggers = []
    for name, logger_cfg in (cfg.get("logger") or {}).items():
        try:
            loggers.append(instantiate(logger_cfg))
        except (ModuleNotFoundError, InstantiationException) as err:
            if name != "tensorboard":
                raise
            log.info("TensorBoard logger skipped (%s); CSV logs are still written", err)
    return loggers


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit, pick the best checkpoint on val, evaluate it on test; returns (and writes) metrics.json."""
    pl.seed_everything(cfg.seed, workers=True)
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    datamodule, module, strategy = build(cfg)
    datamodule.write_health(run_dir)  # data_health.json + skipped.csv: every finding and action
    class_counts = datamodule.class_counts("train")
    log.info("training instances per class: %s",
             ", ".join(f"{name} {c['boxes']} ({c['images']} images)" for name, c in class_counts.items()))
    throughput = Throughput()
    # The strategy reaches the Trainer through DetectionModule.configure_callbacks.
    callbacks = [throughput, *[instantiate(c) for c in (cfg.get("callbacks") or {}).values()]]
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=_loggers(cfg), default_root_dir=str(run_dir))
    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    wall = time.perf_counter() - start
    detector = module.detector
    metrics = {
        "run_dir": str(run_dir),
        "strategy": strategy.name,
        "backbone": detector.config.backbone,
        "pretrained": str(cfg.get("pretrained")),
        "weights": detector.load_report.summary(),
        "class_transfer": detector.class_transfer.to_dict() if detector.class_transfer else None,
        "teacher": str(cfg.distill.teacher) if cfg.get("distill") else None,
        "epochs": trainer.current_epoch,
        "steps": trainer.global_step,
        "wall_time_s": round(wall, 1),
        "images_per_s": round(throughput.images_per_second, 2),
        "trainable_params": strategy.last_report.get("trainable_params"),
        "total_params": count_parameters(detector),
        "freeze": strategy.last_report or freeze_report(module, strategy.name, trainer.current_epoch),
        "data_defects": {"policy": datamodule.policy, "counts": datamodule.health.totals(),
                         "actions": datamodule.health.actions()},
        "class_counts": class_counts,
        "fold": getattr(datamodule, "fold", None),
        "train_fraction": getattr(datamodule, "train_fraction", 1.0),
        "train_images": len(datamodule.split("train").records),
        "augment": datamodule.augment.to_dict(),
        "balance": datamodule.balance,
        "class_weights": None if module.class_weights is None else [round(w, 4) for w in module.class_weights],
    }
    metrics.update(_evaluate(cfg, trainer, module, datamodule))
    path = write_metrics(run_dir, metrics)
    log.info("metrics written to %s", path)
    return metrics


def _evaluate(cfg: DictConfig, trainer: pl.Trainer, module: pl.LightningModule, datamodule: Any) -> dict:
    """Val and test metrics of the best checkpoint (EMA weights when EMA ran), on a clean Trainer."""
    checkpoint = getattr(trainer.checkpoint_callback, "best_model_path", "") or None
    evaluator = pl.Trainer(
        accelerator=cfg.trainer.get("accelerator", "auto"),
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=cfg.trainer.get("limit_val_batches"),
        limit_test_batches=cfg.trainer.get("limit_test_batches"),
    )
    result: dict[str, Any] = {"checkpoint": checkpoint or "last weights"}
    result["val"] = clean_metrics(evaluator.validate(module, datamodule=datamodule, ckpt_path=checkpoint)[0], "val")
    if not cfg.get("test_after_fit"):
        return result
    if not getattr(datamodule, "has_test_split", True):
        log.warning("the dataset has no test split: reporting val metrics only")
        return result
    result["test"] = clean_metrics(evaluator.test(module, datamodule=datamodule, ckpt_path=checkpoint)[0], "test")
    return result
