"""Instance segmentation data: readers keep segments as read, the health checks find bad outlines,
the dataset rasterises masks at the input size and keeps them aligned with boxes, labels and flags
through letterbox, affine, flips, mosaic and mixup."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

from yolotl.data import AUGMENT_PRESETS, DetectionDataset, ImageRecord, SampleKey, build_train_transforms
from yolotl.data.datamodule import resize_batch
from yolotl.data.dataset import collate_detections
from yolotl.data.formats import read_coco_split, read_yolo_split
from yolotl.data.health import check_dataset, strict_error
from yolotl.data.segments import Segment, self_intersects
from yolotl.data.transforms import letterbox_params

SIZE = 96
_CATEGORIES = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]


def _rle(mask: np.ndarray, compressed: bool = True) -> dict:
    """COCO RLE of a binary mask: compressed (str counts) or uncompressed (list of run lengths)."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    if compressed:
        return {"size": rle["size"], "counts": rle["counts"].decode()}
    flat = mask.astype(np.uint8).flatten(order="F")
    edges = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate([[0], edges, [flat.size]])).tolist()
    return {"size": list(mask.shape), "counts": ([0] if flat[0] else []) + runs}


def _ann(ann_id: int, image_id: int, bbox: list[float], segmentation, crowd: int = 0, cat: int = 1):
    return {"id": ann_id, "image_id": image_id, "category_id": cat, "bbox": bbox,
            "segmentation": segmentation, "iscrowd": crowd}


def _coco(annotations: list[dict], images: int = 2) -> dict:
    return {"images": [{"id": i, "file_name": f"{i}.png", "width": 100, "height": 80}
                       for i in range(1, images + 1)],
            "annotations": annotations, "categories": _CATEGORIES}


def test_coco_reads_polygons_rle_and_crowd_rle_as_read(make_coco) -> None:
    region = np.zeros((80, 100), np.uint8)
    region[10:30, 40:70] = 1
    crowd = np.zeros((80, 100), np.uint8)
    crowd[50:70, 5:25] = 1
    two_pieces = [[10, 10, 30, 10, 30, 30, 10, 30], [32, 10, 38, 10, 38, 20]]
    root = make_coco("train", _coco([
        _ann(1, 1, [10, 10, 28, 20], two_pieces),
        _ann(2, 1, [40, 10, 30, 20], _rle(region), cat=2),
        _ann(3, 1, [5, 50, 20, 20], _rle(crowd, compressed=False), crowd=1),
    ]))  # image 2 has no objects
    split = read_coco_split(root, "train")
    record, background = split.records
    polygons, compressed, uncompressed = record.segments
    assert [p.shape for p in polygons.polygons] == [(4, 2), (3, 2)] and polygons.rle is None
    assert isinstance(compressed.rle["counts"], str) and isinstance(uncompressed.rle["counts"], list)
    assert record.crowd.tolist() == [False, False, True] and background.segments is None
    np.testing.assert_allclose(polygons.bbox(), [10, 10, 38, 30])
    np.testing.assert_allclose(uncompressed.bbox(), [5, 50, 25, 70])
    assert compressed.area() == 600 and uncompressed.area() == 400
    assert (compressed.rasterise(80, 100, 80, 100) == region).all()
    assert (uncompressed.rasterise(40, 50, 80, 100).sum()) == 100  # nearest-resized to a half frame
    trained = record.for_training()  # the crowd region goes, with its segment
    assert trained.num_objects == 2 and trained.segments == record.segments[:2]
    assert record.select(np.array([False, True, False])).segments == (compressed,)
    with pytest.raises(ValueError, match="segments has 1 entries for 3 boxes"):
        ImageRecord(record.image_path, record.boxes, record.labels, 100, 80, segments=(None,))


def test_coco_bad_segmentations_skip_their_image(make_coco) -> None:
    root = make_coco("train", _coco([
        _ann(1, 1, [10, 10, 20, 20], [[10, 10, 30, 10, 30]]),  # 5 coordinates
        _ann(2, 2, [10, 10, 20, 20], {"counts": "abc"}),  # no size
    ], images=3))
    split = read_coco_split(root, "train")
    assert [r.image_path.name for r in split.records] == ["3.png"]
    kinds = [f.kind for f in split.findings]
    assert kinds[:2] == ["odd_polygon_coordinates", "malformed_label"]


def test_yolo_reader_tells_seg_lines_from_box_lines(make_yolo) -> None:
    root = make_yolo({"train": {"a.jpg": "0 0.5 0.5 0.2 0.2\n2 0.1 0.1 0.5 0.1 0.3 0.5\n",
                                "b.jpg": "1 0.1 0.1 0.5 0.1 0.3 0.5 0.2\n", "c.jpg": ""}})
    split = read_yolo_split(root, "train")
    record, background = split.records
    assert record.segments[0] is None
    np.testing.assert_allclose(record.segments[1].polygons[0], [[10, 8], [50, 8], [30, 40]])
    np.testing.assert_allclose(record.boxes[1], record.segments[1].bbox())  # the polygon's box
    assert background.segments is None
    [odd] = [f for f in split.findings if f.kind == "odd_polygon_coordinates"]
    assert "b.txt:1" in odd.detail and odd.detail.endswith("image skipped")


