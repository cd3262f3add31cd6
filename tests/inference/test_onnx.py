"""ONNX export and the ONNX Runtime detector: same numbers and the same predict() as PyTorch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from torchvision.ops import box_iou

import yolotl
from tests.data.helpers import shared_datasets
from tests.inference.helpers import lively_detector
from yolotl.errors import CheckpointError, ConfigError, YolotlError
from yolotl.api import export, parity_summary
from yolotl.cli.export import run as run_cli
from yolotl.inference import OnnxDetector, TorchDetector, export_onnx
from yolotl.ops import postprocess
from yolotl.api import config_dir

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

BCCD_IMAGES = shared_datasets() / "bccd" / "JPEGImages"
CPU = ["CPUExecutionProvider"]


@pytest.fixture(scope="module")
def detector() -> yolotl.YoloDetector:
    return lively_detector("mobilenetv3_small_100", 96)


@pytest.fixture(scope="module")
def raw_model(detector, tmp_path_factory) -> Path:
    return export_onnx(detector, tmp_path_factory.mktemp("onnx") / "raw.onnx")


@pytest.fixture(scope="module")
def nms_model(detector, tmp_path_factory) -> Path:
    return export_onnx(detector, tmp_path_factory.mktemp("onnx") / "nms.onnx", nms=True)


def _assert_same_outputs(got: tuple[torch.Tensor, torch.Tensor], want: tuple[torch.Tensor, torch.Tensor]) -> None:
    """Float32 rounding grows with the intermediate values (box = point -/+ distance * stride), so box
    coordinates are compared to within 2e-5 of the largest one (a hundredth of a pixel at 500 px)."""
    torch.testing.assert_close(got[0], want[0], rtol=0, atol=2e-5 * float(want[0].abs().max()))
    torch.testing.assert_close(got[1], want[1], rtol=0, atol=1e-4)


@pytest.mark.parametrize("shape", [(1, 3, 64, 64), (3, 3, 96, 160)])
def test_raw_outputs_match_pytorch_at_any_batch_and_size(detector, raw_model, nms_model, shape):
    images = torch.rand(shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = detector.decode(detector(images))
    for path in (raw_model, nms_model):
        _assert_same_outputs(OnnxDetector(path, providers=CPU).boxes_and_scores(images), want)


def test_cpu_neck_and_head_options_export_with_the_same_numbers(tmp_path):
    """The light neck and head with direct box regression (reg_max=1: a softplus in the decode) run in ONNX
    Runtime as in PyTorch."""
    light = lively_detector("mobilenetv3_small_100", 96, neck="light", head="light", reg_max=1)
    path = export_onnx(light, tmp_path / "light.onnx")
    images = torch.rand((2, 3, 96, 128), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = light.decode(light(images))
    _assert_same_outputs(OnnxDetector(path, providers=CPU).boxes_and_scores(images), want)


def test_nms_free_detector_predicts_the_same_through_onnx_runtime_without_nms(tmp_path):
    """An NMS-free model's file says so; ONNX Runtime then keeps its best scores as PyTorch does, overlapping
    boxes included (no NMS in either), and a graph with NMS appended is refused."""
    detector = lively_detector("mobilenetv3_small_100", 96, nms_free=True)
    path = export_onnx(detector, tmp_path / "nms_free.onnx")
    runtime = OnnxDetector(path, providers=CPU)
    assert runtime.nms_free
    images = [np.asarray(np.random.default_rng(i).integers(0, 255, (80, 120, 3)), dtype=np.uint8) for i in range(2)]
    want = TorchDetector(detector).predict(images, score_threshold=0.001, max_detections=50)
    got = runtime.predict(images, score_threshold=0.001, max_detections=50)
    for w, g in zip(want, got):
        assert torch.equal(w["labels"], g["labels"]) and len(w["boxes"]) > 1
        torch.testing.assert_close(g["boxes"], w["boxes"], atol=1e-2, rtol=0)
    assert float(box_iou(want[0]["boxes"], want[0]["boxes"]).fill_diagonal_(0).max()) > 0.6  # no NMS ran
    with pytest.raises(ConfigError, match="NMS-free"):
        export_onnx(detector, tmp_path / "with_nms.onnx", nms=True)


def test_graph_nms_equals_torchvision_postprocess_on_the_same_outputs(nms_model):
    runtime = OnnxDetector(nms_model, providers=CPU)
    images = torch.rand(3, 3, 96, 128, generator=torch.Generator().manual_seed(2))
    boxes, scores = runtime.boxes_and_scores(images)
    for settings in [(0.3, 0.5, 300), (0.1, 0.7, 5)]:
        expected = postprocess(boxes, scores, *settings)
        got = runtime.detect(images, *settings)
        assert sum(len(d["scores"]) for d in expected) > 10
        for want, have in zip(expected, got):
            torch.testing.assert_close(have["scores"], want["scores"])
            torch.testing.assert_close(have["boxes"], want["boxes"])
            assert have["labels"].tolist() == want["labels"].tolist()


def test_predict_is_the_same_with_and_without_graph_nms(raw_model, nms_model):
    image = np.random.default_rng(3).integers(0, 255, size=(90, 150, 3), dtype=np.uint8)
    settings = {"score_threshold": 0.011, "max_detections": 20, "classes": ["a", "c"]}
    raw = OnnxDetector(raw_model, providers=CPU).predict([image, image[:40]], **settings)
    nms = OnnxDetector(nms_model, providers=CPU).predict([image, image[:40]], **settings)
    assert len(raw) == len(nms) == 2 and len(raw[0]["scores"]) > 0
    for a, b in zip(raw, nms):
        torch.testing.assert_close(a["boxes"], b["boxes"])
        assert set(a["labels"].tolist()) <= {0, 2} and a["labels"].tolist() == b["labels"].tolist()
        assert float(a["boxes"][:, 2].max()) <= 150


def test_metadata_round_trips(detector, raw_model, nms_model):
    props = {p.key: p.value for p in onnx.load(raw_model).metadata_props}
    assert props["backbone"] == "mobilenetv3_small_100" and json.loads(props["class_names"]) == ["a", "b", "c"]
    assert json.loads(props["strides"]) == [8, 16, 32] and props["image_size"] == "96"
    raw, nms = OnnxDetector(raw_model, providers=CPU), OnnxDetector(nms_model, providers=CPU)
    assert (raw.class_names, raw.num_classes, raw.image_size, raw.strides) == (["a", "b", "c"], 3, 96, [8, 16, 32])
    assert not raw.has_nms and nms.has_nms
    assert [o.name for o in nms.session.get_outputs()] == ["boxes", "scores", "det_index", "det_boxes", "det_scores"]


@pytest.mark.slow
def test_static_export_fixes_the_input_and_still_predicts_batches(detector, raw_model, tmp_path):
    path = export_onnx(detector, tmp_path / "static.onnx", dynamic=False)
    runtime = OnnxDetector(path, providers=CPU)
    assert runtime.session.get_inputs()[0].shape == [1, 3, 96, 96]
    images = [np.full((80, 64, 3), v, dtype=np.uint8) for v in (30, 200)]
    got = runtime.predict(images, score_threshold=0.015)
    want = OnnxDetector(raw_model, providers=CPU).predict(images, score_threshold=0.015)
    assert [len(d["scores"]) for d in got] == [len(d["scores"]) for d in want] and len(got[1]["scores"]) > 0
    with pytest.raises(ConfigError, match="96x96"):
        runtime.detect(torch.rand(1, 3, 64, 64))


def test_unknown_format_and_exporter_are_config_errors(detector, tmp_path):
    with pytest.raises(ConfigError, match="onnx"):
        export(tmp_path / "best.ckpt", format="tensorrt")
    with pytest.raises(ConfigError, match="torchscript"):
        export_onnx(detector, tmp_path / "m.onnx", exporter="tflite")


def test_missing_garbage_and_foreign_files_raise_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        OnnxDetector(tmp_path / "missing.onnx")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"this is not a protobuf")
    with pytest.raises(CheckpointError, match="garbage.onnx.*not an ONNX model"):
        OnnxDetector(garbage)
    foreign = tmp_path / "foreign.onnx"
    node = onnx.helper.make_node("Identity", ["x"], ["y"])
    value = onnx.helper.make_tensor_value_info
    graph = onnx.helper.make_graph(
        [node], "g", [value("x", onnx.TensorProto.FLOAT, [1])], [value("y", onnx.TensorProto.FLOAT, [1])]
    )
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)]), foreign)
    with pytest.raises(CheckpointError, match="not one exported by yolotl"):
        OnnxDetector(foreign)


def test_missing_onnxruntime_names_the_extra(monkeypatch, raw_model):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    with pytest.raises(YolotlError, match=r'pip install "yolotl\[onnx\]"'):
        OnnxDetector(raw_model)


def test_cli_reports_a_bad_checkpoint_in_one_line(tmp_path, capsys):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(config_name="export", overrides=[f"ckpt={tmp_path}/missing.ckpt"])
    with pytest.raises(SystemExit) as exit_info:
        run_cli(cfg)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == f"yolotl: error: checkpoint {tmp_path}/missing.ckpt not found"


def test_parity_summary_reports_small_differences(detector, raw_model):
    line = parity_summary(detector, raw_model)
    assert "max |box diff|" in line and "max |score diff|" in line


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("YOLOTL_TEST_DYNAMO"), reason="about a minute; set YOLOTL_TEST_DYNAMO=1")
def test_dynamo_exporter_matches_pytorch_with_dynamic_shapes(detector, tmp_path):
    """torch.export-based path (about a minute on 2 CPU cores)."""
    runtime = OnnxDetector(export_onnx(detector, tmp_path / "dynamo.onnx", exporter="dynamo", nms=True), providers=CPU)
    for shape in [(1, 3, 64, 64), (3, 3, 96, 160)]:
        images = torch.rand(shape, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            want = detector.decode(detector(images))
        _assert_same_outputs(runtime.boxes_and_scores(images), want)


def _photos() -> list:
    """Real photos: a few BCCD blood smears (the caller is marked ``real_data``) and two skimage images."""
    from skimage import data

    return [*sorted(BCCD_IMAGES.glob("*.jpg"))[:8], data.chelsea(), data.astronaut()]


def _assert_same_detections(want: dict[str, torch.Tensor], got: dict[str, torch.Tensor]) -> None:
    """Equal counts, and a one-to-one matching (same class, best IoU) with IoU > 0.99 and |score diff| < 1e-3."""
    assert len(got["scores"]) == len(want["scores"])
    if not len(want["scores"]):
        return
    iou = box_iou(want["boxes"], got["boxes"])
    iou[want["labels"][:, None] != got["labels"][None, :]] = -1
    matched: set[int] = set()
    for i in range(len(want["scores"])):
        j = int(iou[i].argmax())
        assert j not in matched and float(iou[i, j]) > 0.99
        assert abs(float(want["scores"][i] - got["scores"][j])) < 1e-3
        matched.add(j)


@pytest.mark.slow
@pytest.mark.real_data("bccd/JPEGImages")
def test_trained_detector_predicts_the_same_through_onnx_runtime(trained_run, tmp_path):
    torch_detector = yolotl.load(trained_run.checkpoint)
    synthetic = sorted((trained_run.data_root / "test" / "images").glob("*.png"))
    # The shapes detector finds its shapes at 0.1; on photos only low-score boxes, hence 0.01 there.
    cases = [(synthetic, 0.1), (_photos(), 0.01)]
    wanted = [torch_detector.predict(images, score_threshold=threshold) for images, threshold in cases]
    assert sum(len(d["scores"]) > 0 for d in wanted[0]) >= 15 and sum(len(d["scores"]) for d in wanted[1]) > 0
    for nms in (False, True):
        runtime = OnnxDetector(export(trained_run.checkpoint, output=tmp_path / f"nms_{nms}.onnx", nms=nms))
        for (images, threshold), want in zip(cases, wanted):
            got = runtime.predict(images, score_threshold=threshold)
            assert len(got) == len(want) == len(images)
            for w, g in zip(want, got):
                _assert_same_detections(w, g)


@pytest.mark.slow
def test_export_cli_writes_only_the_model_and_prints_parity(trained_run, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "yolotl.cli.export", f"ckpt={trained_run.checkpoint}", "output=model.onnx", "nms=true"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "wrote model.onnx" in result.stdout and "max |score diff|" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]  # no outputs/, .hydra/ or log file
    assert OnnxDetector(tmp_path / "model.onnx").has_nms


@pytest.mark.parametrize("index", [0, 1, 2])
def test_classes_filter_before_the_detection_cap_in_both_graphs(detector, raw_model, nms_model, index):
    image = np.random.default_rng(1).integers(0, 255, size=(96, 96, 3), dtype=np.uint8)
    want = TorchDetector(detector).predict([image], score_threshold=0.0, max_detections=1, classes=[index])[0]
    assert want["labels"].tolist() == [index]
    for model in (raw_model, nms_model):
        got = OnnxDetector(model).predict([image], score_threshold=0.0, max_detections=1, classes=[index])[0]
        assert got["labels"].tolist() == [index]
        torch.testing.assert_close(got["scores"], want["scores"], rtol=0, atol=1e-4)
