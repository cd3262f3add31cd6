"""INT8 quantisation of an exported yolotl OpenVINO IR with NNCF (post-training, calibrated on images).

:func:`quantize_openvino` runs ``nncf.quantize`` on the float IR: weights int8 per output channel,
activation ranges from calibration images letterboxed exactly as ``predict()`` letterboxes them (the
same :class:`~yolotl.inference.onnx_quantize.LetterboxCalibration` the ONNX Runtime path feeds), preset
``mixed`` by default (symmetric weights, asymmetric activations, like the ONNX path's uint8 activations;
``performance`` makes activations symmetric too) and NNCF's full bias correction (its fast one left
scores further from the float model's: on BCCD smears a 95th-percentile score difference of 0.21-0.26
against 0.16, ONNX Runtime's path 0.15).

As in :func:`~yolotl.inference.onnx_quantize.quantize_onnx`, only the network body is quantised: the
decode (DFL softmax, distances to boxes, class sigmoid) and any NMS, the operations from which no
convolution can be reached (:func:`decode_tail`), go to NNCF's ignored scope and stay float32. The
quantised IR keeps the float IR's inputs, outputs and metadata, plus ``quantization`` (``int8``) and
``calibration_images``, so :class:`~yolotl.inference.openvino_runtime.OpenVinoDetector` runs it unchanged.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from yolotl.errors import ConfigError, YolotlError, first_line
from yolotl.inference.onnx_quantize import (
    MIN_CALIBRATION_IMAGES, QUANTIZATION, LetterboxCalibration, _nms_settings, int8_path,
)
from yolotl.inference.openvino_export import OPENVINO_INSTALL_HINT, import_openvino, set_metadata
from yolotl.inference.preprocess import ImageInput
from yolotl.inference.signal_stack import keep_signal_stack

PRESETS = ("mixed", "performance")
_CONVOLUTIONS = ("Convolution", "GroupConvolution")
_NOT_OPERATIONS = ("Parameter", "Constant", "Result")


def quantize_openvino(
    model: str | Path,
    images: Sequence[ImageInput],
    output: str | Path | None = None,
    *,
    preset: str = "mixed",
) -> Path:
    """Write an INT8 copy of the yolotl OpenVINO IR ``model`` (its ``.xml``); return the new ``.xml``.

    Args:
        model: a float32 IR written by :func:`~yolotl.inference.openvino_export.export_openvino`.
        images: calibration images (paths, arrays, ... as ``predict()`` takes), at least
            :data:`~yolotl.inference.onnx_quantize.MIN_CALIBRATION_IMAGES`, like those the model will see.
        output: default ``best.xml`` -> ``best.int8.xml`` (its ``.bin`` beside it).
        preset: NNCF's quantisation preset, ``"mixed"`` (default) or ``"performance"``.

    Raises:
        ConfigError: too few images, an unknown preset, or a model that is already quantised.
        CheckpointError: ``model`` is missing or not a yolotl OpenVINO IR.
        YolotlError: openvino or nncf is missing, or NNCF failed.
    """
    if len(images) < MIN_CALIBRATION_IMAGES:
        raise ConfigError(
            f"INT8 calibration needs at least {MIN_CALIBRATION_IMAGES} images, got {len(images)}; "
            "pass more images like those the model will see"
        )
    if preset not in PRESETS:
        raise ConfigError(f"unknown NNCF preset {preset!r}; use one of {list(PRESETS)}")
    ov, nncf = import_openvino("INT8 quantisation for OpenVINO"), _import_nncf()
    from yolotl.inference.openvino_runtime import OpenVinoDetector

    source = OpenVinoDetector(model)  # checks the files and the metadata
    if source.quantization:
        raise ConfigError(f"{source.path} is already quantised ({source.quantization}); quantise the float model")
    output = Path(output) if output is not None else int8_path(source.path)
    float_model = ov.Core().read_model(str(source.path))
    extra = _nms_settings() if source.has_nms else {}
    calibration = nncf.Dataset(_Calibration(images, source.image_size, extra))
    try:
        with _quiet_nncf(), keep_signal_stack():  # NNCF compiles the model to calibrate (signal_stack.py)
            quantized = nncf.quantize(
                float_model,
                calibration,
                preset=nncf.QuantizationPreset.MIXED if preset == "mixed" else nncf.QuantizationPreset.PERFORMANCE,
                target_device=nncf.TargetDevice.CPU,
                subset_size=len(images),
                fast_bias_correction=False,  # the full bias correction: scores as close as the ONNX path's
                ignored_scope=nncf.IgnoredScope(names=decode_tail(float_model)),
            )
    except Exception as err:  # NNCF and OpenVINO raise many types
        raise YolotlError(f"NNCF could not quantise {source.path} ({first_line(err)})") from err
    set_metadata(quantized, {"quantization": QUANTIZATION, "calibration_images": json.dumps(len(images)),
                             "nncf_preset": preset})
    output.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(quantized, str(output), compress_to_fp16=False)
    return output


def decode_tail(model: Any) -> list[str]:
    """Friendly names of the operations that stay float32: those, other than convolutions, from which no
    convolution can be reached (the decode, the class sigmoid and any NMS after the last convolutions)."""
    feeds_conv: dict[str, bool] = {}
    ops = list(model.get_ordered_ops())  # topologically sorted: consumers come later
    for op in reversed(ops):
        feeds_conv[op.get_friendly_name()] = any(
            target.get_node().get_type_name() in _CONVOLUTIONS or feeds_conv.get(target.get_node().get_friendly_name())
            for port in op.outputs()
            for target in port.get_target_inputs()
        )
    return [
        op.get_friendly_name()
        for op in ops
        if op.get_type_name() not in (*_CONVOLUTIONS, *_NOT_OPERATIONS) and not feeds_conv[op.get_friendly_name()]
    ]


class _Calibration:
    """The calibration images as NNCF reads them: an iterable it may walk more than once (each walk
    reads the images again rather than holding them all in memory)."""

    def __init__(self, images: Sequence[ImageInput], image_size: int, extra: dict[str, np.ndarray]) -> None:
        self.images, self.image_size, self.extra = list(images), image_size, extra

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        return iter(LetterboxCalibration(self.images, self.image_size, self.extra))

    def __len__(self) -> int:
        return len(self.images)


@contextmanager
def _quiet_nncf() -> Iterator[None]:
    """NNCF's INFO lines (one per operation it leaves unquantised) hidden while it runs; its warnings kept."""
    logger = logging.getLogger("nncf")
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


def _import_nncf() -> Any:
    try:
        import nncf
    except ImportError:
        raise YolotlError(f"INT8 quantisation for OpenVINO needs nncf: {OPENVINO_INSTALL_HINT}") from None
    return nncf
