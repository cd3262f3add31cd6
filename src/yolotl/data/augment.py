"""Augmentation settings and the four presets (``none``, ``light``, ``medium``, ``heavy``).

One frozen dataclass holds every knob: the per-image albumentations steps (flips, affine, HSV),
the dataset-level mixing (mosaic of four images, mixup) with the epoch that mosaic stops, and
multi-scale training (the batch is resized by the DataModule). A preset is a named instance; a
Hydra group (``augment=heavy``) or a notebook (``augment="heavy"`` or a dict) picks one and may
override single fields (``data.augment.mosaic=0``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from yolotl.errors import ConfigError

__all__ = ["AUGMENT_PRESETS", "AugmentSettings", "resolve_augment"]


@dataclass(frozen=True)
class AugmentSettings:
    """Every augmentation knob of a training run (probabilities in [0, 1]).

    - ``hflip``/``vflip``: flip probabilities.
    - ``scale``: zoom range; ``translate``: shift as a fraction of the image size;
      ``degrees``/``shear``: rotation/shear range in +- degrees (one random affine per sample).
    - ``hsv``: colour jitter strength (0 off; 1 is hue +-10, saturation +-40, value +-30).
    - ``mosaic``: share of samples built from four images on a 2x2 grid;
      ``close_mosaic``: mosaic is switched off for the last this-many epochs, so the model ends
      on images that look like the ones it will see.
    - ``mixup``: share of samples blended with a second sample (boxes of both kept).
    - ``multi_scale``: each batch is resized to a random multiple of 32 within
      ``image_size * (1 +- multi_scale)``.
    - ``min_visibility``/``min_area``: a box keeping less than this share of its area, or under
      this many square pixels, after augmentation is dropped.
    """

    hflip: float = 0.5
    vflip: float = 0.0
    scale: tuple[float, float] = (0.5, 1.5)
    translate: float = 0.1
    degrees: float = 0.0
    shear: float = 0.0
    hsv: float = 1.0
    mosaic: float = 0.0
    close_mosaic: int = 0
    mixup: float = 0.0
    multi_scale: float = 0.0
    min_visibility: float = 0.3
    min_area: float = 4.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", tuple(float(v) for v in self.scale))
        for name in ("hflip", "vflip", "mosaic", "mixup"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"augment.{name}={value} is a probability; use a value in [0, 1].")
        if len(self.scale) != 2 or not 0 < self.scale[0] <= self.scale[1]:
            raise ConfigError(f"augment.scale={list(self.scale)} must be [low, high] with 0 < low <= high.")
        if not 0.0 <= self.multi_scale < 1.0:
            raise ConfigError(f"augment.multi_scale={self.multi_scale} must be in [0, 1) (0.5 means +-50%).")
        if self.close_mosaic < 0 or self.translate < 0 or self.hsv < 0:
            raise ConfigError("augment.close_mosaic, translate and hsv must be >= 0.")

    @property
    def transforms_kwargs(self) -> dict[str, Any]:
        """The per-image part, as keyword arguments of :func:`build_train_transforms`."""
        mixing = {"mosaic", "close_mosaic", "mixup", "multi_scale"}
        return {k: v for k, v in asdict(self).items() if k not in mixing}

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (scale as a list), e.g. for logging or a config file."""
        out = asdict(self)
        out["scale"] = list(self.scale)
        return out


_NONE = AugmentSettings(hflip=0.0, scale=(1.0, 1.0), translate=0.0, hsv=0.0)
AUGMENT_PRESETS: dict[str, AugmentSettings] = {
    "none": _NONE,
    "light": AugmentSettings(hflip=0.5, scale=(0.8, 1.2), translate=0.05, hsv=0.5),
    "medium": AugmentSettings(hflip=0.5, scale=(0.5, 1.5), translate=0.1, hsv=1.0,
                              mosaic=0.5, close_mosaic=3),
    "heavy": AugmentSettings(hflip=0.5, scale=(0.5, 1.5), translate=0.1, degrees=5.0, shear=2.0,
                             hsv=1.0, mosaic=1.0, close_mosaic=3, mixup=0.15, multi_scale=0.25),
}


def resolve_augment(augment: str | Mapping[str, Any] | AugmentSettings | None) -> AugmentSettings:
    """A preset name, a dict (optionally ``{"preset": name, ...overrides}``) or settings -> settings.

    ``None`` means the ``medium`` preset. Unknown names and keys raise ConfigError listing the
    valid ones.
    """
    if isinstance(augment, AugmentSettings):
        return augment
    if augment is None:
        return AUGMENT_PRESETS["medium"]
    if isinstance(augment, str):
        return _preset(augment)
    if not isinstance(augment, Mapping):
        raise ConfigError(f"augment={augment!r} must be a preset name {list(AUGMENT_PRESETS)} or a dict.")
    values = dict(augment)
    base = _preset(str(values.pop("preset", "medium")))
    valid = [f.name for f in fields(AugmentSettings)]
    unknown = sorted(set(values) - set(valid))
    if unknown:
        raise ConfigError(f"augment has unknown keys {unknown}; valid keys: {['preset', *valid]}.")
    return replace(base, **values)


def _preset(name: str) -> AugmentSettings:
    if name not in AUGMENT_PRESETS:
        raise ConfigError(f"unknown augmentation preset '{name}'; choose one of {list(AUGMENT_PRESETS)}.")
    return AUGMENT_PRESETS[name]
