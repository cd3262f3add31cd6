"""Optimizer parameter groups: backbone vs neck+head, each with and without weight decay."""

from __future__ import annotations

from torch import nn


def build_param_groups(
    detector: nn.Module, lr: float, weight_decay: float, backbone_lr_mult: float = 1.0
) -> list[dict]:
    """Four groups (empty ones dropped), each named for logging and tests.

    Every parameter is in a group, trainable or not: frozen parameters have no gradient, so the
    optimizer skips them, and unfreezing later needs no new group (resume-safe, scheduler-safe).
    Norm weights and biases (1-D tensors) get no weight decay.
    """
    groups: dict[str, dict] = {}
    for part, module, mult in (
        ("backbone", detector.backbone, backbone_lr_mult),
        ("neck", detector.neck, 1.0),
        ("head", detector.head, 1.0),
    ):
        for name, param in module.named_parameters():
            decay = param.ndim > 1 and not name.endswith(".bias")
            key = f"{part}" if decay else f"{part}_no_decay"
            group = groups.setdefault(
                key,
                {"name": key, "params": [], "lr": lr * mult, "weight_decay": weight_decay if decay else 0.0,
                 "lr_mult": mult},
            )
            group["params"].append(param)
    return [g for g in groups.values() if g["params"]]


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
