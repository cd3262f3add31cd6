"""Training entry point: ``train(cfg)`` is a plain, testable function; ``main()`` is the Hydra shell."""

from __future__ import annotations

import logging
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import lightning.pytorch as pl
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from yolotl.errors import YolotlError
from yolotl.training.callbacks import Throughput
from yolotl.training.param_groups import count_parameters
from yolotl.training.run import clean_metrics, write_metrics
from yolotl.training.strategies import TransferStrategy, freeze_report

log = logging.getLogger("yolotl.train")


def build(cfg: DictConfig) -> tuple[pl.LightningDataModule, pl.LightningModule, TransferStrategy]:
    """Data first (it knows the classes), then the detector and module, then the strategy."""
    datamodule = instantiate(cfg.data, _convert_="all")
    datamodule.prepare_data()
    datamodule.setup()  # every split now: a bad test split must stop us before training, not after
    detector = instantiate(
        cfg.model.detector, num_classes=datamodule.num_classes, class_names=list(datamodule.class_names), _convert_="all"
    )
    distiller = None
    if cfg.get("distill"):
        distiller = instantiate(cfg.distill, student_class_names=list(detector.class_names), _convert_="all")
    module = instantiate(cfg.model.module, detector=detector, distiller=distiller, _convert_="all")
    strategy = instantiate(cfg.strategy, _convert_="all")
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
    callbacks = [strategy, throughput, *[instantiate(c) for c in (cfg.get("callbacks") or {}).values()]]
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=_loggers(cfg), default_root_dir=str(run_dir))
    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    wall = time.perf_counter() - start
    metrics = {
        "run_dir": str(run_dir),
        "strategy": strategy.name,
        "backbone": module.detector.config.backbone,
        "pretrained": str(cfg.get("pretrained")),
        "weights": module.detector.load_report.summary(),
        "class_transfer": module.detector.class_transfer.to_dict() if module.detector.class_transfer else None,
        "teacher": str(cfg.distill.teacher) if cfg.get("distill") else None,
        "epochs": trainer.current_epoch,
        "steps": trainer.global_step,
        "wall_time_s": round(wall, 1),
        "images_per_s": round(throughput.images_per_second, 2),
        "trainable_params": strategy.last_report.get("trainable_params"),
        "total_params": count_parameters(module.detector),
        "freeze": strategy.last_report or freeze_report(module, strategy.name, trainer.current_epoch),
        "data_defects": {"policy": datamodule.policy, "counts": datamodule.health.totals(),
                         "actions": datamodule.health.actions()},
        "class_counts": class_counts,
        "fold": getattr(datamodule, "fold", None),
        "train_fraction": getattr(datamodule, "train_fraction", 1.0),
        "train_images": len(datamodule.split("train").records),
        "augment": datamodule.augment.to_dict(),
        "balance": datamodule.balance,
        "class_weights": _class_weights(module),
    }
    metrics.update(_evaluate(cfg, trainer, module, datamodule))
    path = write_metrics(run_dir, metrics)
    log.info("metrics written to %s", path)
    return metrics


def _class_weights(module: pl.LightningModule) -> list[float] | None:
    """The per-class loss weights the fit used (None: unweighted)."""
    weights = getattr(getattr(module, "loss", None), "class_weights", None)
    return None if weights is None else [round(float(w), 4) for w in weights]


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


def _report(metrics: dict[str, Any]) -> None:
    final = metrics.get("test") or metrics.get("val") or {}
    split = "test" if metrics.get("test") else "val"
    print(f"\nrun folder: {metrics['run_dir']}")
    print(
        f"{split} mAP50 = {final.get('map_50', float('nan')):.4f}, "
        f"mAP50-95 = {final.get('map', float('nan')):.4f} ({metrics['strategy']}, {metrics['backbone']}, "
        f"{metrics['epochs']} epochs, {metrics['wall_time_s']} s)"
    )


def run_cli(cfg: DictConfig) -> float:
    """Hydra task: train, print the run folder and final mAP; user errors exit with one clear line."""
    # Frozen norm layers are in eval mode on purpose (see TimmBackbone.freeze).
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
    with cli_errors():
        metrics = train(cfg)
    _report(metrics)
    return float(metrics.get("val", {}).get("map", 0.0))


@contextmanager
def cli_errors() -> Iterator[None]:
    """For console scripts: a user error (YolotlError, also inside Hydra instantiation) prints one
    ``yolotl: error: ...`` line and exits with status 2 instead of a traceback."""
    try:
        yield
    except YolotlError as err:
        _fail(err)
    except InstantiationException as err:
        if isinstance(err.__cause__, YolotlError):
            _fail(err.__cause__)
        raise


def _fail(err: Exception) -> NoReturn:
    print(f"yolotl: error: {err}", file=sys.stderr)
    raise SystemExit(2)


def config_dir() -> str:
    """The packaged configs (wheel) or the repository's conf/ (source checkout, editable install)."""
    packaged = Path(__file__).resolve().parent / "conf"
    if (packaged / "train.yaml").is_file():
        return str(packaged)
    source = Path(__file__).resolve().parents[2] / "conf"
    if (source / "train.yaml").is_file():
        return str(source)
    raise FileNotFoundError(f"yolotl configs not found in {packaged} or {source}; reinstall yolotl")


def main() -> None:
    """Console script ``yolotl-train``."""
    import hydra

    hydra.main(config_path=config_dir(), config_name="train", version_base="1.3")(run_cli)()


if __name__ == "__main__":
    main()
