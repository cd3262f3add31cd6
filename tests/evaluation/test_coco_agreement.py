"""yolotl's mAP path and pycocotools' COCOeval, run on the COCO JSON yolotl exports, must agree."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from yolotl.evaluation import DetectionMetrics
from yolotl.evaluation.coco_json import coco_ground_truth, coco_results, write_json
from yolotl.evaluation.evaluator import Evaluation, score
from yolotl.evaluation.mask_rle import encode_masks

CLASSES = ["cell", "blob", "speck"]


def _scene(rng: np.random.Generator, n: int, size: float) -> dict[str, torch.Tensor]:
    xy = rng.uniform(0, 500, (n, 2))
    wh = rng.uniform(size / 12, size, (n, 2))  # spans COCO's small / medium / large areas
    return {"boxes": torch.tensor(np.hstack([xy, xy + wh]), dtype=torch.float32),
            "labels": torch.tensor(rng.integers(0, len(CLASSES), n))}


def _noisy_predictions(rng: np.random.Generator, target: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Jittered true boxes (some with the wrong class) plus random false positives, random scores."""
    boxes = target["boxes"].numpy() + rng.normal(0, 4, target["boxes"].shape)
    labels = target["labels"].numpy().copy()
    flip = rng.random(len(labels)) < 0.15
    labels[flip] = rng.integers(0, len(CLASSES), int(flip.sum()))
    extra = _scene(rng, int(rng.integers(0, 6)), 150)
    boxes = np.vstack([boxes, extra["boxes"].numpy()])
    labels = np.concatenate([labels, extra["labels"].numpy()])
    keep = rng.random(len(labels)) > 0.1  # some objects are missed
    return {"boxes": torch.tensor(boxes[keep], dtype=torch.float32),
            "scores": torch.tensor(rng.uniform(0.01, 1.0, int(keep.sum())), dtype=torch.float32),
            "labels": torch.tensor(labels[keep], dtype=torch.int64)}


def pycocotools_scores(gt_path, results_path, iou_type: str = "bbox") -> dict[str, float]:
    """COCOeval (``bbox`` or ``segm``) straight from the files, with yolotl's 300 detections per image."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        coco_eval = COCOeval(gt, gt.loadRes(str(results_path)), iou_type)
        coco_eval.params.maxDets = [1, 10, 300]
        coco_eval.evaluate()
        coco_eval.accumulate()
    precision = coco_eval.eval["precision"]  # [T, R, K, A, M]

    def mean(values: np.ndarray) -> float:  # -1: no ground truth in that area range (COCO's convention)
        valid = values[values > -1]
        return float(valid.mean()) if valid.size else -1.0

    out = {name: mean(precision[:, :, :, area, -1]) for area, name in
           enumerate(("map", "map_small", "map_medium", "map_large"))}
    out["map_50"] = mean(precision[0, :, :, 0, -1])
    out["map_75"] = mean(precision[5, :, :, 0, -1])
    names = {c["id"]: c["name"] for c in gt.dataset["categories"]}
    for k, cat_id in enumerate(coco_eval.params.catIds):
        if (precision[:, :, k, 0, -1] > -1).any():
            out[f"ap/{names[cat_id]}"] = mean(precision[:, :, k, 0, -1])
    return out


def test_coco_json_scored_by_pycocotools_agrees_with_yolotl_metrics(tmp_path):
    pytest.importorskip("pycocotools")
    rng = np.random.default_rng(0)
    targets = [_scene(rng, int(rng.integers(0, 12)), 220) for _ in range(40)]
    predictions = [_noisy_predictions(rng, t) for t in targets]
    metric = DetectionMetrics(CLASSES)
    metric.update(predictions, targets)
    ours = metric.compute()

    paths = [f"img_{i}.jpg" for i in range(len(targets))]
    gt = coco_ground_truth(targets, paths, [(800, 800)] * len(targets), CLASSES)
    theirs = pycocotools_scores(write_json(gt, tmp_path / "gt.json"),
                                write_json(coco_results(predictions), tmp_path / "results.json"))

    assert 0.2 < ours["map"] < 0.9, ours  # a non-trivial case, not all-perfect or all-zero
    for key, value in theirs.items():
        assert ours[key] == pytest.approx(value, abs=1e-3), key


def _with_crowds(rng: np.random.Generator, target: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """About a fifth of the boxes flagged iscrowd."""
    return target | {"iscrowd": torch.tensor(rng.random(len(target["labels"])) < 0.2)}


def _inside_crowds(rng: np.random.Generator, target: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Small detections inside each crowd region (low IoU, large share of their own area covered)."""
    crowd = target["boxes"][target["iscrowd"]].numpy()
    corner = crowd[:, :2] + rng.uniform(0.0, 0.5, (len(crowd), 2)) * (crowd[:, 2:] - crowd[:, :2])
    boxes = np.hstack([corner, corner + (crowd[:, 2:] - crowd[:, :2]) / 3])
    return {"boxes": torch.tensor(boxes, dtype=torch.float32),
            "scores": torch.tensor(rng.uniform(0.01, 1.0, len(crowd)), dtype=torch.float32),
            "labels": target["labels"][target["iscrowd"]]}


