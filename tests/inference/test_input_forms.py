"""predict() reads every common input form of one photo the same way, or refuses it naming what it expected.

The photo is generated here and saved as a JPEG with an EXIF orientation tag, so nothing skips: the
path, ``PIL.Image.open`` of it, NumPy arrays (HWC/CHW, uint8/uint16/float 0..1 and 0..255, RGBA,
batches) and tensors (CHW/HWC, uint8, float 0..1 and 0..255, batches) must give the same detections.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.inference.helpers import lively_detector
from yolotl.data.cache import read_image
from yolotl.errors import ConfigError
from yolotl.inference.preprocess import load_image
from yolotl.inference.torch_runtime import TorchDetector

SETTINGS = {"score_threshold": 0.01, "max_detections": 30}
ORIENTATION = 0x0112


@pytest.fixture(scope="module")
def detector() -> TorchDetector:
    return TorchDetector(lively_detector("efficientnet_lite0", 128))


def _photo(height: int = 120, width: int = 200) -> np.ndarray:
    """A photo-like RGB image: gradients, a few solid shapes and sensor noise."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width] / np.array([height, width])[:, None, None]
    image = np.stack([x, y, (x + y) / 2], axis=2) * 200
    image[20:60, 30:90] = (230, 40, 40)
    image[70:110, 120:180] = (30, 30, 220)
    image += rng.normal(0, 12, image.shape)
    return np.clip(image, 0, 255).round().astype(np.uint8)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A JPEG rotated by EXIF (orientation 6: turn 90 degrees clockwise), an 8-bit and a 16-bit gray PNG."""
    folder = tmp_path_factory.mktemp("forms")
    photo = Image.fromarray(_photo())
    exif = photo.getexif()
    exif[ORIENTATION] = 6
    photo.save(folder / "rotated.jpg", exif=exif.tobytes(), quality=92)
    gray = _photo()[:, :, 0]
    Image.fromarray(gray).save(folder / "gray.png")
    Image.fromarray(gray.astype(np.uint16) * 257).save(folder / "gray16.png")
    return {"jpeg": folder / "rotated.jpg", "gray": folder / "gray.png", "gray16": folder / "gray16.png"}


@pytest.fixture(scope="module")
def rgb(files) -> np.ndarray:
    image = read_image(files["jpeg"])
    assert image.shape == (200, 120, 3)  # decoded upright: the EXIF orientation was applied
    return image


@pytest.fixture(scope="module")
def gray(files) -> np.ndarray:
    return np.array(Image.open(files["gray"]))


def _rgba(image: np.ndarray) -> np.ndarray:
    return np.dstack([image, np.random.default_rng(1).integers(0, 256, image.shape[:2], dtype=np.uint8)])


COLOR_FORMS = {
    "path str": lambda f, a: str(f["jpeg"]),
    "path Path": lambda f, a: f["jpeg"],
    "PIL opened with EXIF orientation": lambda f, a: Image.open(f["jpeg"]),
    "PIL RGB": lambda f, a: Image.fromarray(a),
    "PIL RGBA": lambda f, a: Image.fromarray(_rgba(a)),
    "array uint8 HWC": lambda f, a: a,
    "array uint8 CHW": lambda f, a: a.transpose(2, 0, 1),
    "array uint8 HWC RGBA": lambda f, a: _rgba(a),
    "array float32 0..1 HWC": lambda f, a: a.astype(np.float32) / 255,
    "array float64 0..1 CHW": lambda f, a: a.transpose(2, 0, 1) / 255.0,
    "array float64 0..255 HWC": lambda f, a: a.astype(np.float64),
    "array uint16 HWC": lambda f, a: a.astype(np.uint16) * 257,
    "array int64 0..255 HWC": lambda f, a: a.astype(np.int64),
    "array batch BHWC": lambda f, a: a[None],
    "array batch BCHW float 0..1": lambda f, a: a.transpose(2, 0, 1)[None] / 255.0,
    "tensor uint8 CHW": lambda f, a: torch.from_numpy(a).permute(2, 0, 1),
    "tensor float 0..1 CHW": lambda f, a: torch.from_numpy(a).permute(2, 0, 1).float() / 255,
    "tensor float 0..255 CHW": lambda f, a: torch.from_numpy(a).permute(2, 0, 1).float(),
    "tensor float16 0..1 CHW": lambda f, a: torch.from_numpy(a).permute(2, 0, 1).half() / 255,
    "tensor uint8 HWC": lambda f, a: torch.from_numpy(a),
    "tensor float 0..1 HWC": lambda f, a: torch.from_numpy(a).float() / 255,
    "tensor batch float 0..255": lambda f, a: torch.from_numpy(a).permute(2, 0, 1)[None].float(),
    "list of one tensor": lambda f, a: [torch.from_numpy(a).permute(2, 0, 1).float() / 255],
}

GRAY_FORMS = {
    "path 8-bit gray PNG": lambda f, g: f["gray"],
    "path 16-bit gray PNG": lambda f, g: f["gray16"],
    "PIL L": lambda f, g: Image.open(f["gray"]),
    "PIL I;16": lambda f, g: Image.open(f["gray16"]),
    "PIL I": lambda f, g: Image.fromarray(g.astype(np.int32) * 257),
    "PIL F 0..1": lambda f, g: Image.fromarray(g.astype(np.float32) / 255),
    "array uint8 HW": lambda f, g: g,
    "array uint8 HW1": lambda f, g: g[:, :, None],
    "array uint8 1HW": lambda f, g: g[None],
    "array uint16 HW": lambda f, g: g.astype(np.uint16) * 257,
    "array float 0..1 HW": lambda f, g: g / 255.0,
    "tensor uint8 HW": lambda f, g: torch.from_numpy(g),
    "tensor float 0..1 1HW": lambda f, g: torch.from_numpy(g)[None].float() / 255,
    "tensor float 0..255 1HW": lambda f, g: torch.from_numpy(g)[None].float(),
}


def _assert_same(got: list[dict], want: list[dict]) -> None:
    assert len(got) == len(want) == 1
    (g,), (w,) = got, want
    assert len(w["scores"]) > 0, "the reference must have detections to compare"
    assert g["labels"].tolist() == w["labels"].tolist()
    torch.testing.assert_close(g["boxes"], w["boxes"], atol=1e-3, rtol=0)
    torch.testing.assert_close(g["scores"], w["scores"], atol=1e-4, rtol=0)


@pytest.mark.parametrize("form", list(COLOR_FORMS))
def test_each_color_form_gives_the_same_pixels_and_detections(detector, files, rgb, form):
    source = COLOR_FORMS[form](files, rgb)
    single = source[0] if isinstance(source, list) or getattr(source, "ndim", 0) == 4 else source
    np.testing.assert_array_equal(load_image(single), rgb)
    _assert_same(detector.predict(source, **SETTINGS), detector.predict(rgb, **SETTINGS))


@pytest.mark.parametrize("form", list(GRAY_FORMS))
def test_each_grayscale_form_gives_the_same_pixels_and_detections(detector, files, gray, form):
    want = np.repeat(gray[:, :, None], 3, axis=2)
    source = GRAY_FORMS[form](files, gray)
    np.testing.assert_array_equal(load_image(source), want)
    _assert_same(detector.predict(source, **SETTINGS), detector.predict(want, **SETTINGS))


def test_exif_rotated_jpeg_as_path_and_as_pil_image_agree(detector, files):
    by_path = detector.predict(files["jpeg"], **SETTINGS)
    by_pil = detector.predict(Image.open(files["jpeg"]), **SETTINGS)
    _assert_same(by_pil, by_path)
    assert float(by_path[0]["boxes"][:, [0, 2]].max()) <= 120  # upright: 120 px wide, 200 px high


def test_a_batch_array_is_several_images(detector, rgb):
    results = detector.predict(np.stack([rgb, rgb[::-1]]), **SETTINGS)
    assert len(results) == 2
    _assert_same(results[1:], detector.predict(np.ascontiguousarray(rgb[::-1]), **SETTINGS))


def test_ambiguous_shapes_follow_each_library_convention():
    cube = np.arange(27, dtype=np.uint8).reshape(3, 3, 3)
    np.testing.assert_array_equal(load_image(cube), cube)  # arrays: HWC
    np.testing.assert_array_equal(load_image(torch.from_numpy(cube)), cube.transpose(1, 2, 0))  # tensors: CHW


BAD_FORMS = {
    "two channels last": (np.zeros((40, 50, 2), np.uint8), r"\(40, 50, 2\).*1, 3 or 4"),
    "two channels first tensor": (torch.zeros(2, 40, 50), r"\(2, 40, 50\).*1, 3 or 4"),
    "five channels": (np.zeros((40, 50, 5), np.uint8), r"\(40, 50, 5\)"),
    "5-D array": (np.zeros((1, 1, 3, 8, 8), np.float32), r"\(1, 1, 3, 8, 8\)"),
    "5-D tensor": (torch.zeros(1, 1, 3, 8, 8), r"\(1, 1, 3, 8, 8\)"),
    "1-D array": (np.zeros(30, np.uint8), r"\(30,\)"),
    "empty image": (np.zeros((0, 10, 3), np.uint8), r"empty"),
    "negative floats": (np.full((20, 20, 3), -0.5, np.float32), r"-0.5\.\.-0.5.*0\.\.1.*0\.\.255"),
    "normalised tensor": (torch.randn(3, 20, 20) * 2, r"float image tensor has values.*0\.\.1.*0\.\.255"),
    "floats above 255": (np.full((20, 20, 3), 300.0), r"300.*0\.\.255"),
    "NaN": (np.full((20, 20, 3), np.nan, np.float32), r"NaN"),
    "infinity": (torch.full((3, 20, 20), float("inf")), r"infinite"),
    "int32 above 255": (np.full((20, 20, 3), 1000, np.int32), r"int32.*1000.*uint16"),
    "not an image": ({"image": 1}, r"dict.*expected"),
    "a number": (42, r"int.*expected"),
}


@pytest.mark.parametrize("form", list(BAD_FORMS))
def test_unreadable_forms_are_refused_naming_what_was_expected(detector, form):
    source, pattern = BAD_FORMS[form]
    with pytest.raises(ConfigError, match=pattern) as err:
        detector.predict(source)
    assert "expected" in str(err.value)


def test_onnx_runtime_reads_the_forms_the_same_way(detector, rgb, tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from yolotl.inference import OnnxDetector, export_onnx

    runtime = OnnxDetector(export_onnx(detector, tmp_path / "forms.onnx"), providers=["CPUExecutionProvider"])
    want = runtime.predict(rgb, **SETTINGS)
    for form in ("array uint8 CHW", "array float32 0..1 HWC", "tensor float 0..255 CHW", "tensor uint8 HWC"):
        got = runtime.predict(COLOR_FORMS[form](None, rgb), **SETTINGS)
        assert len(got[0]["scores"]) == len(want[0]["scores"]) > 0, form
        torch.testing.assert_close(got[0]["boxes"], want[0]["boxes"], atol=1e-3, rtol=0)
    with pytest.raises(ConfigError, match="1, 3 or 4"):
        runtime.predict(np.zeros((40, 50, 2), np.uint8))
