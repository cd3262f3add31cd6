"""TimmBackbone: any timm model with ``features_only``, cut at strides 8, 16 and 32.

Widths, strides and stage names come from timm's ``feature_info``; nothing is hard-coded. The backbone
maps each parameter to its stage, which freezing selectors read; freezing itself is
:func:`yolotl.models.freezing.apply_freeze`'s (on the whole detector), never the backbone's.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import timm
import torch
from torch import nn

from yolotl.errors import BackboneError

DETECTION_STRIDES = (8, 16, 32)


def check_backbone_name(name: str) -> None:
    """Raise a BackboneError naming close matches when timm does not know ``name``."""
    if timm.is_model(name):
        return
    close = suggest_backbones(name, timm.list_models())
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise BackboneError(
        f"timm has no backbone named '{name}'.{hint} "
        "List choices with timm.list_models('<pattern>'), e.g. timm.list_models('efficientnet*')."
    )


def _family(name: str) -> str:
    """A model name's family: the part before the first digit or underscore (``resnet_999`` -> ``resnet``)."""
    return re.split(r"[\d_]", name.lower(), maxsplit=1)[0]


def suggest_backbones(name: str, models: Sequence[str], limit: int = 6) -> list[str]:
    """Up to ``limit`` known names for a mistyped ``name``, in this order: names that extend it
    (``vit_tiny`` -> vit_tiny_patch16_224), close spellings, then the basic members of its family, the
    shortest names starting with the part before the first digit or underscore (``resnet_999`` ->
    resnet18, resnet26, resnet34, resnet50, ...), then looser spellings."""
    lowered = name.lower().strip()
    if not lowered:
        return []
    by_length = sorted(models, key=lambda m: (len(m), m))
    extending = [m for m in by_length if m.lower().startswith(lowered)]
    strong = difflib.get_close_matches(lowered, models, n=limit, cutoff=0.85)
    family = _family(name)
    members = [m for m in by_length if len(family) >= 2 and m.lower().startswith(family)]
    loose = difflib.get_close_matches(lowered, models, n=limit, cutoff=0.6)
    return list(dict.fromkeys([*extending[:limit], *strong, *members[:limit], *loose]))[:limit]


def _create_features(name: str) -> nn.Module:
    try:
        return timm.create_model(name, pretrained=False, features_only=True)
    except Exception as err:
        raise BackboneError(
            f"backbone '{name}' cannot be built with features_only=True ({err}). "
            "Pick a CNN backbone with multi-scale features, e.g. efficientnet_lite0, resnet50, "
            "convnext_tiny or mobilenetv3_large_100."
        ) from err


def _select_strides(name: str, reductions: Sequence[int]) -> list[int]:
    missing = [s for s in DETECTION_STRIDES if s not in reductions]
    if missing:
        raise BackboneError(
            f"backbone '{name}' gives features at strides {list(reductions)}, but a YOLO head needs "
            f"strides {list(DETECTION_STRIDES)} (missing {missing}). Pick a hierarchical CNN backbone."
        )
    # the last feature map of each wanted stride is the deepest, most semantic one
    return [max(i for i, r in enumerate(reductions) if r == s) for s in DETECTION_STRIDES]


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when this CPU computes bfloat16 in hardware (x86 AVX-512 BF16 or AMX, read from
    /proc/cpuinfo): there a bf16 forward pass is faster than float32; elsewhere (emulated) slower."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:  # not Linux: no way to tell, keep float32
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