def test_self_intersection_test() -> None:
    square = np.array([[0, 0], [4, 0], [4, 4], [0, 4]], float)
    bowtie = np.array([[0, 0], [4, 4], [4, 0], [0, 4]], float)
    circle = np.stack([np.cos(t := np.linspace(0, 2 * np.pi, 600, endpoint=False)), np.sin(t)], 1)
    assert not self_intersects(square) and self_intersects(bowtie) and not self_intersects(circle)
    eight = np.stack([np.cos(t), np.sin(2 * t)], 1)  # a figure eight crosses at the origin
    assert self_intersects(eight)


def test_health_check_finds_each_bad_outline_and_fix_drops_them(make_coco) -> None:
    square = [[10, 10, 30, 10, 30, 30, 10, 30]]
    wrong_size = _rle(np.ones((40, 50), np.uint8))
    annotations = [
        _ann(1, 1, [10, 10, 20, 20], square),  # fine
        _ann(2, 1, [10, 10, 20, 3], [[10, 10, 30, 10]]),  # 2 points
        _ann(3, 1, [10, 10, 21, 21], [[10, 10, 20, 20, 31, 31]]),  # collinear: zero area
        _ann(4, 1, [10, 10, 20, 30], [[10, 10, 30, 30, 30, 10, 10, 40]]),  # bowtie
        _ann(5, 1, [80, 60, 20, 20], [[80, 60, 130, 60, 130, 95, 80, 95]]),  # reaches outside
        _ann(6, 1, [80, 60, 19, 19], [[110, 60, 130, 60, 130, 70]]),  # wholly outside
        _ann(7, 1, [50, 50, 20, 20], square),  # box far from its mask
        _ann(8, 1, [12, 12, 20, 20], []),  # no segment
        _ann(9, 2, [0, 0, 50, 40], wrong_size),  # RLE of another size: image 2 skipped
    ]
    report = check_dataset(make_coco("train", _coco(annotations, images=3)), "coco", ["train"])
    found = {f.kind: f.detail for f in report.findings if f.index is not None and f.box is not None}
    assert set(found) == {"polygon_too_few_points", "zero_area_segment", "self_intersecting_polygon",
                          "clipped_polygon", "polygon_outside_image", "box_mask_mismatch",
                          "missing_segment", "rle_size_mismatch"}
    assert "[80.0, 60.0, 130.0, 95.0]" in found["clipped_polygon"]
    assert "RLE size [40, 50]" in found["rle_size_mismatch"]
    assert {f.box for f in report.findings if f.kind == "box_mask_mismatch"} == {6}
    stats = report.stats["train"]
    assert (stats.images, stats.boxes) == (2, 5)  # 3 objects dropped, image 2 skipped
    error = strict_error(report)
    assert error is not None and "data.checks.policy=strict" in str(error)


def _polygon(cx: float, cy: float, radius: float, points: int = 12) -> np.ndarray:
    angles = np.linspace(0, 2 * np.pi, points, endpoint=False)
    return np.stack([cx + radius * np.cos(angles), cy + radius * 0.8 * np.sin(angles)], 1)


_COLOURS = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [0, 255, 255]], np.uint8)


def _painted_records(tmp_path: Path) -> list[ImageRecord]:
    """Non-square images, each object a polygon painted in its label's colour on grey, so a mask
    can be checked against the pixels it covers."""
    rng = np.random.default_rng(0)
    records = []
    for i, (width, height) in enumerate([(160, 90), (70, 120), (128, 128), (100, 60)]):
        image = np.full((height, width, 3), 128, np.uint8)
        polygons, labels = [], []
        for j in range(3):
            radius = rng.uniform(0.12, 0.25) * min(width, height)
            cx, cy = rng.uniform(radius, width - radius), rng.uniform(radius, height - radius)
            polygons.append(_polygon(cx, cy, radius))
            labels.append((i + j) % len(_COLOURS))
        for polygon, label in zip(polygons, labels):  # later objects occlude earlier ones
            cv2.fillPoly(image, [np.round(polygon).astype(np.int32)], _COLOURS[label].tolist())
        path = tmp_path / f"{i}.png"
        cv2.imwrite(str(path), image[..., ::-1])
        segments = tuple(Segment(polygons=(p,)) for p in polygons)
        boxes = np.array([s.bbox() for s in segments], np.float32)
        records.append(ImageRecord(path, boxes, np.array(labels), width, height, segments=segments))
    return records


