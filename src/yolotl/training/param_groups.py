"""Optimizer parameter groups: per part (backbone / neck / head), per LR multiplier, with and without decay."""

from __future__ import annotations

from collections.abc import Mapping

from torch import nn

from yolotl.errors import ConfigError


def check_layer_decay(layer_decay: float | None) -> None:
    if layer_decay is not None and (not isinstance(layer_decay, (int, float)) or not 0 < layer_decay <= 1):
        raise ConfigError(f"layer_decay={layer_decay!r} must be in (0, 1] (e.g. 0.75) or null (off)")


def layer_decay_factors(detector: nn.Module, layer_decay: float | None) -> dict[str, float]:
    """Layer-wise LR decay for the backbone: stage ``s`` of ``S`` gets ``layer_decay ** (S - 1 - s)``.

    The deepest stage keeps the full backbone rate; the stem and early stages, whose generic
    features transfer best, move least (BEiT/ELECTRA-style decay, by timm ``feature_info`` stage).
    Neck and head get 1.
    """
    check_layer_decay(layer_decay)
    backbone = detector.backbone
    factors = {}
    for name, _ in detector.named_parameters():
        if layer_decay is not None and name.startswith("backbone.body."):
            stage = backbone.stage_of(name[len("backbone.body."):])
            factors[name] = float(layer_decay) ** (backbone.num_stages - 1 - stage)
        else:
            factors[name] = 1.0
    return factors


def build_param_groups(
    detector: nn.Module,
    lr: float | None = None,
    weight_decay: float | None = None,
    backbone_lr_mult: float = 1.0,
    lr_mults: Mapping[str, float] | None = None,
    layer_decay: float | None = None,
    unfreeze_epochs: Mapping[str, int] | None = None,
) -> list[dict]:
    """Named groups (for logging and tests); each carries its ``lr_mult``.

    ``lr_mults`` (parameter name -> multiplier, e.g. from a strategy) overrides ``backbone_lr_mult``;
    ``layer_decay`` scales backbone stages on top; ``unfreeze_epochs`` (name -> epoch a schedule
    unfreezes it) gives those parameters their own groups, named ``...@epochN``.

    Every parameter is in a group, trainable or not: frozen parameters have no gradient, so the
    optimizer skips them, and unfreezing later needs no new group (resume-safe, scheduler-safe).
    Norm weights and biases (1-D tensors) get no weight decay. ``lr`` and ``weight_decay`` None (as
    :func:`~yolotl.training.optimization.build_optimizer` calls it) leave the base rate and the decay to
    the optimizer, which then multiplies each group's rate by its ``lr_mult``.
    """
    stage_factor = layer_decay_factors(detector, layer_decay)
    backbone = detector.backbone
    epochs = dict(unfreeze_epochs or {})
    groups: dict[tuple, dict] = {}
    for name, param in detector.named_parameters():
        part = name.split(".", 1)[0]
        base = lr_mults[name] if lr_mults is not None else (backbone_lr_mult if part == "backbone" else 1.0)
        mult = base * stage_factor[name]
        label = part
        if layer_decay is not None and name.startswith("backbone.body."):
            label += "." + backbone.stage_names[backbone.stage_of(name[len("backbone.body."):])]
        if name in epochs:
            label += f"@epoch{epochs[name]}"
        decay = param.ndim > 1 and not name.endswith(".bias")
        key = (label, decay, mult)
        if key not in groups:
            group_name = label if decay else f"{label}_no_decay"
            if any(g["name"] == group_name for g in groups.values()):
                group_name += f"(x{mult:g})"
            groups[key] = {"name": group_name, "params": [], "lr_mult": mult}
            if lr is not None:
                groups[key]["lr"] = lr * mult
            if not decay:
                groups[key]["weight_decay"] = 0.0
            elif weight_decay is not None:
                groups[key]["weight_decay"] = weight_decay
        groups[key]["params"].append(param)
    return [g for g in groups.values() if g["params"]]


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
