"""Transfer strategies as data: what is frozen, the norm policy, and an unfreezing schedule.

A strategy is a plain Lightning ``Callback``, declarative: the frozen set at epoch
``e`` is a pure function of the configuration and ``e`` (``freeze`` minus everything the
milestones up to ``e`` unfroze), re-applied at every epoch start. So a run resumed from a
checkpoint in the middle of the schedule lands in exactly the state of an uninterrupted one, with
nothing to restore (Lightning issues 20340, 21901).

The optimizer never changes either: every parameter is in a parameter group from the start, each
group with its fixed learning-rate multiplier (:meth:`TransferStrategy.lr_multipliers`); frozen
parameters simply have no gradient. Unfreezing adds no group, so the optimizer and scheduler
states of a checkpoint always fit. (So nothing of Lightning's ``BaseFinetuning``, which adds
parameter groups as it unfreezes, is used.) The strategy belongs to its ``DetectionModule``
(``DetectionModule(detector, strategy=...)``), which builds its parameter groups from the plan and
hands the strategy to the Trainer through ``configure_callbacks``.

Under DDP, every parameter must be trainable when Lightning wraps the model, or DDP leaves the
frozen ones out of its gradient synchronisation for good and the ranks drift apart after an
unfreeze. So ``setup`` (before the wrap) only checks the configuration, and the freezing starts at
``on_fit_start`` (after it); DDP must then be told that some parameters get no gradient
(``find_unused_parameters=True``: ``trainer.strategy=ddp_find_unused_parameters_true``), which
``on_fit_start`` checks on the wrapped model.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback

from yolotl.errors import ConfigError
from yolotl.models.backbone import cpu_has_native_bf16
from yolotl.models.freezing import (
    apply_freeze,
    check_norm_policy,
    check_selectors,
    frozen_summary,
    resolve_norm_policy,
    select,
    select_all,
)
from yolotl.training.lightning_internals import move_callback_first, start_method
from yolotl.training.param_groups import check_layer_decay, count_parameters

log = logging.getLogger("yolotl.training")


@dataclass(frozen=True)
class Milestone:
    """From ``epoch`` on, the parameters ``unfreeze`` names train, at ``lr_mult`` x the base LR
    (``None``: the multiplier of their part, i.e. the strategy's ``backbone_lr_mult`` or 1)."""

    epoch: int
    unfreeze: tuple[str, ...]
    lr_mult: float | None = None

    @classmethod
    def parse(cls, value: Milestone | Mapping[str, Any], index: int) -> Milestone:
        if isinstance(value, Milestone):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"schedule[{index}] must be a mapping like {{epoch: 3, unfreeze: [stage:-1], "
                              f"lr_mult: 0.1}}, got {value!r}")
        unknown = set(value) - {"epoch", "unfreeze", "lr_mult"}
        if unknown:
            raise ConfigError(f"schedule[{index}] has unknown keys {sorted(unknown)}; use epoch, unfreeze, lr_mult")
        epoch = value.get("epoch")
        if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
            raise ConfigError(f"schedule[{index}].epoch must be an integer >= 0, got {epoch!r}")
        unfreeze = check_selectors(value.get("unfreeze"), f"schedule[{index}].unfreeze")
        if not unfreeze:
            raise ConfigError(f"schedule[{index}] unfreezes nothing; give unfreeze: [<part, stage or pattern>]")
        lr_mult = value.get("lr_mult")
        if lr_mult is not None and (not isinstance(lr_mult, (int, float)) or lr_mult < 0):
            raise ConfigError(f"schedule[{index}].lr_mult must be a number >= 0 or null, got {lr_mult!r}")
        return cls(epoch, tuple(unfreeze), None if lr_mult is None else float(lr_mult))


@dataclass
class _Resolved:
    frozen: set[str]
    milestones: list[tuple[Milestone, set[str]]] = field(default_factory=list)


