"""ONNX export of a segmenting detector: the mask branch is in the graph and ONNX Runtime's masks are
PyTorch's, on real photos in original pixels."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from scipy.optimize import linear_sum_assignment
from torchvision.ops import box_iou

import yolotl
from tests.data.helpers import shared_datasets
from tests.inference.helpers import lively_detector
from yolotl.errors import ConfigError
from yolotl.inference import OnnxDetector, TorchDetector, export_onnx
from yolotl.inference.predict import input_batch
from yolotl.inference.preprocess import letterbox, load_image

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

CPU = ["CPUExecutionProvider"]
ANIMALS = shared_datasets() / "animals_seg" / "test"


@pytest.fixture(scope="module")
def segmenter() -> yolotl.YoloDetector:
    return lively_detector("mobilenetv3_small_100", 160, task="segment")


@pytest.fixture(scope="module")
def photos() -> list[Path]:
    return sorted(ANIMALS.glob("*.jpg"))[:4]


def _mask_ious(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``[N, H, W]`` and ``[M, H, W]`` bool -> ``[N, M]`` mask IoU (two empty masks agree: 1)."""
    a, b = a.flatten(1).double(), b.flatten(1).double()
    inter = a @ b.T
    union = a.sum(1)[:, None] + b.sum(1)[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1), 1.0)


def _pair_instances(want: dict, got: dict) -> tuple[list[int], list[int], torch.Tensor]:
    """One-to-one pairs by class, box and mask (several detections of a class may share a box once
    clipped, and one anchor may give several classes): rows, columns and the pairs' mask IoU."""
    same = (want["labels"][:, None] == got["labels"][None, :]) & (box_iou(want["boxes"], got["boxes"]) > 0.99)
    mask_iou = _mask_ious(want["masks"], got["masks"]) * same
    rows, cols = linear_sum_assignment(mask_iou.numpy(), maximize=True)
    assert len(rows) == len(want["boxes"]) and bool(same[rows, cols].all())
    return list(rows), list(cols), mask_iou[rows, cols]


@pytest.mark.parametrize("nms", [False, True])
@pytest.mark.real_data("animals_seg/test")
def test_onnx_masks_match_pytorch_on_real_photos(segmenter, photos, nms, tmp_path):
    """Every instance's mask IoU > 0.98 at the network input; in original pixels (where a random head's
    masks often lie mostly in the letterbox padding, leaving slivers) all masks together agree to 0.5%."""
    path = export_onnx(segmenter, tmp_path / "seg.onnx", nms=nms)
    runtime = OnnxDetector(path, providers=CPU)
    assert runtime.segments and "masks" in repr(runtime)
    inputs = input_batch([letterbox(load_image(p), segmenter.config.image_size) for p in photos])
    matched = 0
    for photo, want, got in zip(photos, segmenter.detect(inputs, 0.3), runtime.detect(inputs, 0.3)):
        assert got["masks"].dtype == torch.bool and got["masks"].shape == want["masks"].shape, photo.name
        _, _, ious = _pair_instances(want, got)
        assert bool((ious > 0.98).all()), (photo.name, ious.min())
        matched += len(ious)
    assert matched >= 20  # the lively head finds plenty to compare on these photos
    for photo, want, got in zip(photos, TorchDetector(segmenter).predict(photos, 0.3), runtime.predict(photos, 0.3)):
        assert got["masks"].shape[1:] == load_image(photo).shape[:2]
        rows, cols, _ = _pair_instances(want, got)
        differ = (want["masks"][rows] ^ got["masks"][cols]).sum()
        assert differ <= 0.005 * (want["masks"][rows] | got["masks"][cols]).sum(), photo.name


def test_graph_outputs_and_metadata_of_a_segmenting_export(segmenter, tmp_path):
    path = export_onnx(segmenter, tmp_path / "seg.onnx", nms=True)
    model = onnx.load(path)
    outputs = {o.name: [d.dim_value or d.dim_param for d in o.type.tensor_type.shape.dim] for o in model.graph.output}
    protos = segmenter.config.num_protos
    assert outputs["coefficients"] == ["batch", "anchors", protos]
    assert outputs["protos"] == ["batch", protos, "proto_height", "proto_width"]
    assert outputs["det_coefficients"] == ["detections", protos]
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["task"] == "segment" and meta["num_protos"] == str(protos)


def test_a_detection_export_refuses_masks_clearly(tmp_path):
    detector = lively_detector("mobilenetv3_small_100", 64)
    runtime = OnnxDetector(export_onnx(detector, tmp_path / "det.onnx"), providers=CPU)
    assert not runtime.segments
    assert "masks" not in runtime.predict(torch.rand(3, 50, 70))[0]
    with pytest.raises(ConfigError, match="no mask branch.*task=segment"):
        runtime.predict(torch.rand(3, 50, 70), masks=True)
