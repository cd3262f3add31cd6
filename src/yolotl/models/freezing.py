"""What to freeze, by name: parts, backbone stages, patterns; and what frozen norm layers do.

A *selector* names a set of detector parameters:

- a part: ``backbone``, ``neck``, ``head``;
- ``stem``: the backbone's layers before its first feature stage (conv stem and its norm);
- a backbone stage by its timm ``feature_info`` name (``blocks.4`` for EfficientNet, ``layer3`` for
  ResNet, ``stages.1`` for ConvNeXt; the stem counts as part of the first stage), or by position,
  ``stage:0`` ... ``stage:-1`` (the last, deepest stage), so one config fits every backbone;
- a glob pattern over parameter names (``head.cls_branches.*``, ``backbone.body.blocks.0.*``).

The *norm policy* says what the norm layers do while the run trains:

- ``frozen`` (default): a norm layer whose parameters are all frozen runs in eval mode, so its
  running statistics stay byte-identical too (Lightning's own ``freeze(train_bn=False)`` lets them drift);
- ``eval``: every norm layer of the backbone runs in eval mode, trainable or not (mmdetection's
  ``norm_eval``; for small batches, where batch statistics are noise);
- ``train``: every norm layer follows the trainer; frozen layers keep their weights but their
  statistics adapt to the new images (AdaBN-style domain adaptation);
- ``auto``: ``eval`` for a backbone whose weights were loaded (ImageNet, a detector's checkpoint: its
  statistics mean something), ``frozen`` for a randomly initialised one (its statistics must be learned).

Pinned norm layers fold into the convolution before them in training steps
(:mod:`yolotl.models.norm_folding`), which is what makes ``eval`` the fastest policy on a CPU.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence

from torch import nn

from yolotl.errors import ConfigError
from yolotl.models.backbone import is_norm

PARTS = ("backbone", "neck", "head")
NORM_POLICIES = ("frozen", "eval", "train", "auto")
_BODY = "backbone.body."


def check_norm_policy(norm: str) -> str:
    if norm not in NORM_POLICIES:
        raise ConfigError(f"norm='{norm}' is not a norm-layer policy; choose one of {list(NORM_POLICIES)}")
    return norm


def selector_choices(detector: nn.Module) -> list[str]:
    """The named selectors this detector accepts (patterns aside)."""
    backbone = detector.backbone
    return [*PARTS, "stem", *backbone.stage_names, *[f"stage:{i}" for i in range(backbone.num_stages)]]


def select(detector: nn.Module, selector: str) -> set[str]:
    """Names (as in ``detector.named_parameters()``) of the parameters ``selector`` names."""
    if not isinstance(selector, str) or not selector:
        raise ConfigError(f"a freeze selector must be a non-empty string, got {selector!r}")
    names = [n for n, _ in detector.named_parameters()]
    backbone = detector.backbone
    if selector in PARTS:
        return {n for n in names if n.startswith(selector + ".")}
    if selector == "stem":
        return {_BODY + n for n in backbone.stem_parameter_names()}
    stage = _stage_index(backbone, selector)
    if stage is not None:
        return {n for n in names if n.startswith(_BODY) and backbone.stage_of(n[len(_BODY):]) == stage}
    if any(c in selector for c in "*?["):
        matched = {n for n in names if fnmatch.fnmatchcase(n, selector)}
        if not matched:
            raise ConfigError(f"freeze pattern '{selector}' matches no parameter; parameter names look like "
                              f"'{names[0]}', '{names[-1]}' (list them with detector.named_parameters())")
        return matched
    raise ConfigError(f"unknown freeze selector '{selector}'; choose from {selector_choices(detector)} "
                      "or a glob pattern over parameter names such as 'backbone.body.*' or 'head.cls_branches.*'")


def select_all(detector: nn.Module, selectors: Iterable[str]) -> set[str]:
    return set().union(*(select(detector, s) for s in selectors)) if selectors else set()


def _stage_index(backbone: nn.Module, selector: str) -> int | None:
    if selector in backbone.stage_names:
        return backbone.stage_names.index(selector)
    if selector.startswith("stage:"):
        try:
            index = int(selector[len("stage:"):])
        except ValueError:
            index = None
        count = backbone.num_stages
        if index is None or not -count <= index < count:
            raise ConfigError(f"'{selector}': {backbone.name} has stages stage:0 .. stage:{count - 1} "
                              f"(or stage:-1 for the last); its names are {backbone.stage_names}")
        return index % count
    return None


def apply_freeze(detector: nn.Module, frozen: set[str], norm: str = "frozen") -> None:
    """Freeze exactly the ``frozen`` parameters (all others train) and pin norm layers per ``norm``.

    Pinned norm layers are kept in eval mode by ``YoloDetector.train``, whatever the trainer calls.
    """
    norm = resolve_norm_policy(detector, norm)
    for name, param in detector.named_parameters():
        param.requires_grad_(name not in frozen)
    pinned = []
    for module_name, module in detector.named_modules():
        if not is_norm(module):
            continue
        own = [f"{module_name}.{n}" for n, _ in module.named_parameters(recurse=False)]
        if norm == "eval" and module_name.startswith("backbone."):
            pinned.append(module_name)
        elif norm in ("frozen", "eval") and own and all(n in frozen for n in own):
            pinned.append(module_name)
    detector.pin_norms(pinned)


def resolve_norm_policy(detector: nn.Module, norm: str) -> str:
    """``norm``, with ``auto`` made ``eval`` (the backbone's weights were loaded from somewhere) or ``frozen``
    (randomly initialised: pinning would keep its untrained statistics, mean 0 and variance 1)."""
    check_norm_policy(norm)
    if norm != "auto":
        return norm
    report = getattr(detector, "load_report", None)
    return "eval" if report is not None and report.loaded > 0 else "frozen"


def frozen_summary(detector: nn.Module, frozen: set[str] | None = None) -> dict[str, list[str]]:
    """Which parts and backbone stages are wholly frozen, partly frozen or trainable: as the
    parameters are now (``requires_grad``), or as they would be with the ``frozen`` names frozen."""
    params = dict(detector.named_parameters())
    groups: dict[str, list[str]] = {}
    for stage, stage_name in enumerate(detector.backbone.stage_names):
        groups[f"backbone.{stage_name}"] = [n for n in params if n.startswith(_BODY)
                                            and detector.backbone.stage_of(n[len(_BODY):]) == stage]
    for part in ("neck", "head"):
        groups[part] = [n for n in params if n.startswith(part + ".")]
    summary: dict[str, list[str]] = {"frozen": [], "partly_frozen": [], "trainable": []}
    for label, names in groups.items():
        flags = {n not in frozen if frozen is not None else params[n].requires_grad for n in names}
        key = "trainable" if flags == {True} else "frozen" if flags == {False} else "partly_frozen"
        summary[key].append(label)
    return summary


def check_selectors(selectors: Sequence[str] | None, what: str) -> list[str]:
    """A list of selector strings (a single string is one selector)."""
    if selectors is None:
        return []
    if isinstance(selectors, str):
        return [selectors]
    values = list(selectors)
    if not all(isinstance(v, str) and v for v in values):
        raise ConfigError(f"{what} must be a list of selector strings (parts, stage names, stage:N, patterns), "
                          f"got {values!r}")
    return values
