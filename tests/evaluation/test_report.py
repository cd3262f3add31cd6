"""write_report and the plots on a tiny generated set: every file written, valid PNGs, links and numbers right."""

import csv
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from yolotl.evaluation.curves import confusion_matrix
from yolotl.evaluation.plots import plot_prediction_grid, plot_training_curves, read_epoch_history
from yolotl.evaluation.report import MISSING, write_report

CLASS_NAMES = ["cat", "dog"]
PNGS = [
    "pr_curves.png",
    "f1_confidence.png",
    "precision_confidence.png",
    "recall_confidence.png",
    "confusion_matrix.png",
    "predictions.png",
    "training_curves.png",
]
# Sparse like Lightning's CSVLogger: lr rows without epoch, step rows, validation rows, train-epoch rows.
METRICS_CSV = """\
epoch,lr-AdamW/head,step,train/loss_step,train/loss_epoch,train/box,train/cls,val/loss,val/box,val/map,val/map_50
,0.001,0,,,,,,,,
0,,4,9.5,,,,,,,
0,,9,,,,,8.0,0.40,0.10,0.30
0,,9,,9.0,0.50,6.0,,,,
1,,14,7.5,,,,,,,
1,,19,,,,,6.0,0.30,0.25,0.55
1,,19,,7.0,0.35,4.5,,,,
2,,29,,,,,5.5,0.28,0.32,0.61
2,,29,,6.2,0.30,4.0,,,,
"""


def _tensor_dict(boxes, labels, scores=None):
    out = {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
           "labels": torch.tensor(labels, dtype=torch.int64)}
    if scores is not None:
        out["scores"] = torch.tensor(scores, dtype=torch.float32)
    return out


def _write_images(folder: Path) -> list[Path]:
    """Three small images with filled rectangles where the objects are (sizes differ on purpose)."""
    paths = []
    for i, (width, height) in enumerate([(96, 64), (64, 64), (80, 120)]):
        image = np.full((height, width, 3), 235, dtype=np.uint8)
        cv2.rectangle(image, (8, 8), (40, 40), (40, 40, 200), -1)
        cv2.rectangle(image, (44, 20), (60, 56), (200, 120, 40), -1)
        path = folder / f"image_{i}.png"
        assert cv2.imwrite(str(path), image)
        paths.append(path)
    return paths


def _detections():
    """Per image: a correct cat and dog, a confused dog, a duplicate, a low-score tail; one empty image."""
    cat, dog = [8, 8, 40, 40], [44, 20, 60, 56]
    targets = [_tensor_dict([cat, dog], [0, 1]), _tensor_dict([cat], [0]), _tensor_dict([], [])]
    predictions = [
        _tensor_dict([cat, dog, cat, [0, 0, 5, 5]], [0, 1, 0, 1], [0.9, 0.7, 0.4, 0.01]),
        _tensor_dict([cat, [30, 30, 50, 50]], [1, 0], [0.6, 0.3]),
        _tensor_dict([], [], []),
    ]
    return predictions, targets


def _coco_precision() -> np.ndarray:
    precision = np.zeros((10, 101, 2, 4, 3))
    precision[0, :, 0, 0, 2] = np.linspace(1.0, 0.6, 101)
    precision[0, :, 1, 0, 2] = np.where(np.arange(101) <= 50, 1.0, 0.0)
    return precision


METRICS = {
    "map": 0.5, "map_50": 0.75, "map_75": 0.45, "map_small": -1.0, "map_medium": 0.55, "map_large": -1.0,
    "precision": 0.8, "recall": 0.667, "f1": 0.727, "confidence": 0.55,
    "ap/cat": 0.6, "ap/dog": 0.4, "ap50/cat": 0.8, "ap50/dog": 0.505,
}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("report")
    paths = _write_images(root)
    (root / "run" / "logs").mkdir(parents=True)
    (root / "run" / "logs" / "metrics.csv").write_text(METRICS_CSV)
    predictions, targets = _detections()
    return write_report(
        root / "out", class_names=CLASS_NAMES, predictions=predictions, targets=targets, image_paths=paths,
        metrics=METRICS, coco_precision=torch.tensor(_coco_precision()), coco_classes=torch.tensor([0, 1]),
        run_dir=root / "run", score_threshold=0.25,
    )


def _assert_valid_png(path: Path) -> None:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, f"{path.name} is not a readable image"
    assert min(image.shape[:2]) >= 200, f"{path.name} is tiny: {image.shape}"
    assert image.std() > 5, f"{path.name} is (nearly) uniform"


