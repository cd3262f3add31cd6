"""A semantic segmenter's predict(): a class map in original pixels for every input form, probabilities,
the letterbox undone exactly (known logits, no model), detection options refused, video and serving refused,
and what yolotl-predict writes (overlay, label map, classes present)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

import yolotl
from tests.inference.helpers import SEMANTIC_CLASSES, lively_detector, lively_segmenter, save_checkpoint
from yolotl.api import predict_source
from yolotl.api.semantic_outputs import class_shares, free_stem, overlay_class_map, write_label_map
from yolotl.api.stream_predict import predict_stream
from yolotl.errors import ConfigError
from yolotl.inference import TorchDetector, predict_class_maps
from yolotl.inference.preprocess import letterbox
from yolotl.inference.sources import source_kind

SIZE = 64


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    return save_checkpoint(lively_segmenter(SIZE), tmp_path_factory.mktemp("semantic") / "semantic.ckpt")


@pytest.fixture(scope="module")
def model(checkpoint) -> TorchDetector:
    return yolotl.load(checkpoint)


def _photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth colour blobs (a random model's classes then form regions, not salt and pepper)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, size=(max(2, height // 16), max(2, width // 16), 3), dtype=np.uint8)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


def test_load_reports_a_semantic_model(model):
    assert model.semantic and not model.segments
    assert model.class_names == SEMANTIC_CLASSES
    assert "semantic" in repr(model)


@pytest.mark.parametrize("kind", ["path", "numpy", "pil", "tensor", "gray"])
def test_class_map_has_the_original_size_for_every_input_form(model, tmp_path, kind):
    array = _photo(50, 130)
    inputs = {"numpy": array, "pil": Image.fromarray(array),
              "tensor": torch.from_numpy(array).permute(2, 0, 1).float() / 255, "gray": array[:, :, 0]}
    if kind == "path":
        Image.fromarray(array).save(tmp_path / "image.png")
        inputs["path"] = str(tmp_path / "image.png")
    (result,) = model.predict(inputs[kind])
    assert set(result) == {"semantic"}
    assert result["semantic"].shape == (50, 130) and result["semantic"].dtype == torch.int64
    assert 0 <= int(result["semantic"].min()) and int(result["semantic"].max()) < len(SEMANTIC_CLASSES)
    if kind != "gray":  # every colour form reads the same pixels, so gives the same map
        torch.testing.assert_close(result["semantic"], model.predict(array)[0]["semantic"], rtol=0, atol=0)


def test_probabilities_sum_to_one_and_their_argmax_is_the_map(model):
    (result,) = model.predict(_photo(90, 40), probabilities=True)
    probs = result["probabilities"]
    assert probs.shape == (3, 90, 40) and probs.dtype == torch.float32
    torch.testing.assert_close(probs.sum(0), torch.ones(90, 40), rtol=0, atol=1e-5)
    assert torch.equal(probs.argmax(0), result["semantic"])
    assert len(torch.unique(result["semantic"])) > 1  # a lively model: the check is not trivially true


def test_a_batch_gives_each_image_what_it_gets_alone(model):
    images = [_photo(50, 130, seed=1), _photo(64, 64, seed=2), _photo(100, 30, seed=3)]
    together = model.predict(images, batch_size=2, probabilities=True)
    for image, result in zip(images, together):
        alone = model.predict(image, probabilities=True)[0]
        assert result["semantic"].shape == image.shape[:2]
        # float sums differ a little with the batch size: a near-tie may flip, nothing more
        assert float((result["semantic"] == alone["semantic"]).float().mean()) > 0.999
        torch.testing.assert_close(result["probabilities"], alone["probabilities"], rtol=0, atol=1e-3)
    batch = torch.stack([torch.from_numpy(_photo(48, 80, seed=s)).permute(2, 0, 1) for s in range(2)])
    assert [r["semantic"].shape for r in model.predict(batch)] == [(48, 80)] * 2  # a 4-D tensor is a batch


def test_an_image_at_the_input_size_gets_the_detectors_own_probabilities(model):
    """No letterbox change at the input size: predict's probabilities are segment_pixels' on the same pixels."""
    image = _photo(SIZE, SIZE, seed=4)
    (result,) = model.predict(image, probabilities=True)
    tensor = torch.from_numpy(letterbox(image, SIZE).image).permute(2, 0, 1)[None].float() / 255
    torch.testing.assert_close(result["probabilities"], model.detector.segment_pixels(tensor)[0], rtol=0, atol=1e-5)


# -- the letterbox undone, with known logits (no model) -------------------------------------------------------

PROTOTYPES = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [114 / 255] * 3])  # black red blue pad


def _colour_logits(images: torch.Tensor) -> torch.Tensor:
    """Stride-8 logits of a 'model' that classifies each 8x8 cell by its nearest colour: class 0 black,
    1 red, 2 blue, 3 the letterbox's grey padding."""
    cells = torch.nn.functional.avg_pool2d(images, 8)  # [B, 3, S/8, S/8]
    distance = ((cells[:, None] - PROTOTYPES[None, :, :, None, None]) ** 2).sum(2)  # [B, 4, S/8, S/8]
    return -10 * distance


