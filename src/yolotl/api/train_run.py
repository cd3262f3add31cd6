"""``train(cfg)``: one training run from a composed config, as a plain function that returns metrics.

Data first (it knows the classes), then the detector, the strategy and the Lightning module,
which receives everything it uses through its constructor; then fit, and the best checkpoint
scored on val and test. ``yolotl-train`` (:mod:`yolotl.cli.train`) is its Hydra shell.

What it tells: a start summary (data, classes, weights, strategy, image size, epochs, device, run
folder), one line per validation and the final scores, all at INFO on the ``yolotl.train`` and
``yolotl.training`` loggers (``logging.basicConfig(level=logging.INFO)`` shows them in a
notebook). A run that fails before its first checkpoint removes its folder; one that fails later
gets a ``FAILED`` file in it (:func:`yolotl.training.run.discard_failed_run`).
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from yolotl.api.moved_keys import check_moved_keys
from yolotl.api.recipe import apply_recipe
from yolotl.api.run_summary import start_summary
from yolotl.api.trainer import build_trainer
from yolotl.errors import ConfigError
from yolotl.evaluation.score_line import score_line
from yolotl.training.callbacks import Throughput, TimeLimitPerJob, ValidationLog, stop_reason
from yolotl.training.module import DetectionModule
from yolotl.training.param_groups import count_parameters
from yolotl.training.run import FAILED_FILE, clean_metrics, discard_failed_run, write_metrics
from yolotl.training.strategies import TransferStrategy, freeze_report

log = logging.getLogger("yolotl.train")
RECIPE_FILE = "recipe.json"  # recipe=auto: the profile and the choices, for metrics.json of a resumed run


def build(cfg: DictConfig) -> tuple[pl.LightningDataModule, DetectionModule, TransferStrategy]:
    """The DataModule (set up: every split read and checked), the module and its strategy."""
    check_moved_keys(cfg)
    task = cfg.model.detector.get("task", "detect")
    # the task decides the targets: boxes, boxes and instance masks, or class maps
    datamodule = instantiate(cfg.data, masks="semantic" if task == "semantic" else task == "segment", _convert_="all")
    datamodule.prepare_data()
    datamodule.setup()  # every split now: a bad test split must stop us before training, not after
    class_names = list(datamodule.class_names)
    detector = instantiate(cfg.model.detector, num_classes=len(class_names), class_names=class_names,
                           _convert_="all")
    distiller = None
    if cfg.get("distill"):
        distiller = instantiate(cfg.distill, student_class_names=list(detector.class_names), _convert_="all")
    strategy = instantiate(cfg.strategy, _convert_="all")
    module = instantiate(cfg.model.module, detector=detector, distiller=distiller, strategy=strategy,
                         data_class_names=class_names, train_class_counts=datamodule.class_counts("train"),
                         _convert_="all")
    return datamodule, module, strategy


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit, pick the best checkpoint on val, evaluate it on test; returns (and writes) metrics.json.

    Under DDP (``trainer.devices=2 trainer.strategy=ddp``) every process calls it; rank 0 evaluates
    and writes, the others return ``{"run_dir": ..., "rank": r}``.

    On failure the run folder (``cfg.paths.output_dir``) is removed when it holds nothing but what
    the run wrote before its first checkpoint, else marked with a ``FAILED`` file; the error is
    raised again.
    """
    run_dir = Path(cfg.paths.output_dir)
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        with _quiet_third_party():
            return _train(cfg, run_dir)
    except BaseException as err:
        if isinstance(err, SystemExit) and not err.code:
            raise
        outcome = discard_failed_run(run_dir, err, created=created)
        if outcome == "removed":
            log.info("run failed before its first checkpoint: removed its folder %s", run_dir)
        elif outcome == "marked":
            log.info("run failed: %s marks %s as failed", run_dir / "FAILED", run_dir)
            if (run_dir / "checkpoints" / "last.ckpt").is_file():
                log.info("its checkpoints are kept: once the cause is fixed, yolotl-train resume=%s continues it",
                         run_dir)
        raise


@contextmanager
def _quiet_third_party() -> Iterator[None]:
    """For the run only: faster_coco_eval's per-evaluation summary (about 40 INFO lines per
    validation, the numbers are in metrics.csv) off the log."""
    coco = logging.getLogger("faster_coco_eval")
    level = coco.level
    coco.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        coco.setLevel(level)