class TransferStrategy(Callback):
    """Freeze what ``freeze`` names, unfreeze along ``schedule``, pin norms per ``norm``.

    Args:
        freeze: selectors of what starts frozen (see :mod:`yolotl.models.freezing`): parts
            (``backbone``, ``neck``, ``head``), ``stem``, stage names or ``stage:N``, glob patterns.
        norm: ``frozen`` (frozen norm layers keep their statistics), ``eval`` (every backbone norm
            layer in eval mode) or ``train`` (statistics adapt, weights stay).
        schedule: milestones ``{epoch, unfreeze, lr_mult}``: from ``epoch`` on, ``unfreeze`` trains at
            ``lr_mult`` x LR. Milestones must unfreeze something that is frozen.
        backbone_lr_mult: LR multiplier of the backbone's parameters (neck and head: 1).
        layer_decay: layer-wise LR decay over the backbone's stages on top of that: stage ``s`` of ``S``
            trains at ``layer_decay ** (S - 1 - s)`` x its rate (deepest stage full rate, stem least),
            e.g. 0.75; None: off.
        name: what runs, logs and sweep summaries call this strategy.
        frozen_bf16: while the whole backbone is frozen, run its forward pass of each training step in
            bfloat16 on the CPU: ``False`` (default: float32), ``"auto"`` (where the CPU has native bf16,
            AVX-512 BF16 or AMX; ~1.45x the training images/s of ``feature_extract`` measured) or ``True``.
            Off by default until the benchmark suite confirms its accuracy beyond BCCD. Validation, test
            and predict always run in float32.
    """

    name = "transfer"

    def __init__(
        self,
        freeze: Sequence[str] | str | None = None,
        norm: str = "frozen",
        schedule: Sequence[Milestone | Mapping[str, Any]] | None = None,
        backbone_lr_mult: float = 1.0,
        name: str | None = None,
        frozen_bf16: bool | str = False,
        layer_decay: float | None = None,
    ) -> None:
        super().__init__()
        check_layer_decay(layer_decay)
        self.layer_decay = layer_decay
        if frozen_bf16 not in (True, False, "auto"):
            raise ConfigError(f"frozen_bf16 must be auto, true or false, got {frozen_bf16!r}")
        self.frozen_bf16 = cpu_has_native_bf16() if frozen_bf16 == "auto" else bool(frozen_bf16)
        if name is not None:
            self.name = str(name)
        if not isinstance(backbone_lr_mult, (int, float)) or backbone_lr_mult < 0:
            raise ConfigError(f"backbone_lr_mult must be a number >= 0, got {backbone_lr_mult!r}")
        self.freeze = check_selectors(freeze, "freeze")
        self.norm = check_norm_policy(norm)
        self.schedule = sorted((Milestone.parse(m, i) for i, m in enumerate(schedule or [])), key=lambda m: m.epoch)
        self.backbone_lr_mult = float(backbone_lr_mult)
        self._resolved: _Resolved | None = None
        self._applied: tuple[int, frozenset[str]] | None = None
        self.last_report: dict[str, Any] = {}

    # ---- the plan, as data ---------------------------------------------------------------

    def resolve(self, detector: Any) -> _Resolved:
        """Selectors -> parameter names, checked against this detector (ConfigError names choices)."""
        frozen = select_all(detector, self.freeze)
        still_frozen = set(frozen)
        milestones = []
        for index, milestone in enumerate(self.schedule):
            newly = select_all(detector, milestone.unfreeze) & still_frozen  # what this milestone unfreezes
            if not newly:
                raise ConfigError(f"schedule[{index}] (epoch {milestone.epoch}) unfreezes {list(milestone.unfreeze)}, "
                                  f"but none of it is still frozen then (freeze={self.freeze}); "
                                  "add it to freeze or drop the milestone")
            still_frozen -= newly
            milestones.append((milestone, newly))
        return _Resolved(frozen, milestones)

    def frozen_at(self, detector: Any, epoch: int) -> set[str]:
        """Names of the parameters frozen during ``epoch``."""
        plan = self._plan(detector)
        frozen = set(plan.frozen)
        for milestone, names in plan.milestones:
            if milestone.epoch <= epoch:
                frozen -= names
        return frozen

    def lr_multipliers(self, detector: Any) -> dict[str, float]:
        """Each parameter's LR multiplier: its part's, or that of the milestone that unfreezes it."""
        mults = {name: (self.backbone_lr_mult if name.startswith("backbone.") else 1.0)
                 for name, _ in detector.named_parameters()}
        for milestone, names in self._plan(detector).milestones:
            if milestone.lr_mult is not None:
                for name in names:
                    mults[name] = milestone.lr_mult
        return mults

    def milestone_of(self, detector: Any) -> dict[str, int]:
        """Parameter name -> epoch it is unfrozen at (only parameters a milestone unfreezes)."""
        return {name: milestone.epoch for milestone, names in self._plan(detector).milestones for name in names}

    def _plan(self, detector: Any) -> _Resolved:
        if self._resolved is None:
            self._resolved = self.resolve(detector)
        return self._resolved

    # ---- applying it -----------------------------------------------------------------------

    def apply(self, pl_module: pl.LightningModule, epoch: int) -> None:
        detector = pl_module.detector
        frozen = frozenset(self.frozen_at(detector, epoch))
        if self._applied == (epoch, frozen):
            return
        changed = self._applied is None or self._applied[1] != frozen
        apply_freeze(detector, set(frozen), self.norm)
        if hasattr(detector.backbone, "frozen_bf16"):
            detector.backbone.frozen_bf16 = self.frozen_bf16
        self._applied = (epoch, frozen)
        self.last_report = freeze_report(pl_module, self.name, epoch)
        if changed:
            log.info("strategy %s, epoch %d: frozen %s; trainable parameters %d of %d; norm %s, %d layers pinned",
                     self.name, epoch, ", ".join(self.last_report["frozen"]) or "nothing",
                     self.last_report["trainable_params"], self.last_report["total_params"],
                     _norm_words(self.norm, detector), self.last_report["pinned_norm_layers"])

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # Before DDP wraps the model: check the plan, freeze nothing yet (see the module docstring).
        if stage != "fit":  # validate/test on a fitted module: nothing to plan or freeze
            return
        if getattr(pl_module, "strategy", None) is not self:
            raise ConfigError(
                f"the transfer strategy '{self.name}' is a Trainer callback but not the module's: its learning-rate "
                "plan would be ignored. Give it to the module instead: DetectionModule(detector, strategy=...)")
        self._resolved = self.resolve(pl_module.detector)
        apply_freeze(pl_module.detector, set(), self.norm)
        # The module hands the strategy over through configure_callbacks, which appends it; move it
        # to the front so every other callback sees the epoch's frozen set at its epoch start.
        move_callback_first(trainer, self)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # After the DDP wrap. Parameter groups never change, so nothing needs restoring; the
        # epoch's state is (re-)applied at every epoch start.
        self._check_ddp(trainer)
        self.apply(pl_module, trainer.current_epoch)

    def _check_ddp(self, trainer: pl.Trainer) -> None:
        """Frozen parameters get no gradient: DDP must have been told (find_unused_parameters)."""
        from torch.nn.parallel import DistributedDataParallel

        wrapped = getattr(trainer.strategy, "model", None)
        if not isinstance(wrapped, DistributedDataParallel) or not (self.freeze or self.schedule):
            return
        if not wrapped.find_unused_parameters:
            name = {"spawn": "ddp_spawn", "fork": "ddp_notebook"}.get(start_method(trainer), "ddp")
            raise ConfigError(
                f"strategy '{self.name}' freezes parameters, so under DDP some get no gradient: use "
                f"trainer.strategy={name}_find_unused_parameters_true "
                f"(Trainer(strategy='{name}_find_unused_parameters_true'))")

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.apply(pl_module, trainer.current_epoch)

    def state_dict(self) -> dict[str, Any]:
        return {"frozen": sorted(self._applied[1]) if self._applied else None}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._applied = None  # recomputed from the epoch at the next epoch start