class TimmBackbone(nn.Module):
    """Multi-scale features [C3, C4, C5] from a timm model, with each parameter's stage."""

    def __init__(self, name: str) -> None:
        super().__init__()
        check_backbone_name(name)
        self.name = name
        self.body = _create_features(name)
        info = self.body.feature_info
        self.stage_names: list[str] = list(info.module_name())
        self.out_indices = _select_strides(name, info.reduction())
        self.channels: list[int] = [info.channels()[i] for i in self.out_indices]
        self.strides: list[int] = [info.reduction()[i] for i in self.out_indices]
        self.pretrained_cfg: dict = dict(getattr(self.body, "pretrained_cfg", {}) or {})
        self._stage_of_param = _assign_params_to_stages(self.body, self.stage_names)
        # A fully frozen backbone's forward pass in a training step runs in bfloat16 on the CPU when
        # True (set by the transfer strategy; see ``cpu_has_native_bf16``). Evaluation stays float32.
        self.frozen_bf16 = False

    @property
    def num_stages(self) -> int:
        return len(self.stage_names)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        # images: [B, 3, H, W] normalised -> [C3 [B,c3,H/8,W/8], C4 [..,H/16..], C5 [..,H/32..]]
        if self.fully_frozen:
            # Feature extraction: no backward pass through the backbone. In a training step on a CPU
            # with native bfloat16 the pass can run in bf16 when asked (~1.45x the training images/s at 416 px);
            # validation, test and predict (no grad) keep float32, as a reloaded model runs.
            bf16 = self.frozen_bf16 and torch.is_grad_enabled() and images.device.type == "cpu"
            # (no autocast context otherwise: one with enabled=False would switch off a Trainer's bf16-mixed)
            precision = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
            with torch.no_grad(), precision:
                features = self.body(images)
            if bf16:
                features = [f.float() for f in features]
        else:
            features = self.body(images)
        return [features[i] for i in self.out_indices]

    @property
    def fully_frozen(self) -> bool:
        """No backbone parameter trains: the forward pass can skip autograd."""
        return not any(p.requires_grad for p in self.body.parameters())

    def stage_parameters(self, stage: int) -> Iterator[nn.Parameter]:
        """Parameters that belong to stage ``stage`` (0 = stem + first stage)."""
        for name, param in self.body.named_parameters():
            if self._stage_of_param[name] == stage:
                yield param

    @property
    def frozen_stages(self) -> int:
        """How many leading stages are frozen whole (no parameter of theirs trains)."""
        count = 0
        for stage in range(self.num_stages):
            params = list(self.stage_parameters(stage))
            if not params or any(p.requires_grad for p in params):
                break
            count += 1
        return count

    def stage_of(self, parameter_name: str) -> int:
        """Stage index of a parameter named relative to ``body`` (0 holds the stem)."""
        return self._stage_of_param[parameter_name]

    def stem_parameter_names(self) -> list[str]:
        """Parameters of stage 0 outside the first feature stage's own module (conv stem, its norm)."""
        first = self.stage_names[0].replace("_", ".")
        return [n for n, s in self._stage_of_param.items()
                if s == 0 and not n.replace("_", ".").startswith(first + ".")]


def is_norm(module: nn.Module) -> bool:
    """A normalisation layer: what freezing pins in eval mode so its statistics stay put."""
    return isinstance(module, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm))


def _assign_params_to_stages(body: nn.Module, stage_names: Sequence[str]) -> dict[str, int]:
    """Map each parameter name to the index of the feature stage that produces it.

    A parameter belongs to the first stage whose module ends at or after the parameter's module in
    registration order, so stem layers join stage 0 and layers between two feature taps join the later one.
    """
    order = {name: i for i, (name, _) in enumerate(body.named_modules())}
    folded = {name.replace("_", "."): i for name, i in order.items()}  # FeatureListNet: "stages_0"
    stage_end = []
    for stage in stage_names:
        key = stage.replace("_", ".")
        inside = [i for n, i in folded.items() if n == key or n.startswith(key + ".")]
        if not inside:
            raise BackboneError(f"cannot locate feature stage '{stage}' inside the timm model")
        stage_end.append(max(inside))
    assignment = {}
    for name, _ in body.named_parameters():
        position = order[name.rsplit(".", 1)[0]] if "." in name else 0
        stage = next((s for s, end in enumerate(stage_end) if position <= end), len(stage_end) - 1)
        assignment[name] = stage
    return assignment