def _train(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    pl.seed_everything(cfg.seed, workers=True)
    # Under DDP every process runs this function; only rank 0 writes run files. With Lightning's
    # subprocess launcher rank 0 builds (and health-checks the data, filling the health cache) before
    # the other ranks start, so they read the check's results instead of decoding every image again.
    first = _rank_zero()
    resume = cfg.get("resume")  # a checkpoint of this run (yolotl.api.resume): its config.yaml stays
    recipe = _recipe(cfg, run_dir, resume, first)
    _resolve_monitor(cfg)
    if first and not resume:
        OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    datamodule, module, strategy = build(cfg)
    if first:
        datamodule.write_health(run_dir)  # data_health.json + skipped.csv: every finding and action
    class_counts = datamodule.class_counts("train")
    throughput = Throughput()
    # The strategy reaches the Trainer through DetectionModule.configure_callbacks.
    callbacks = [throughput, ValidationLog(monitor=str(cfg.monitor)), TimeLimitPerJob(),
                 *[instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]]
    trainer = build_trainer(cfg, run_dir, callbacks)
    if trainer.global_rank == 0:
        for line in start_summary(cfg, datamodule, module, strategy, trainer, run_dir):
            log.info(line)
    if resume and trainer.global_rank == 0:
        log.info("resuming %s from %s", run_dir, resume)
    start = time.perf_counter()
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume or None)
    except SystemExit:
        if trainer.interrupted:  # Ctrl-C: Lightning shut the fit down and exits with 1
            log.warning("interrupted in epoch %d (Ctrl-C)", trainer.current_epoch + 1)
        raise
    except (MemoryError, RuntimeError) as err:  # torch.OutOfMemoryError is a RuntimeError
        if not _out_of_memory(err):
            raise
        raise ConfigError(_memory_advice(cfg, err)) from err
    wall = time.perf_counter() - start
    rank = trainer.global_rank
    stopped_by = stop_reason(trainer)
    if stopped_by == "max_time" and rank == 0:
        log.warning("stopped by trainer.max_time after epoch %d of %s: the run is not finished; "
                    "yolotl-train resume=%s trains on (with the whole max_time again)",
                    trainer.current_epoch, trainer.max_epochs, run_dir)
    _leave_process_group()
    if rank != 0:  # rank 0 alone scores the best checkpoint and writes metrics.json
        return {"run_dir": str(run_dir), "rank": rank}
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
        "stopped_by": stopped_by,
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
        "recipe": recipe,
    }
    metrics.update(_evaluate(cfg, trainer, module, datamodule))
    (run_dir / FAILED_FILE).unlink(missing_ok=True)  # a resumed run that failed before has now finished
    path = write_metrics(run_dir, metrics)
    log.info("metrics written to %s", path)
    return metrics


def _recipe(cfg: DictConfig, run_dir: Path, resume: Any, first: bool) -> dict[str, Any]:
    """recipe=auto chooses settings from the data into ``cfg`` (before config.yaml is written) and keeps
    its choices in recipe.json; a resumed run has them in its config.yaml already, and re-reads the file."""
    path = run_dir / RECIPE_FILE
    if resume:
        return json.loads(path.read_text()) if path.is_file() else {"mode": str(cfg.get("recipe", {}).get("mode", "fixed"))}
    recipe = apply_recipe(cfg)
    if first and recipe["mode"] != "fixed":
        path.write_text(json.dumps(recipe, indent=1))
    return recipe


def _resolve_monitor(cfg: DictConfig) -> None:
    """``monitor: auto`` -> the task's headline validation score (``val/miou`` for a semantic segmenter, else
    ``val/map``), written into ``cfg`` before config.yaml, so the callbacks that interpolate it agree."""
    if cfg.get("monitor", "auto") in (None, "auto"):
        semantic = cfg.model.detector.get("task", "detect") == "semantic"
        with open_dict(cfg):  # a resumed run's config.yaml from before this key has none
            cfg.monitor = "val/miou" if semantic else "val/map"


def _out_of_memory(err: BaseException) -> bool:
    text = str(err).lower()
    return isinstance(err, MemoryError) or "out of memory" in text or "can't allocate memory" in text


def _memory_advice(cfg: DictConfig, err: BaseException) -> str:
    """One line for an out-of-memory stop: what ran out, at which batch and image size, what to lower."""
    batch, size = int(cfg.data.batch_size), int(cfg.data.image_size)
    return (f"out of memory at data.batch_size={batch}, data.image_size={size} ({type(err).__name__}: "
            f"{str(err).splitlines()[0][:120] if str(err) else 'no details'}); lower data.batch_size (e.g. "
            f"{max(1, batch // 2)}, with trainer.accumulate_grad_batches=2 for the same effective batch) or "
            f"data.image_size (e.g. {max(32, size - 96) // 32 * 32}); checkpoints so far are kept "
            "(resume=<run folder>)")


def _leave_process_group() -> None:
    """After a DDP fit: end the process group, so that rank 0's evaluation (one process, all the data)
    does not wait for ranks that have finished (torchmetrics syncs whenever a group exists)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _rank_zero() -> bool:
    """True in the process of global rank 0, and in any process before a distributed launch."""
    from yolotl.training.lightning_internals import global_rank

    return global_rank() == 0


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
    if cfg.trainer.get("limit_val_batches") == 0:  # validation switched off: nothing picked, nothing scored
        log.info("trainer.limit_val_batches=0: no validation, so no best checkpoint and no val/test scores; "
                 "the last weights are in checkpoints/last.ckpt")
        return result
    with warnings.catch_warnings():
        # The evaluator leaves the training callbacks out on purpose (EMA must not swap weights in).
        warnings.filterwarnings("ignore", message=r"Be aware that when using `ckpt_path`, callbacks")
        result["val"] = clean_metrics(
            evaluator.validate(module, datamodule=datamodule, ckpt_path=checkpoint, verbose=False)[0], "val")
        log.info("best checkpoint (%s): %s", Path(checkpoint).name if checkpoint else "last weights",
                 score_line("val", result["val"]))
        if not cfg.get("test_after_fit"):
            return result
        if not getattr(datamodule, "has_test_split", True):
            log.warning("the dataset has no test split: reporting val metrics only")
            return result
        result["test"] = clean_metrics(
            evaluator.test(module, datamodule=datamodule, ckpt_path=checkpoint, verbose=False)[0], "test")
        log.info("best checkpoint (%s): %s", Path(checkpoint).name if checkpoint else "last weights",
                 score_line("test", result["test"]))
    return result