class FeatureExtract(TransferStrategy):
    """Backbone frozen (weights and norm statistics), no backward pass through it; neck and head train.

    A ``schedule`` can still unfreeze parts of it later (then ``backbone_lr_mult`` applies).
    """

    name = "feature_extract"

    def __init__(self, norm: str = "frozen", schedule: Sequence[Mapping[str, Any]] | None = None,
                 backbone_lr_mult: float = 0.1, frozen_bf16: bool | str = False,
                 layer_decay: float | None = None) -> None:
        super().__init__(freeze=["backbone"], norm=norm, schedule=schedule, backbone_lr_mult=backbone_lr_mult,
                         frozen_bf16=frozen_bf16, layer_decay=layer_decay)


class Finetune(TransferStrategy):
    """Leading backbone stages frozen, the rest trains at ``backbone_lr_mult`` x LR.

    ``freeze_stages=N`` freezes the first N stages (the stem included); ``freeze`` (selectors)
    replaces it when given. ``unfreeze_at_epoch`` unfreezes everything frozen at that epoch; a
    ``schedule`` unfreezes step by step.
    """

    name = "finetune"

    def __init__(
        self,
        freeze_stages: int = 2,
        backbone_lr_mult: float = 0.1,
        unfreeze_at_epoch: int | None = None,
        freeze: Sequence[str] | str | None = None,
        norm: str = "frozen",
        schedule: Sequence[Milestone | Mapping[str, Any]] | None = None,
        layer_decay: float | None = None,
    ) -> None:
        if not isinstance(freeze_stages, int) or freeze_stages < 0:
            raise ConfigError(f"freeze_stages must be an integer >= 0, got {freeze_stages!r}")
        if unfreeze_at_epoch is not None and (not isinstance(unfreeze_at_epoch, int) or unfreeze_at_epoch < 0):
            raise ConfigError(f"unfreeze_at_epoch must be an integer >= 0 or null, got {unfreeze_at_epoch!r}")
        self.freeze_stages = freeze_stages
        self.unfreeze_at_epoch = unfreeze_at_epoch
        selectors = check_selectors(freeze, "freeze") if freeze is not None else [
            f"stage:{i}" for i in range(freeze_stages)]
        milestones = list(schedule or [])
        if unfreeze_at_epoch is not None and selectors:
            milestones.append({"epoch": unfreeze_at_epoch, "unfreeze": list(selectors)})
        super().__init__(freeze=selectors, norm=norm, schedule=milestones, backbone_lr_mult=backbone_lr_mult,
                         layer_decay=layer_decay)

    def resolve(self, detector: Any) -> _Resolved:
        stages = detector.backbone.num_stages
        if self.freeze_stages > stages:
            raise ConfigError(f"freeze_stages={self.freeze_stages} but {detector.backbone.name} has only {stages} "
                              f"stages ({detector.backbone.stage_names})")
        return super().resolve(detector)