def test_crowd_regions_scored_by_pycocotools_agree_with_yolotl_metrics(tmp_path):
    """iscrowd ground truth, with detections on it and inside it: the same numbers as COCOeval."""
    pytest.importorskip("pycocotools")
    rng = np.random.default_rng(1)
    targets = [_with_crowds(rng, _scene(rng, int(rng.integers(1, 12)), 220)) for _ in range(40)]
    assert 10 < sum(int(t["iscrowd"].sum()) for t in targets) < 60
    predictions = []
    for target in targets:
        noisy, inside = _noisy_predictions(rng, target), _inside_crowds(rng, target)
        predictions.append({k: torch.cat([noisy[k], inside[k]]) for k in noisy})
    metric = DetectionMetrics(CLASSES)
    metric.update(predictions, targets)
    ours = metric.compute()

    paths = [f"img_{i}.jpg" for i in range(len(targets))]
    gt = coco_ground_truth(targets, paths, [(800, 800)] * len(targets), CLASSES)
    assert sum(a["iscrowd"] for a in gt["annotations"]) == sum(int(t["iscrowd"].sum()) for t in targets)
    theirs = pycocotools_scores(write_json(gt, tmp_path / "gt.json"),
                                write_json(coco_results(predictions), tmp_path / "results.json"))
    plain = DetectionMetrics(CLASSES)  # the same boxes scored as ordinary objects
    plain.update(predictions, [{"boxes": t["boxes"], "labels": t["labels"]} for t in targets])
    assert abs(plain.compute()["map"] - ours["map"]) > 0.01
    for key, value in theirs.items():
        assert ours[key] == pytest.approx(value, abs=1e-3), key


def test_coco_json_layout():
    target = {"boxes": torch.tensor([[10.0, 20.0, 40.0, 60.0]]), "labels": torch.tensor([2])}
    pred = {"boxes": torch.tensor([[11.0, 21.0, 41.0, 59.0]]), "scores": torch.tensor([0.5]), "labels": torch.tensor([2])}
    gt = coco_ground_truth([target], ["a.jpg"], [(100, 200)], CLASSES)
    assert gt["images"] == [{"id": 1, "file_name": "a.jpg", "height": 100, "width": 200}]
    assert gt["annotations"][0] | {} == {"id": 1, "image_id": 1, "category_id": 3, "bbox": [10.0, 20.0, 30.0, 40.0],
                                         "area": 1200.0, "iscrowd": 0}
    assert gt["categories"][2] == {"id": 3, "name": "speck"}
    crowd = coco_ground_truth([target | {"iscrowd": torch.tensor([True])}], ["a.jpg"], [(100, 200)], CLASSES)
    assert crowd["annotations"][0]["iscrowd"] == 1
    assert coco_results([pred]) == [{"image_id": 1, "category_id": 3, "bbox": [11.0, 21.0, 30.0, 38.0], "score": 0.5}]


@pytest.mark.slow
def test_evaluate_writes_coco_files_that_pycocotools_scores_identically(trained_run):
    """The real path: yolotl.evaluate on a trained checkpoint, then COCOeval on the files it wrote."""
    pytest.importorskip("pycocotools")
    from yolotl import evaluate

    result = evaluate(trained_run.checkpoint, split="test", report=False)
    out = trained_run.run_dir / "eval" / "test"  # the default: inside the run folder
    assert result["files"]["predictions"] == str(out / "predictions.json")
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    assert metrics["map_50"] >= 0.4 and metrics["images"] == 20, metrics
    theirs = pycocotools_scores(out / "ground_truth.json", out / "predictions.json")
    for key, value in theirs.items():
        assert metrics[key] == pytest.approx(value, abs=1e-3), key


