"""Detector-to-detector transfer: start from a yolotl detector trained on other data and classes.

Everything whose name and shape match is copied (backbone, neck, box branch, the class branch's
hidden layers). The last class layer is copied row by row: a class of the new model whose name
matches a source class (case-insensitive, or through ``class_map``) keeps that row, its weight and
bias; the others start fresh with the prior-probability bias. The :class:`ClassTransfer` report
says which classes were kept, which are new and which were dropped.

``keep_old_classes=True`` keeps every source class in the new model (source classes first, then
the data's new ones), so the detector can still find what it knew; see
``DetectionModule(old_classes=...)`` for protecting them while it learns the new ones.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from yolotl.errors import ConfigError
from yolotl.models.class_names import match_class_names, normalise_class_name
from yolotl.models.weights import LoadReport

log = logging.getLogger("yolotl.models")

# The architecture settings that must agree for weights to transfer.
_ARCHITECTURE = ("backbone", "neck_width", "neck_depth", "reg_max", "neck", "head", "nms_free")


@dataclass
class ClassTransfer:
    """What happened to each class row when a detector was initialised from another."""

    source: str
    source_classes: list[str]
    kept: dict[str, str] = field(default_factory=dict)  # new class -> source class whose row it took
    new: list[str] = field(default_factory=list)  # fresh rows
    dropped: list[str] = field(default_factory=list)  # source classes the new model does not have
    old_only: list[str] = field(default_factory=list)  # kept source classes the training data lacks
    class_map: dict[str, str] = field(default_factory=dict)  # data class -> source class, where renamed

    def summary(self) -> str:
        kept = ", ".join(k if k == v else f"{k}<-{v}" for k, v in self.kept.items()) or "none"
        text = (f"classes from {self.source}: kept {len(self.kept)} ({kept}), new {len(self.new)} "
                f"({', '.join(self.new) or 'none'}), dropped {len(self.dropped)} ({', '.join(self.dropped) or 'none'})")
        if self.old_only:
            text += f"; old classes kept without training labels: {', '.join(self.old_only)}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def match_class_rows(new_names: Sequence[str], source_names: Sequence[str],
                     class_map: Mapping[str, str] | None = None) -> dict[int, int]:
    """New class index -> source class index, by name (``class_map``: new name -> source name).

    Raises :class:`ConfigError` when ``class_map`` names a new or source class that does not exist."""
    new_keys = {normalise_class_name(n) for n in new_names}
    source_keys = {normalise_class_name(n) for n in source_names}
    unknown_new = [k for k in (class_map or {}) if normalise_class_name(k) not in new_keys]
    unknown_old = [v for v in (class_map or {}).values() if normalise_class_name(v) not in source_keys]
    if unknown_new or unknown_old:
        raise ConfigError(f"class_map {dict(class_map or {})} names classes that do not exist: new {unknown_new} "
                          f"(new classes: {list(new_names)}), source {unknown_old} (source classes: {list(source_names)})")
    return match_class_names(new_names, source_names, class_map)


def final_class_names(data_names: Sequence[str], source_names: Sequence[str],
                      class_map: Mapping[str, str] | None, keep_old_classes: bool) -> list[str]:
    """The new model's classes: the data's, or (keep_old_classes) the source's then the data's new ones."""
    if not keep_old_classes:
        return list(data_names)
    matched = match_class_rows(data_names, source_names, class_map)
    return list(source_names) + [n for i, n in enumerate(data_names) if i not in matched]


def check_architecture(source_config: Any, wanted: Mapping[str, Any], path: str | Path) -> None:
    """ConfigError naming the setting to change when the source detector's architecture differs."""
    differ = {k: (getattr(source_config, k), wanted[k]) for k in _ARCHITECTURE if getattr(source_config, k) != wanted[k]}
    if differ:
        fixes = ", ".join(f"{k}={old} (not {new})" for k, (old, new) in differ.items())
        raise ConfigError(f"init_from={path} was trained with {fixes}; set the same to start from it "
                          "(e.g. backbone=<its backbone>, model.detector.neck_width=<its width>)")


def transfer_weights(target: torch.nn.Module, source: torch.nn.Module, source_path: str | Path,
                     class_map: Mapping[str, str] | None = None,
                     data_names: Sequence[str] | None = None) -> tuple[LoadReport, ClassTransfer]:
    """Copy ``source``'s weights into ``target``: every tensor of equal name and shape, and class rows by name."""
    rows = match_class_rows(target.class_names, source.class_names, class_map)
    target_state = target.state_dict()
    source_state = source.state_dict()
    class_layers = _class_layers(target)
    # the first class layer's weight: its input width says whether class rows can be copied at all
    width = "head.classifier.weight" if "head.classifier.weight" in class_layers else "head.cls_branches.0.2.weight"
    if width not in source_state:  # another task's head (a detector's into a semantic segmenter, or back)
        log.info("%s has another kind of head (task %s): this %s head starts fresh", source_path,
                 source.config.task, target.config.task)
        rows = {}
    elif source_state[width].shape[1:] != target_state[width].shape[1:]:
        # the class branch widens past neck_width classes (DecoupledHead)
        log.warning("the class branch of %s is %d wide, this detector's %d: every class row starts fresh",
                    source_path, source_state[width].shape[1], target_state[width].shape[1])
        rows = {}
    report = LoadReport(source=f"detector checkpoint {source_path}")
    new_rows = torch.tensor(list(rows), dtype=torch.long)
    old_rows = torch.tensor(list(rows.values()), dtype=torch.long)
    with torch.no_grad():
        for name, tensor in target_state.items():
            if name not in source_state:
                report.missing.append(name)
                continue
            value = source_state[name]
            if name in class_layers and value.shape[1:] == tensor.shape[1:]:
                if rows:
                    tensor[new_rows] = value[old_rows].to(tensor.dtype)
                report.loaded += 1
            elif value.shape == tensor.shape:
                tensor.copy_(value)
                report.loaded += 1
            else:
                report.skipped_shape.append(name)
    report.unexpected = [n for n in source_state if n not in target_state]
    source_names = list(source.class_names)
    data_names = list(data_names if data_names is not None else target.class_names)
    covered = set(match_class_rows(data_names, source_names, class_map).values())  # source rows the data labels
    transfer = ClassTransfer(
        source=str(source_path),
        source_classes=source_names,
        kept={target.class_names[i]: source_names[j] for i, j in rows.items()},
        new=[n for i, n in enumerate(target.class_names) if i not in rows],
        dropped=[n for j, n in enumerate(source_names) if j not in rows.values()],
        old_only=[target.class_names[i] for i, j in rows.items() if j not in covered],
        class_map=dict(class_map or {}),
    )
    log.info("%s", transfer.summary())
    return report, transfer


def _class_layers(model: torch.nn.Module) -> set[str]:
    """State-dict names of the layers whose rows are classes: every class branch's last conv."""
    if getattr(model.head, "classifier", None) is not None:  # a semantic head
        return {"head.classifier.weight", "head.classifier.bias"}
    return {f"head.{branches}.{i}.2.{k}" for branches in ("cls_branches", "aux_cls_branches")
            for i in range(len(model.head.cls_branches)) for k in ("weight", "bias")}