class EndToEnd(TransferStrategy):
    """Everything trains; the backbone at ``backbone_lr_mult`` x LR (1.0 by default). ``norm="auto"`` keeps a
    loaded backbone's norm statistics (their scale and shift train; pinned norms fold into their
    convolutions, the fastest on a CPU) and lets a random one's statistics learn."""

    name = "end_to_end"

    def __init__(self, backbone_lr_mult: float = 1.0, norm: str = "frozen", layer_decay: float | None = None) -> None:
        super().__init__(freeze=None, norm=norm, schedule=None, backbone_lr_mult=backbone_lr_mult,
                         layer_decay=layer_decay)


def _norm_words(norm: str, detector: Any) -> str:
    """``eval``, or ``auto (eval: loaded weights)``: the policy as configured and what it became."""
    resolved = resolve_norm_policy(detector, norm)
    if norm != "auto":
        return norm
    return f"auto ({resolved}: {'loaded weights' if resolved == 'eval' else 'random initialisation'})"


def freeze_report(pl_module: pl.LightningModule, strategy: str, epoch: int) -> dict[str, Any]:
    """What is frozen (parts and backbone stages) and how many parameters train."""
    detector = pl_module.detector
    backbone = detector.backbone
    summary = frozen_summary(detector)
    return {
        "strategy": strategy,
        "epoch": epoch,
        **summary,
        "frozen_stages": backbone.stage_names[: backbone.frozen_stages],
        "trainable_stages": backbone.stage_names[backbone.frozen_stages :],
        "pinned_norm_layers": len(detector.pinned_norms),
        "trainable_params": count_parameters(detector, trainable_only=True),
        "total_params": count_parameters(detector),
    }


__all__ = ["EndToEnd", "FeatureExtract", "Finetune", "Milestone", "TransferStrategy", "freeze_report", "select"]