def _check_aligned(target: dict) -> None:
    """Masks, boxes and labels agree in number; each mask is non-empty and each box is the extent
    of its mask (found here from the mask's pixels, not with the dataset's own masks_to_boxes).

    This is only internal consistency: that masks and boxes lie on their objects in the picture is
    checked in test_mask_alignment.py (painted objects that do not occlude each other)."""
    masks, boxes = target["masks"], target["boxes"]
    assert masks.dtype == torch.uint8 and masks.shape == (len(boxes), SIZE, SIZE)
    assert len(target["labels"]) == len(boxes) == len(target["iscrowd"])
    for mask, box in zip(masks.numpy(), boxes.numpy()):
        ys, xs = np.nonzero(mask)
        assert len(xs), "an empty mask kept its object"
        np.testing.assert_array_equal(box, [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])


def _colour_share(image: torch.Tensor, mask: torch.Tensor, label: int) -> float:
    pixels = (image.permute(1, 2, 0)[mask.bool()] * 255).numpy()
    return float((np.abs(pixels - _COLOURS[label]).max(axis=1) < 40).mean())


def test_letterboxed_masks_match_the_letterboxed_boxes(tmp_path: Path) -> None:
    records = _painted_records(tmp_path)
    dataset = DetectionDataset(records, image_size=SIZE, masks=True)
    for index, record in enumerate(records):
        image, target = dataset[index]
        _check_aligned(target)
        scale, pad_x, pad_y = letterbox_params(record.height, record.width, SIZE)
        expected = record.boxes * scale + np.array([pad_x, pad_y] * 2, np.float32)
        np.testing.assert_allclose(target["boxes"].numpy(), expected, atol=2.0)
        # the last-painted object is never occluded: its mask covers its own colour
        assert _colour_share(image, target["masks"][-1], int(target["labels"][-1])) > 0.9


def test_masks_follow_their_objects_through_augmentation(tmp_path: Path) -> None:
    """Property over seeds: heavy geometry (rotation, shear, zoom, flips), mosaic and mixup."""
    records = _painted_records(tmp_path)
    settings = AUGMENT_PRESETS["heavy"]
    kwargs = {**settings.transforms_kwargs, "hsv": 0.0, "vflip": 0.5}
    dataset = DetectionDataset(records, build_train_transforms(SIZE, **kwargs), SIZE,
                               build_train_transforms(SIZE, **kwargs, mosaic=True), masks=True)
    checked = 0
    for seed in range(6):
        for key in (SampleKey(0, seed=seed), SampleKey(1, mosaic=(0, 2, 3), seed=seed),
                    SampleKey(2, mosaic=(1, 3, 0), mixup=3, seed=seed)):
            image, target = dataset[key]
            _check_aligned(target)
            if key.mixup >= 0:
                continue
            last = records[key.index]  # the last-painted object of each image is never occluded
            for j in range(len(target["labels"])):
                share = _colour_share(image, target["masks"][j], int(target["labels"][j]))
                if target["masks"][j].sum() > 30 and int(target["labels"][j]) == int(last.labels[-1]):
                    assert share > 0.5
                    checked += 1
    assert checked > 5


def test_an_object_whose_mask_vanishes_is_dropped_with_its_box(tmp_path: Path) -> None:
    [record] = _painted_records(tmp_path)[:1]
    sliver = Segment(polygons=(np.array([[-9, -9], [-5, -9], [-5, -5]]),))  # off the image
    segments = (*record.segments, sliver)
    boxes = np.concatenate([record.boxes, [[10, 10, 11, 11]]]).astype(np.float32)
    labels = np.concatenate([record.labels, [4]])
    tiny = ImageRecord(record.image_path, boxes, labels, record.width, record.height,
                       segments=segments)
    _, target = DetectionDataset([tiny], image_size=SIZE, masks=True)[0]
    assert len(target["boxes"]) == 3 and 4 not in target["labels"].tolist()


def test_collate_and_multi_scale_keep_per_image_masks(tmp_path: Path) -> None:
    records = _painted_records(tmp_path)
    background = ImageRecord(records[0].image_path, np.zeros((0, 4), np.float32),
                             np.zeros(0, np.int64), records[0].width, records[0].height)
    detection = DetectionDataset([background], image_size=SIZE, masks=True)
    assert "masks" not in detection[0][1]  # detection data: no masks key
    outlines_unused = DetectionDataset(records, image_size=SIZE)  # a detection run: outlines are not drawn
    assert "masks" not in outlines_unused[0][1]
    np.testing.assert_allclose(outlines_unused[0][1]["boxes"].numpy(),
                               records[0].boxes * letterbox_params(records[0].height, records[0].width, SIZE)[0]
                               + np.array(letterbox_params(records[0].height, records[0].width, SIZE)[1:] * 2,
                                          np.float32), atol=1e-3)  # boxes as annotated, not from masks
    dataset = DetectionDataset([records[0], background], image_size=SIZE, masks=True)
    images, targets = collate_detections([dataset[0], dataset[1]])
    assert [t["masks"].shape[0] for t in targets] == [3, 0]
    images, targets = resize_batch((images, targets), 64)
    assert [tuple(t["masks"].shape) for t in targets] == [(3, 64, 64), (0, 64, 64)]
