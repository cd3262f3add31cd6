"""DetectionModule: the Lightning "bench" around a pure YoloDetector (loss, metrics, optimizers)."""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

from yolotl.errors import ConfigError, TrainingDivergedError
from yolotl.evaluation import DetectionMetrics, SemanticMetrics
from yolotl.models.checkpoint import CHECKPOINT_KEY, checkpoint_entry, load
from yolotl.models.detector import YoloDetector
from yolotl.models.head import HeadOutput
from yolotl.models.transfer import match_class_rows
from yolotl.ops import DetectionLoss, LossOutput, OneToOneLoss
from yolotl.ops.assign import TaskAlignedAssigner
from yolotl.ops.semantic import IGNORE_INDEX, SemanticLoss, semantic_loss, upsample_logits
from yolotl.training.class_weights import check_class_weights, inverse_sqrt_weights
from yolotl.training.distillation import Distiller
from yolotl.training.optimization import (
    OptimizerFactory,
    WarmupCosine,
    base_lr,
    build_optimizer,
    adamw,
)
from yolotl.training.param_groups import build_param_groups
from yolotl.training.settings import EvalSettings, LossWeights, OldClasses
from yolotl.training.strategies import TransferStrategy

log = logging.getLogger("yolotl.train")
Schedule = Callable[[torch.optim.Optimizer, int, int], Any]  # (optimizer, total steps, steps per epoch) -> scheduler