@pytest.mark.parametrize("transpose", [False, True], ids=["padded-top-bottom", "padded-left-right"])
def test_known_logits_map_back_onto_the_painted_regions(transpose):
    """A 96x256 image letterboxed to 128 is scaled by 0.5 and padded by 40 px (5 cells): the class map in
    original pixels must hold the painted stripes (32 px: 2 cells, parallel to the padding) exactly and no
    padding at all. (Where a stripe boundary meets the padding, the blend of three cells' logits may pick any
    of them: a property of bilinear logits, not of the geometry, so the stripes run along the padding.)"""
    painted = np.zeros((96, 256), dtype=np.int64)  # class 0: black
    painted[:32] = 1  # red
    painted[64:] = 2  # blue
    if transpose:
        painted = painted.T.copy()
    image = (PROTOTYPES[torch.from_numpy(painted)].numpy() * 255).round().astype(np.uint8)
    (result,) = predict_class_maps(image, 128, _colour_logits, probabilities=True)
    assert result["semantic"].shape == painted.shape
    assert int((result["semantic"] == 3).sum()) == 0  # the padding was cropped off
    assert torch.equal(result["semantic"], torch.from_numpy(painted))
    assert result["probabilities"].shape == (4, *painted.shape)


def test_known_logits_in_unaligned_geometry_keep_the_regions():
    """Padding and stripes that do not fall on cell edges (a 70x150 image at 64): only the pixels next to a
    boundary may differ, and never more than a stride-8 cell's worth."""
    painted = np.zeros((70, 150), dtype=np.int64)
    painted[:, :50] = 1
    painted[:, 100:] = 2
    image = (PROTOTYPES[torch.from_numpy(painted)].numpy() * 255).round().astype(np.uint8)
    (result,) = predict_class_maps(image, 64, _colour_logits)
    agree = float((result["semantic"] == torch.from_numpy(painted)).float().mean())
    assert agree >= 0.85, agree
    for x, label in ((25, 1), (75, 0), (125, 2)):  # the middle of each stripe
        assert set(result["semantic"][20:50, x].tolist()) == {label}


# -- options that do not apply ----------------------------------------------------------------------------------

@pytest.mark.parametrize("option", [{"score_threshold": 0.5}, {"iou_threshold": 0.3}, {"max_detections": 5},
                                    {"classes": ["road"]}, {"masks": True}])
def test_detection_options_are_refused_not_ignored(model, option):
    with pytest.raises(ConfigError, match="semantic segmenter"):
        model.predict(_photo(32, 32), **option)


def test_default_detection_options_and_masks_false_are_accepted(model):
    (result,) = model.predict(_photo(32, 48), score_threshold=0.25, iou_threshold=0.6, max_detections=300,
                              masks=False)
    assert result["semantic"].shape == (32, 48)


