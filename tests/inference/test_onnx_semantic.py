"""A semantic segmenter exported to ONNX (and OpenVINO, INT8): the stride-8 logits graph, its metadata, and
the same predict() as PyTorch (class maps in original pixels)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from tests.inference.helpers import SEMANTIC_CLASSES, lively_segmenter, save_checkpoint
from yolotl.api import export, parity_summary
from yolotl.errors import CheckpointError, ConfigError
from yolotl.inference import OnnxDetector, TorchDetector, export_onnx

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

CPU = ["CPUExecutionProvider"]
SIZE = 64


@pytest.fixture(scope="module")
def segmenter():
    return lively_segmenter(SIZE)


@pytest.fixture(scope="module")
def model_file(segmenter, tmp_path_factory):
    return export_onnx(segmenter, tmp_path_factory.mktemp("onnx") / "semantic.onnx")


@pytest.fixture(scope="module")
def runtime(model_file) -> OnnxDetector:
    return OnnxDetector(model_file, providers=CPU)


def _photos() -> list[np.ndarray]:
    """Smooth colour blobs of a few shapes (square, wide, tall; smaller and larger than the input size)."""
    rng = np.random.default_rng(3)
    shapes = [(64, 64), (50, 130), (120, 45), (200, 300)]
    return [cv2.resize(rng.integers(0, 255, (max(2, h // 16), max(2, w // 16), 3), dtype=np.uint8), (w, h),
                       interpolation=cv2.INTER_CUBIC) for h, w in shapes]


def _assert_close_logits(got: torch.Tensor, want: torch.Tensor) -> None:
    """Float32 rounding grows with the values: logits agree to 1e-5 of the largest one."""
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5 * float(want.abs().max()))


def test_graph_outputs_the_stride_8_logits_and_says_it_is_semantic(model_file, runtime):
    model = onnx.load(model_file)
    assert [o.name for o in model.graph.output] == ["logits"]
    dims = model.graph.output[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", 3, "logit_height", "logit_width"]
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["task"] == "semantic" and meta["output_stride"] == "8" and meta["nms"] == "false"
    assert runtime.semantic and not runtime.segments and runtime.class_names == SEMANTIC_CLASSES
    assert runtime.image_size == SIZE and "semantic" in repr(runtime)


@pytest.mark.parametrize("shape", [(1, 3, 64, 64), (3, 3, 96, 160)])
def test_logits_match_pytorch_at_any_batch_and_size(segmenter, runtime, shape):
    images = torch.rand(shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = segmenter(images).logits
    got = runtime.logits(images)
    assert got.shape == (shape[0], 3, shape[2] // 8, shape[3] // 8)
    _assert_close_logits(got, want)


def test_predict_gives_pytorchs_class_maps_in_original_pixels(segmenter, runtime):
    images = _photos()
    want = TorchDetector(segmenter).predict(images, probabilities=True)
    got = runtime.predict(images, probabilities=True)
    for image, a, b in zip(images, want, got):
        assert b["semantic"].shape == image.shape[:2] and b["semantic"].dtype == torch.int64
        assert float((a["semantic"] == b["semantic"]).float().mean()) >= 0.995
        torch.testing.assert_close(b["probabilities"], a["probabilities"], rtol=0, atol=1e-4)
    assert len(torch.unique(torch.cat([w["semantic"].flatten() for w in want]))) == 3  # every class appears


def test_fixed_size_graph_runs_a_batch_one_image_at_a_time(segmenter, tmp_path):
    fixed = OnnxDetector(export_onnx(segmenter, tmp_path / "fixed.onnx", dynamic=False), providers=CPU)
    images = torch.rand(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want = segmenter(images).logits
    _assert_close_logits(fixed.logits(images), want)


def test_boxes_nms_and_detection_options_are_refused(segmenter, runtime, tmp_path):
    with pytest.raises(ConfigError, match="no boxes to suppress"):
        export_onnx(segmenter, tmp_path / "nms.onnx", nms=True)
    with pytest.raises(ConfigError, match="semantic segmenter"):
        runtime.detect(torch.rand(1, 3, SIZE, SIZE))
    with pytest.raises(ConfigError, match="semantic segmenter"):
        runtime.boxes_and_scores(torch.rand(1, 3, SIZE, SIZE))
    with pytest.raises(ConfigError, match="classes="):
        runtime.predict(_photos()[0], classes=[1])


def test_a_task_this_yolotl_does_not_know_is_a_checkpoint_error(model_file, tmp_path):
    model = onnx.load(model_file)
    props = {p.key: p.value for p in model.metadata_props} | {"task": "panoptic"}
    onnx.helper.set_model_props(model, props)
    onnx.save(model, tmp_path / "future.onnx")
    with pytest.raises(CheckpointError, match="task=panoptic .* upgrade yolotl"):
        OnnxDetector(tmp_path / "future.onnx", providers=CPU)


def test_export_api_and_parity_summary_of_a_semantic_checkpoint(segmenter, tmp_path):
    checkpoint = save_checkpoint(segmenter, tmp_path / "best.ckpt")
    path = export(checkpoint)
    assert path == tmp_path / "best.onnx"
    line = parity_summary(segmenter, path)
    assert "max |logit diff|" in line and "same class on 100.00% of pixels" in line, line
    with pytest.raises(ConfigError, match="nms=true"):
        export(checkpoint, nms=True, output=tmp_path / "nms.onnx")


def test_int8_model_keeps_the_contract_and_follows_the_float_logits(runtime, tmp_path):
    """INT8 goes through the shared quantiser unchanged (the classifier's output is quantised like a detector's
    class layer). A random model's class margins are small, so only the contract and how closely the logits
    follow are checked here; a trained model's accuracy is yolotl-eval's to measure."""
    from yolotl.inference import quantize_onnx
    from yolotl.inference.predict import input_batch
    from yolotl.inference.preprocess import letterbox

    images = _photos() * 2
    int8 = OnnxDetector(quantize_onnx(runtime.path, images, output=tmp_path / "semantic.int8.onnx"), providers=CPU)
    assert int8.quantization == "int8" and int8.semantic and "int8" in repr(int8)
    batch = input_batch([letterbox(image, SIZE) for image in _photos()])
    want, got = runtime.logits(batch), int8.logits(batch)
    assert np.corrcoef(want.flatten(), got.flatten())[0, 1] > 0.95
    for image, result in zip(_photos(), int8.predict(_photos(), probabilities=True)):
        assert result["semantic"].shape == image.shape[:2]
        torch.testing.assert_close(result["probabilities"].sum(0), torch.ones(image.shape[:2]), rtol=0, atol=1e-5)


def test_openvino_runs_the_same_graph(segmenter, runtime, tmp_path):
    pytest.importorskip("openvino")
    from yolotl.inference import OpenVinoDetector, export_openvino

    ov = OpenVinoDetector(export_openvino(segmenter, tmp_path / "semantic.xml"))
    assert ov.semantic and ov.class_names == SEMANTIC_CLASSES
    images = _photos()
    for a, b in zip(runtime.predict(images, probabilities=True), ov.predict(images, probabilities=True)):
        assert float((a["semantic"] == b["semantic"]).float().mean()) >= 0.995
        torch.testing.assert_close(b["probabilities"], a["probabilities"], rtol=0, atol=1e-4)
    assert "OpenVINO" in parity_summary(segmenter, ov.path)