SIDE = 160  # mask scenes: images of SIDE x SIDE pixels


def _ellipses(boxes: np.ndarray, shift: np.ndarray | None = None) -> torch.Tensor:
    """bool ``[N, SIDE, SIDE]``: the ellipse inscribed in each box (moved by ``shift`` [N, 2])."""
    ys, xs = np.mgrid[0:SIDE, 0:SIDE] + 0.5
    masks = []
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        if shift is not None:
            cx, cy = cx + shift[i, 0], cy + shift[i, 1]
        rx, ry = max((x2 - x1) / 2, 1.0), max((y2 - y1) / 2, 1.0)
        masks.append(((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 <= 1.0)
    return torch.from_numpy(np.array(masks, dtype=bool).reshape(-1, SIDE, SIDE))


def _mask_scene(rng: np.random.Generator) -> tuple[dict, dict]:
    """Ground truth (ellipses, a few crowd) and predictions (true boxes with moved ellipses, wrong classes, misses and
    false positives), both with RLE ``segmentation`` as :func:`yolotl.evaluation.evaluator.collect` keeps them."""
    n = int(rng.integers(0, 8))
    xy = rng.uniform(0, SIDE * 0.7, (n, 2))
    boxes = np.hstack([xy, np.minimum(xy + rng.uniform(6, SIDE * 0.5, (n, 2)), SIDE)])
    labels = rng.integers(0, len(CLASSES), n)
    crowd = rng.random(n) < 0.1
    gt_masks = _ellipses(boxes)
    target = {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), "labels": torch.tensor(labels),
              "iscrowd": torch.tensor(crowd), "segmentation": encode_masks(gt_masks)}
    keep = rng.random(n) > 0.1
    shift = rng.normal(0, 3, (n, 2))
    pred_labels = np.where(rng.random(n) < 0.15, rng.integers(0, len(CLASSES), n), labels)[keep]
    extra = int(rng.integers(0, 4))
    xy = rng.uniform(0, SIDE * 0.7, (extra, 2))
    fp_boxes = np.hstack([xy, xy + rng.uniform(6, SIDE * 0.3, (extra, 2))])
    masks = torch.cat([_ellipses(boxes, shift)[torch.from_numpy(keep)], _ellipses(fp_boxes)])
    pred_boxes = np.vstack([boxes[keep], fp_boxes]).reshape(-1, 4)  # the boxes unmoved: masks score lower
    count = len(masks)
    pred = {"boxes": torch.tensor(pred_boxes, dtype=torch.float32),
            "scores": torch.tensor(rng.uniform(0.01, 1.0, count), dtype=torch.float32),
            "labels": torch.tensor(np.concatenate([pred_labels, rng.integers(0, len(CLASSES), extra)]),
                                   dtype=torch.int64),
            "segmentation": encode_masks(masks)}
    return target, pred


def test_mask_results_scored_by_pycocotools_segm_agree_with_yolotl(tmp_path):
    """yolotl's mask mAP (torchmetrics segm, as yolotl-eval scores it) and COCOeval(segm) on the RLE
    COCO files yolotl-eval writes: the same numbers to 1e-3, crowd regions included."""
    rng = np.random.default_rng(4)
    scenes = [_mask_scene(rng) for _ in range(30)]
    evaluation = Evaluation(CLASSES, [Path(f"img_{i}.jpg") for i in range(len(scenes))], [(SIDE, SIDE)] * len(scenes),
                            [p for _, p in scenes], [t for t, _ in scenes])
    ours = score(evaluation).metrics
    assert evaluation.mask_precision is not None and evaluation.mask_precision.dim() == 5
    gt = coco_ground_truth(evaluation.targets, evaluation.image_paths, evaluation.image_sizes, CLASSES)
    results = coco_results(evaluation.predictions)
    assert all("segmentation" in r for r in results) and sum(a["iscrowd"] for a in gt["annotations"]) > 0
    theirs = pycocotools_scores(write_json(gt, tmp_path / "gt.json"), write_json(results, tmp_path / "res.json"),
                                "segm")
    assert 0.2 < ours["mask_map"] < 0.9 and ours["map"] - ours["mask_map"] > 0.05, ours
    for key in ("map", "map_50", "map_75", *(k for k in theirs if k.startswith("ap/"))):
        assert ours[f"mask_{key}"] == pytest.approx(theirs[key], abs=1e-3), key