class DetectionModule(pl.LightningModule):
    """Trains a :class:`YoloDetector`: task-aligned assignment, CIoU + DFL + BCE, mAP validation.

    Built from parts, each a config node of its own (``conf/model/yolo.yaml``):

    - ``optimizer``: builds a torch optimizer from parameter groups (a partial: ``yolotl.adamw(lr=4e-3)``,
      ``functools.partial(torch.optim.SGD, lr=0.01, momentum=0.9)``; default ``adamw()``: 2e-3, decay 0.05). Every
      parameter sits in a fixed named group (part, LR multiplier from the strategy, decay / no decay).
    - ``schedule``: builds the per-step LR scheduler from the optimizer and the run's step counts
      (default :class:`~yolotl.training.optimization.WarmupCosine`).
    - ``loss``: :class:`~yolotl.training.settings.LossWeights` (terms and per-class weights).
    - ``evaluation``: :class:`~yolotl.training.settings.EvalSettings` (validation post-processing).
    - ``old_classes``: ``"frozen"``, ``"distill"`` or :class:`~yolotl.training.settings.OldClasses`: keep
      the classes a detector made with ``init_from`` + ``keep_old_classes`` knew, while it learns new ones
      (see ``_protect_old_classes``); ``None`` trains them as background where the new data does not label them.
    - ``distiller``: a :class:`~yolotl.training.distillation.Distiller` whose teacher teaches this
      detector (class and box distillation added to the loss).
    - ``strategy``: the transfer strategy; its plan (frozen parts, LR multipliers, layer-wise decay) fixes
      the parameter groups, and the module hands it to the Trainer (:meth:`configure_callbacks`).
      ``None``: everything trains at the optimizer's rate.
    - ``data_class_names``: the data's classes in label order, when they differ from the detector's
      (``keep_old_classes``): labels are mapped to detector classes by name.
    - ``train_class_counts``: training boxes per data class name, for ``loss.classes="inverse_sqrt"``:
      ``{name: boxes}``, or ``DetectionDataModule.class_counts("train")`` as it is.

    A segmenting detector (``task="segment"``) also logs ``train/mask``, ``val/mask`` and mask mAP
    (``val/mask_map``, ``val/mask_map_50``). A semantic segmenter (``task="semantic"``) trains on the targets'
    ``semantic`` class maps with cross-entropy (``loss.classes`` weights per class from the training pixels,
    the ignore value left out) plus ``loss.dice`` x soft Dice, and logs ``val/miou``, ``val/pixel_acc`` and
    ``val/iou/<class>`` (:class:`~yolotl.evaluation.SemanticMetrics`); distillation and old-class modes are
    detection settings and are refused for it. What the module uses comes in through the constructor; the
    Trainer is asked only for the run's step counts, when the optimizer is configured.
    """

    def __init__(
        self,
        detector: YoloDetector,
        optimizer: OptimizerFactory | None = None,
        schedule: Schedule | None = None,
        loss: LossWeights | None = None,
        evaluation: EvalSettings | None = None,
        old_classes: str | OldClasses | None = None,
        distiller: Distiller | None = None,
        strategy: TransferStrategy | None = None,
        data_class_names: Sequence[str] | None = None,
        train_class_counts: Mapping[str, int | Mapping[str, int]] | None = None,
    ) -> None:
        super().__init__()
        loss = loss if loss is not None else LossWeights()
        check_class_weights(loss.classes, detector.num_classes)
        if strategy is not None and not isinstance(strategy, TransferStrategy):
            raise ConfigError(f"strategy must be a TransferStrategy (yolotl.Finetune(), ...), got {type(strategy).__name__}")
        self.detector = detector
        self.distiller = distiller
        self.strategy = strategy
        self.optimizer_factory = optimizer if optimizer is not None else adamw()
        self.schedule = schedule if schedule is not None else WarmupCosine()
        self.loss_weights = loss
        self.evaluation = evaluation if evaluation is not None else EvalSettings()
        self.old_classes = OldClasses.of(old_classes)
        if detector.semantic and (distiller is not None or OldClasses.of(old_classes).mode is not None):
            raise ConfigError("distill and model.module.old_classes are detection settings; a task=semantic "
                              "model trains without them (distill=none, model.module.old_classes.mode=null)")
        self.loss = None if detector.semantic else _detection_loss(detector, loss)
        self.val_metrics = _metrics(detector)
        self.test_metrics = _metrics(detector)
        self._loss_names = ("ce", "dice") if detector.semantic else (
            ("box", "cls", "dfl", "mask") if detector.segments else ("box", "cls", "dfl"))
        self._label_map = self._make_label_map(list(data_class_names or []))
        if detector.semantic and self._label_map is not None:
            raise ConfigError(f"a task=semantic model takes the data's classes in the data's order; this one has "
                              f"{detector.class_names}, the data {list(data_class_names or [])}: build it from the "
                              "data's class_names")
        self._data_class_names = list(data_class_names or [])
        self.class_weights = self._resolve_class_weights(loss.classes, train_class_counts)
        if self.loss is not None:
            self.loss.set_class_weights(self.class_weights)
        # a semantic segmenter's cross-entropy weights, built once (moved with the module, not saved)
        weights = torch.tensor(self.class_weights) if detector.semantic and self.class_weights else None
        self.register_buffer("_pixel_class_weights", weights, persistent=False)
        self._frozen_rows: list[tuple[torch.nn.Parameter, torch.Tensor, torch.Tensor]] = []
        self._protect_old_classes()
        # For the loggers' record (hparams.yaml): plain values only; the parts themselves are not saved.
        self.save_hyperparameters({"optimizer": _describe(self.optimizer_factory), "schedule": _describe(self.schedule),
                                   "loss": _describe(loss), "evaluation": _describe(self.evaluation),
                                   "old_classes": _describe(self.old_classes)}, logger=True)

    def configure_callbacks(self) -> list[pl.Callback]:
        """The strategy is this module's: the Trainer gets it from here (replacing one of its type)."""
        return [self.strategy] if self.strategy is not None else []

    def setup(self, stage: str) -> None:
        if stage == "fit" and self.class_weights is None and self.loss_weights.classes is not None:
            log.warning("class weights '%s' need the training class counts (train_class_counts=, e.g. "
                        "DetectionDataModule.class_counts('train')); training with unweighted classes "
                        "(LossWeights(classes=None) silences this).", self.loss_weights.classes)

    def _resolve_class_weights(self, weights: str | list[float] | None,
                               train_counts: Mapping[str, Any] | None) -> list[float] | None:
        """``class_weights`` as one number per detector class (None: unweighted)."""
        if weights is None:
            return None
        if not isinstance(weights, str):
            return [float(w) for w in weights]
        if train_counts is None:
            return None  # said once, when a fit starts (setup)
        names = list(self._data_class_names or self.detector.class_names)
        unknown = sorted(set(train_counts) - set(names))
        if unknown:
            raise ConfigError(f"train_class_counts has classes {unknown} that are not the data's classes {names}")
        counts = [0] * self.detector.num_classes  # classes the data lacks: none seen
        for data_label, name in enumerate(names):
            model_label = data_label if self._label_map is None else int(self._label_map[data_label])
            count = train_counts.get(name, 0)
            unit = "pixels" if self.detector.semantic else "boxes"
            counts[model_label] = int(count[unit] if isinstance(count, Mapping) else count)
        resolved = inverse_sqrt_weights(counts)
        shown = self.detector.class_names or [str(i) for i in range(len(resolved))]
        term = "cross-entropy" if self.detector.semantic else "positive BCE term"
        log.info("class weights (%s): %s", term, ", ".join(f"{n} {w:.2f}" for n, w in zip(shown, resolved)))
        return resolved

    # ---- classes of the data vs classes of the detector ----------------------------------

    def _make_label_map(self, data_names: list[str]) -> torch.Tensor | None:
        """Data label -> detector class, by name, when the detector has other classes (keep_old_classes)."""
        if not data_names or data_names == self.detector.class_names:
            return None
        transfer = self.detector.class_transfer
        rows = match_class_rows(data_names, self.detector.class_names, transfer.class_map if transfer else None)
        missing = [n for i, n in enumerate(data_names) if i not in rows]
        if missing:
            raise ConfigError(f"the data's classes {missing} (of {data_names}) are not among the detector's classes "
                              f"{self.detector.class_names}; build the detector from this data's class_names")
        label_map = torch.tensor([rows[i] for i in range(len(data_names))], dtype=torch.long)
        log.info("data classes -> detector classes: %s",
                 ", ".join(f"{n}->{self.detector.class_names[int(i)]}" for n, i in zip(data_names, label_map)))
        return label_map

    def _map_targets(self, targets: list[dict]) -> list[dict]:
        if self._label_map is None:
            return targets

        mapping = self._label_map.to(targets[0]["labels"].device) if targets else self._label_map
        return [{**t, "labels": mapping[t["labels"]]} for t in targets]

    def _protect_old_classes(self) -> None:
        """``old_classes``: keep the classes a detector knew (``init_from`` + ``keep_old_classes``) while it
        learns new ones on images that do not label them. ``frozen``: their class rows stay byte-identical
        and their BCE is off (unlabelled is not background); ``distill``: their BCE is off and the
        frozen source detector teaches their logits and the boxes where it sees objects."""
        mode = self.old_classes.mode
        transfer = self.detector.class_transfer
        old = list(transfer.old_only) if transfer is not None else []
        if not old:
            if mode is not None:
                raise ConfigError(f"old_classes={mode} needs a detector built with init_from=<checkpoint> and "
                                  "keep_old_classes=true that keeps classes this data does not label")
            return
        indices = [self.detector.class_names.index(n) for n in old]
        if mode is None:
            log.warning("old classes %s have no labels in this data and are trained as background (they will be "
                        "forgotten); model.module.old_classes=frozen or distill keeps them", old)
            return
        self.loss.set_ignored_classes(indices)
        if mode == "frozen":
            rows = torch.tensor(indices, dtype=torch.long)
            for branch in self.detector.head.class_branches():
                for param in (branch[-1].weight, branch[-1].bias):
                    self._frozen_rows.append((param, rows, param.detach()[rows].clone()))
        elif self.distiller is None:
            self.distiller = Distiller(transfer.source, self.detector.class_names, classes=old,
                                       cls_weight=self.old_classes.distill_weight,
                                       box_weight=self.old_classes.distill_weight)
        log.info("old classes %s: %s", old, "class rows frozen, left out of the BCE" if mode == "frozen"
                 else f"distilled from {transfer.source}, left out of the BCE")

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        super().optimizer_step(*args, **kwargs)
        if self._frozen_rows:  # the optimizer (weight decay, momentum) moved them: put them back
            with torch.no_grad():  # here, before any callback (EMA) sees the step's weights
                for param, rows, values in self._frozen_rows:
                    param[rows.to(param.device)] = values.to(param.device, param.dtype)

    # ---- steps ---------------------------------------------------------------------------

    def forward(self, images: torch.Tensor) -> HeadOutput:
        return self.detector(images)

    def _losses(self, batch: tuple[torch.Tensor, list[dict]], scored_only: bool = False) -> tuple[HeadOutput, LossOutput]:
        """Head outputs and losses; ``scored_only`` (val/test) leaves out the objects evaluation ignores
        (``iscrowd``: crowd regions, VOC difficult objects), so the val loss counts what mAP counts."""
        images, targets = batch
        if self.detector.semantic:
            outputs = self.detector(images)
            return outputs, self._semantic_loss(outputs.logits, _class_maps(targets))
        if scored_only:
            targets = [_scored(t) for t in targets]
        outputs = self.detector(images, aux=self.detector.nms_free)
        if self.detector.nms_free:
            losses = self.loss(outputs.box_maps, outputs.cls_maps, self.detector.strides, self._map_targets(targets),
                               outputs.aux_box_maps, outputs.aux_cls_maps)
        else:
            losses = self.loss(outputs.box_maps, outputs.cls_maps, self.detector.strides,
                               self._map_targets(targets), outputs.coef_maps, outputs.protos)
        return outputs, losses

    def training_step(self, batch: tuple[torch.Tensor, list[dict]], batch_idx: int) -> torch.Tensor:
        outputs, losses = self._losses(batch)
        size = len(batch[0])
        total = losses.total
        if self.distiller is not None:
            # an NMS-free student learns the teacher's dense scores in its one-to-many branch
            dense = outputs._replace(box_maps=outputs.aux_box_maps, cls_maps=outputs.aux_cls_maps) \
                if self.detector.nms_free else outputs
            distilled = self.distiller(batch[0], dense)
            total = total + distilled["kd_cls"] + distilled["kd_box"]
            for name, value in distilled.items():
                self.log(f"train/{name}", value.detach(), on_step=False, on_epoch=True, batch_size=size)
        if not bool(torch.isfinite(total.detach())):
            parts = ", ".join(f"{name} {float(getattr(losses, name)):.4g}" for name in self._loss_names)
            raise TrainingDivergedError(
                f"the training loss became {float(total):.4g} at epoch {self.current_epoch}, step "
                f"{self.global_step} ({parts}); lower model.module.optimizer.lr (now {self._base_lr()}), keep "
                "trainer.gradient_clip_val on, or check the data for broken boxes (yolotl-check-data)"
            )
        self.log("train/loss", total, prog_bar=True, on_step=True, on_epoch=True, batch_size=size)
        for name in self._loss_names:
            self.log(f"train/{name}", getattr(losses, name), on_step=False, on_epoch=True, batch_size=size)
        return total

    def validation_step(self, batch: tuple[torch.Tensor, list[dict]], batch_idx: int) -> None:
        self._eval_step(batch, "val", self.val_metrics)

    def test_step(self, batch: tuple[torch.Tensor, list[dict]], batch_idx: int) -> None:
        self._eval_step(batch, "test", self.test_metrics)

    def _eval_step(self, batch: tuple[torch.Tensor, list[dict]], stage: str,
                   metrics: DetectionMetrics | SemanticMetrics) -> None:
        outputs, losses = self._losses(batch, scored_only=True)
        size = len(batch[0])
        self.log(f"{stage}/loss", losses.total, on_epoch=True, batch_size=size, sync_dist=True)
        for name in self._loss_names:
            self.log(f"{stage}/{name}", getattr(losses, name), on_epoch=True, batch_size=size, sync_dist=True)
        if self.detector.semantic:  # scored at the input size; the letterbox padding is ignore-valued
            truth = _class_maps(batch[1])
            metrics.update(upsample_logits(outputs.logits, truth.shape[-2:]).argmax(1), truth)
            return
        preds = self._postprocess(outputs)
        metrics.update(preds, self._map_targets(batch[1]))

    def _semantic_loss(self, logits: torch.Tensor, truth: torch.Tensor) -> SemanticLoss:
        return semantic_loss(logits, truth, IGNORE_INDEX, self._pixel_class_weights, self.loss_weights.dice)

    def _postprocess(self, outputs: HeadOutput) -> list[dict[str, torch.Tensor]]:
        return self.detector.postprocess_outputs(
            outputs,
            score_threshold=self.evaluation.score_threshold,
            iou_threshold=self.evaluation.iou_threshold,
            max_detections=self.evaluation.max_detections,
        )

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val", self.val_metrics)

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test", self.test_metrics)

    def _log_metrics(self, stage: str, metrics: DetectionMetrics | SemanticMetrics) -> None:
        values = metrics.compute()
        metrics.reset()
        if self.detector.semantic:  # a class absent from the split has no IoU (NaN): not logged
            self.log_dict({f"{stage}/{k}": float(v) for k, v in values.items() if k != "miou" and math.isfinite(v)})
            self.log(f"{stage}/miou", float(values["miou"]) if math.isfinite(values["miou"]) else 0.0, prog_bar=True)
            return
        shown = {f"{stage}/map_50"}
        self.log_dict({f"{stage}/{k}": v for k, v in values.items() if f"{stage}/{k}" not in shown})
        self.log(f"{stage}/map_50", values["map_50"], prog_bar=True)

    def configure_optimizers(self) -> dict[str, Any]:
        strategy = self.strategy
        groups = build_param_groups(
            self.detector,
            lr_mults=strategy.lr_multipliers(self.detector) if strategy is not None else None,
            layer_decay=strategy.layer_decay if strategy is not None else None,
            unfreeze_epochs=strategy.milestone_of(self.detector) if strategy is not None else None,
        )
        optimizer = build_optimizer(self.optimizer_factory, groups)
        total = max(1, int(self.trainer.estimated_stepping_batches))  # once, not per step
        schedule = self.schedule(optimizer, total, self._steps_per_epoch(total))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def _base_lr(self) -> str:
        optimizers = self.trainer.optimizers
        return f"{base_lr(optimizers[0]):g}" if optimizers else "?"

    def _steps_per_epoch(self, total: int) -> int:
        """Optimizer steps in one epoch, from the train loader's length (right under ``max_steps`` too)."""
        batches = self.trainer.num_training_batches  # set by estimated_stepping_batches
        if math.isfinite(batches) and batches > 0:
            return max(1, math.ceil(batches / self.trainer.accumulate_grad_batches))
        return max(1, total // max(1, self.trainer.max_epochs or 1))  # an iterable dataset without length

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Enough to rebuild the detector without Hydra or training code: see yolotl.load.
        checkpoint[CHECKPOINT_KEY] = checkpoint_entry(self.detector)

    @staticmethod
    def detector_from_checkpoint(path: str | Path, map_location: str = "cpu") -> YoloDetector:
        """The trained detector (a ``YoloDetector``) of a yolotl checkpoint: :func:`yolotl.models.checkpoint.load`
        (``yolotl.load`` wraps it for prediction)."""
        return load(path, map_location)


def _metrics(detector: YoloDetector) -> DetectionMetrics | SemanticMetrics:
    """The validation/test scorer of the detector's task."""
    if detector.semantic:
        return SemanticMetrics(detector.class_names, ignore_index=IGNORE_INDEX)
    return DetectionMetrics(detector.class_names, masks=detector.segments)


def _class_maps(targets: list[dict]) -> torch.Tensor:
    """The targets' ``semantic`` class maps stacked to ``[B, H, W]`` (a semantic model needs data loaded with
    ``masks="semantic"``)."""
    if not targets or "semantic" not in targets[0]:
        raise ConfigError("a task=semantic model needs class maps in its targets: load the data with "
                          "DetectionDataModule(masks='semantic') (yolotl-train sets it from model.detector.task)")
    return torch.stack([t["semantic"] for t in targets]).long()


def _scored(target: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The target without the objects evaluation ignores (its ``iscrowd`` flags), for the val loss."""
    ignored = target.get("iscrowd")
    if ignored is None or not bool(ignored.any()):
        return target
    keep = ~ignored.bool()
    return {**target, **{k: target[k][keep] for k in ("boxes", "labels", "iscrowd", "masks") if k in target}}


def _describe(part: Any) -> Any:
    """A part as plain values for hparams.yaml: a dataclass's fields, a partial's target and keywords."""
    if dataclasses.is_dataclass(part) and not isinstance(part, type):
        return {"_target_": type(part).__name__, **dataclasses.asdict(part)}
    if isinstance(part, functools.partial):
        return {"_target_": getattr(part.func, "__qualname__", repr(part.func)),
                **{k: list(v) if isinstance(v, tuple) else v for k, v in part.keywords.items()}}
    return repr(part)


def _detection_loss(detector: YoloDetector, weights: LossWeights) -> DetectionLoss | OneToOneLoss:
    """The detector's loss: TOOD-assigned CIoU + BCE + DFL; for an NMS-free head, that loss one-to-one on its
    predictions plus one-to-many on its auxiliary branch (:class:`~yolotl.ops.OneToOneLoss`)."""
    def plain(assigner: TaskAlignedAssigner | None = None) -> DetectionLoss:
        return DetectionLoss(detector.num_classes, detector.config.reg_max, weights.box, weights.cls, weights.dfl,
                             assigner=assigner, mask_weight=weights.mask)

    if detector.nms_free:
        return OneToOneLoss(one_to_one=plain(TaskAlignedAssigner(topk=1)), one_to_many=plain())
    return plain()