def test_every_file_is_written_and_every_png_is_valid(report: Path):
    assert report.name == "report.md" and report.is_file()
    for name in PNGS:
        _assert_valid_png(report.parent / name)
    assert (report.parent / "confusion_matrix.csv").is_file()


def test_report_links_every_image_relatively_and_the_csv(report: Path):
    text = report.read_text(encoding="utf-8")
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert sorted(links) == sorted(PNGS)
    assert "](confusion_matrix.csv)" in text
    assert "Skipped" not in text


def test_report_tables_show_the_metrics(report: Path):
    text = report.read_text(encoding="utf-8")
    assert text.startswith("# yolotl evaluation\n")
    assert "| mAP50-95 | 0.500 |" in text and "| mAP50 | 0.750 |" in text
    assert f"| mAP50-95 small | {MISSING} |" in text  # COCO's -1: no object of that size
    assert "| best F1 | 0.550 | 0.800 | 0.667 | 0.727 |" in text
    # at 0.25: kept cat .9, dog .7, cat .4 (duplicate), dog .6 (confused), cat .3 (background); 2 of 3 objects
    assert "| chosen threshold | 0.250 | 0.400 | 0.667 | 0.500 |" in text
    # cat: 2 objects, AP 0.6 / 0.8, 1 of 3 cat detections right, 1 of 2 cats found
    assert re.search(r"\| cat \| 2 \| 0\.600 \| 0\.800 \| [0-9.]+ \| [0-9.]+ \| 0\.333 \| 0\.500 \|", text)
    assert re.search(r"\| dog \| 1 \| 0\.400 \| 0\.505 \| ", text)


def test_confusion_csv_matches_the_matrix(report: Path):
    with open(report.parent / "confusion_matrix.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["predicted \\ true", "cat", "dog", "background"]
    assert [row[0] for row in rows[1:]] == ["cat", "dog", "background"]
    counts = [[int(value) for value in row[1:]] for row in rows[1:]]
    predictions, targets = _detections()
    assert counts == confusion_matrix(predictions, targets, num_classes=2, score_threshold=0.25).tolist()
    assert counts == [[1, 0, 2], [1, 1, 0], [0, 0, 0]]  # the dog on the second cat is a confusion, not a miss


def test_report_without_coco_or_run_skips_those_plots(tmp_path: Path):
    predictions, targets = _detections()
    report = write_report(tmp_path / "out", class_names=CLASS_NAMES, predictions=predictions[:1],
                          targets=targets[:1], image_paths=[tmp_path / "missing.png"], metrics={"map": 0.25},
                          title="bare")
    text = report.read_text(encoding="utf-8")
    assert not (tmp_path / "out" / "pr_curves.png").exists()
    assert not (tmp_path / "out" / "training_curves.png").exists()
    assert text.count("_Skipped") == 2 and "](pr_curves.png)" not in text
    _assert_valid_png(tmp_path / "out" / "predictions.png")  # an unreadable image gets a placeholder panel


def test_epoch_history_keeps_the_last_value_per_epoch_and_skips_rows_without_epoch(tmp_path: Path):
    path = tmp_path / "metrics.csv"
    path.write_text(METRICS_CSV)
    history = read_epoch_history(path)
    assert history["train/loss_epoch"] == {0: 9.0, 1: 7.0, 2: 6.2}
    assert history["val/map_50"] == {0: 0.3, 1: 0.55, 2: 0.61}
    assert history["train/loss_step"] == {0: 9.5, 1: 7.5}
    assert "lr-AdamW/head" not in history and "step" not in history


def test_nothing_plottable_returns_none(tmp_path: Path):
    path = tmp_path / "metrics.csv"
    path.write_text("epoch,lr-AdamW/head,step\n,0.001,0\n")
    assert plot_training_curves(tmp_path / "training.png", path) is None
    assert not (tmp_path / "training.png").exists()
    assert plot_prediction_grid(tmp_path / "grid.png", [], [], [], CLASS_NAMES) is None


def test_coco_rows_follow_the_classes_torchmetrics_saw():
    from yolotl.evaluation.report import _coco_class_ids, _pr_by_class

    predictions = [_tensor_dict([[0, 0, 5, 5]], [2], [0.5])]
    targets = [_tensor_dict([[0, 0, 5, 5]], [0])]
    assert _coco_class_ids(None, predictions, targets) == [0, 2]  # class 1 never seen: no COCO row
    assert _coco_class_ids(torch.tensor([1, 2]), predictions, targets) == [1, 2]
    pr = _pr_by_class(np.array([[1.0] * 101, [0.5] * 101]), [0, 2], num_classes=3)
    assert pr[0, 0] == 1.0 and np.isnan(pr[1]).all() and pr[2, 0] == 0.5