def test_boxes_are_refused_and_probabilities_are_for_semantic_models_only(model):
    with pytest.raises(ConfigError, match="task=semantic"):
        model.detect(torch.rand(1, 3, SIZE, SIZE))
    detector = TorchDetector(lively_detector("mobilenetv3_small_100", SIZE))
    with pytest.raises(ConfigError, match="probabilities=True is for semantic"):
        detector.predict(_photo(32, 32), probabilities=True)
    with pytest.raises(ConfigError, match="logits"):
        detector.logits(torch.rand(1, 3, SIZE, SIZE))
    assert model.logits(torch.rand(2, 3, SIZE, 96)).shape == (2, 3, SIZE // 8, 96 // 8)


# -- sources and serving -------------------------------------------------------------------------------------------

def test_source_kind_names_what_open_source_would_open(tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"")
    assert [source_kind(s) for s in (0, "1", "rtsp://cam/1", video, tmp_path, f"{tmp_path}/*.jpg")] == [
        "camera", "camera", "stream", "video", "images", "images"]


def test_videos_cameras_streams_and_tracking_are_refused_before_opening(checkpoint, tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"not opened")
    for source, kind in ((video, "video"), (0, "camera"), ("rtsp://nowhere/cam", "stream")):
        with pytest.raises(ConfigError, match=f"predicts images for now, not a {kind}"):
            predict_source(checkpoint, source, output_dir=tmp_path / "out")
    Image.fromarray(_photo(40, 40)).save(tmp_path / "a.png")
    with pytest.raises(ConfigError, match="no objects to track"):
        predict_source(checkpoint, tmp_path / "a.png", output_dir=tmp_path / "out", track="bytetrack")
    with pytest.raises(ConfigError, match="classes="):
        predict_source(checkpoint, tmp_path / "a.png", output_dir=tmp_path / "out", classes=["road"])
    assert not (tmp_path / "out").exists()


def test_predict_stream_refuses_a_semantic_model(model, tmp_path):
    Image.fromarray(_photo(40, 40)).save(tmp_path / "a.png")
    with pytest.raises(ConfigError, match="predicts images for now"):
        next(predict_stream(model, tmp_path))


def test_serving_refuses_a_semantic_model(checkpoint):
    pytest.importorskip("litserve")
    from yolotl.api.serve_run import build_server

    with pytest.raises(ConfigError, match="semantic segmenter .* yolotl-serve"):
        build_server(checkpoint)


# -- what yolotl-predict writes ----------------------------------------------------------------------------------

def test_predict_source_writes_label_maps_overlays_and_class_shares(model, checkpoint, tmp_path):
    source = tmp_path / "images"
    source.mkdir()
    shapes = {"wide": (50, 130), "tall": (90, 40)}
    for name, (h, w) in shapes.items():
        Image.fromarray(_photo(h, w, seed=len(name))).save(source / f"{name}.png")
    (source / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    out = tmp_path / "out"
    result = predict_source(checkpoint, source, output_dir=out)
    assert result["task"] == "semantic" and result["class_names"] == SEMANTIC_CLASSES
    assert [item["image"] for item in result["skipped"]] == [str(source / "broken.jpg")]
    saved = json.loads((out / "predictions.json").read_text())
    assert [e["image"] for e in saved["images"]] == [str(source / "tall.png"), str(source / "wide.png")]
    wants = model.predict([source / "tall.png", source / "wide.png"])  # one batch, as predict_source ran it
    for entry, want in zip(saved["images"], wants):
        want = want["semantic"]
        name = entry["image"].split("/")[-1][:-4]
        h, w = shapes[name]
        label_map = Image.open(out / "labels" / f"{name}.png")
        assert label_map.mode == "L" and label_map.size == (w, h) and entry["label_map"] == str(out / "labels" /
                                                                                                 f"{name}.png")
        assert np.array_equal(np.asarray(label_map), want.numpy())  # pixel value = class index
        assert np.array_equal(cv2.imread(entry["label_map"], cv2.IMREAD_UNCHANGED), want.numpy())
        overlay = cv2.imread(entry["overlay"])
        assert entry["overlay"] == str(out / f"{name}.jpg") and overlay.shape == (h, w, 3)
        shares = {c["class_name"]: c for c in entry["classes"]}
        assert sum(c["pixels"] for c in entry["classes"]) == h * w
        assert abs(sum(c["share"] for c in entry["classes"]) - 1) < 1e-4
        for label, name_ in enumerate(SEMANTIC_CLASSES):
            count = int((want == label).sum())
            assert (shares[name_]["pixels"] if name_ in shares else 0) == count
        assert "semantic" not in json.dumps(entry["classes"])  # the map itself stays out of the JSON


def test_without_save_images_only_label_maps_are_written(checkpoint, tmp_path):
    Image.fromarray(_photo(40, 60)).save(tmp_path / "a.png")
    result = predict_source(checkpoint, tmp_path / "a.png", output_dir=tmp_path / "out", save_images=False)
    assert result["images"][0]["overlay"] is None
    assert sorted(p.name for p in (tmp_path / "out").rglob("*.*")) == ["a.png", "predictions.json"]


def test_class_shares_overlay_and_label_map_files(tmp_path):
    class_map = np.zeros((20, 30), dtype=np.int64)
    class_map[:, 20:] = 2
    class_map[15:, :5] = 1
    assert class_shares(class_map, SEMANTIC_CLASSES) == [
        {"label": 0, "class_name": "background", "pixels": 375, "share": 0.625},
        {"label": 2, "class_name": "tree", "pixels": 200, "share": 0.33333},
        {"label": 1, "class_name": "road", "pixels": 25, "share": 0.04167},
    ]
    image = np.full((20, 30, 3), 100, dtype=np.uint8)
    drawn = overlay_class_map(image, class_map, SEMANTIC_CLASSES, legend=False)
    assert np.array_equal(drawn[class_map == 0], image[class_map == 0])  # background is left as it is
    assert not np.array_equal(drawn[class_map == 2], image[class_map == 2])
    assert overlay_class_map(image, class_map, SEMANTIC_CLASSES).shape == image.shape  # with its legend
    path = write_label_map(tmp_path / "labels" / "x.png", class_map)
    assert np.array_equal(np.asarray(Image.open(path)), class_map)
    many = np.full((4, 4), 300)  # more than 256 classes: a 16-bit PNG, still the index
    assert cv2.imread(str(write_label_map(tmp_path / "big.png", many)), cv2.IMREAD_UNCHANGED).max() == 300
    (tmp_path / "labels" / "y.png").write_bytes(b"")
    (tmp_path / "y_1.jpg").write_bytes(b"")
    assert [free_stem(tmp_path, s) for s in ("x", "y", "z")] == ["x_1", "y_2", "z"]
