"""The semantic evaluation pass and its report on hand-made batches: scores, worst images, files and numbers."""

from __future__ import annotations

import csv
import math

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from yolotl.evaluation import SemanticMetrics
from yolotl.evaluation.semantic_eval import collect_semantic, content_box
from yolotl.evaluation.semantic_plots import class_colors, colorize, row_fractions
from yolotl.evaluation.semantic_report import write_semantic_report

NAMES = ["background", "road", "car"]
IGNORE = 255
SIZE = 32


class FixedSegmenter:
    """Like a semantic TorchDetector, but its logits for the i-th image it sees are the one-hot ``answers[i]``."""

    def __init__(self, answers: list[torch.Tensor]) -> None:
        self.class_names = list(NAMES)
        self.answers = answers
        self.seen = 0

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        maps = torch.stack(self.answers[self.seen : self.seen + len(images)])
        self.seen += len(images)
        return nn.functional.one_hot(maps, len(NAMES)).permute(0, 3, 1, 2).float()


def _batches(truths: list[torch.Tensor], pad_y: int = 8, batch_size: int = 2) -> list[tuple]:
    """Letterboxed batches: a SIZE-square input whose top and bottom ``pad_y`` rows are padding (ignored)."""
    out = []
    for start in range(0, len(truths), batch_size):
        chunk = truths[start : start + batch_size]
        images = torch.rand(len(chunk), 3, SIZE, SIZE, generator=torch.Generator().manual_seed(start))
        targets = [{"semantic": t, "pad": torch.tensor([0.0, float(pad_y)]), "scale": 1.0,
                    "orig_size": torch.tensor([SIZE - 2 * pad_y, SIZE]), "path": f"/data/img{start + i}.jpg"}
                   for i, t in enumerate(chunk)]
        out.append((images, targets))
    return out


def _scene(seed: int, pad_y: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """A truth map (padding rows and a few pixels ignored) and a prediction that is right on about
    ``seed / 10`` of the pixels."""
    rng = np.random.default_rng(seed)
    truth = torch.from_numpy(rng.integers(0, 2, (SIZE, SIZE)))  # "car" never true
    truth[:pad_y] = truth[-pad_y:] = IGNORE
    truth[pad_y, :4] = IGNORE
    pred = torch.where(torch.from_numpy(rng.random((SIZE, SIZE)) < seed / 10), truth.clamp(max=1),
                       torch.from_numpy(rng.integers(0, 3, (SIZE, SIZE))))
    return truth, pred


def test_collect_scores_like_semantic_metrics_and_keeps_the_worst_images_first():
    truths, preds = zip(*[_scene(seed) for seed in (9, 2, 6, 4, 8)])
    detector = FixedSegmenter(list(preds))
    evaluation = collect_semantic(detector, _batches(list(truths)), max_overlays=3)

    reference = SemanticMetrics(NAMES)
    reference.update(torch.stack(preds), torch.stack(truths))
    assert torch.equal(evaluation.matrix, reference.confusion_matrix())
    assert {k: v for k, v in evaluation.metrics.items() if k not in ("images", "labelled_pixels")} == \
        pytest.approx(reference.compute())
    assert evaluation.metrics["images"] == 5 and evaluation.metrics["labelled_pixels"] == (SIZE - 16) * SIZE * 5 - 20

    accuracies = [s.pixel_acc for s in evaluation.images]
    labelled = [t != IGNORE for t in truths]
    assert accuracies == pytest.approx([float((p == t)[m].float().mean()) for p, t, m in zip(preds, truths, labelled)])
    worst = evaluation.worst
    assert [s.score.path for s in worst] == ["/data/img1.jpg", "/data/img3.jpg", "/data/img2.jpg"]
    # cropped to the image content: the padding rows are gone
    assert worst[0].image.shape == (SIZE - 16, SIZE, 3) and worst[0].image.dtype == np.uint8
    assert np.array_equal(worst[0].truth, truths[1][8:-8].numpy())
    assert np.array_equal(worst[0].prediction, preds[1][8:-8].numpy())

    table = evaluation.class_table()
    assert table["car"]["pixels"] == 0 and table["car"]["iou"] == 0.0 and table["car"]["predicted_pixels"] > 0
    assert sum(row["pixels"] for row in table.values()) == evaluation.metrics["labelled_pixels"]


def test_dataset_classes_are_mapped_to_the_detectors_and_unlabelled_images_are_not_shown():
    truth = torch.zeros(SIZE, SIZE, dtype=torch.long)
    truth[:, SIZE // 2 :] = 1  # dataset class 1 is the detector's class 2 ("car")
    truth[:8] = truth[-8:] = IGNORE
    empty = torch.full((SIZE, SIZE), IGNORE)
    pred = torch.zeros(SIZE, SIZE, dtype=torch.long)
    pred[:, SIZE // 2 :] = 2
    detector = FixedSegmenter([pred, pred])
    evaluation = collect_semantic(detector, _batches([truth, empty]), label_map=[0, 2])
    assert evaluation.metrics["miou"] == 1.0 and math.isnan(evaluation.metrics["iou/road"])
    assert math.isnan(evaluation.images[1].pixel_acc) and len(evaluation.worst) == 1

    with pytest.raises(Exception, match="no class"):
        collect_semantic(FixedSegmenter([pred]), _batches([torch.full((SIZE, SIZE), 2)]), label_map=[0, 2])
    with pytest.raises(Exception, match="masks='semantic'"):
        collect_semantic(FixedSegmenter([pred]), [(torch.zeros(1, 3, SIZE, SIZE), [{"boxes": torch.zeros(0, 4)}])])


def test_content_box_follows_the_letterbox():
    target = {"pad": torch.tensor([0.0, 12.0]), "scale": 0.5, "orig_size": torch.tensor([80, 128])}
    assert content_box(target, (64, 64)) == (12, 52, 0, 64)
    assert content_box({}, (64, 48)) == (0, 64, 0, 48)


def test_colours_show_classes_and_ignored_pixels_in_neutral_grey():
    image = np.full((2, 2, 3), 100, np.uint8)
    table = class_colors(3)
    out = colorize(image, np.array([[0, 1], [2, IGNORE]], np.uint8), table)
    assert out.shape == (2, 2, 3) and out.min() >= 0 and out.max() <= 1
    assert len({tuple(np.round(px, 4)) for px in out.reshape(-1, 3)}) == 4  # three classes and "ignored" differ
    ignored = out[1, 1]
    assert ignored[0] == ignored[1] == ignored[2]  # grey
    assert np.allclose(row_fractions(np.array([[3, 1], [0, 0]])), [[0.75, 0.25], [0.0, 0.0]])


def test_report_writes_the_tables_the_matrix_and_the_overlays(tmp_path):
    truths, preds = zip(*[_scene(seed) for seed in (7, 3, 5)])
    evaluation = collect_semantic(FixedSegmenter(list(preds)), _batches(list(truths)), max_overlays=2)
    page = write_semantic_report(tmp_path, evaluation)
    assert page == tmp_path / "report.md"
    for name in ("confusion_matrix.png", "overlays.png"):
        picture = cv2.imread(str(tmp_path / name))
        assert picture is not None and picture.shape[0] > 100, name
    text = page.read_text()
    for link in ("confusion_matrix.png", "overlays.png", "confusion_matrix.csv", "per_image.csv"):
        assert f"({link})" in text
    assert f"| mIoU | {evaluation.metrics['miou']:.3f} |" in text
    road = evaluation.class_table()["road"]
    assert f"| road | {road['iou']:.3f} |" in text and f"| {road['pixels']} |" in text
    assert "_Skipped: no `logs/metrics.csv`" in text

    with open(tmp_path / "confusion_matrix.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["true \\ predicted", *NAMES]
    assert np.array_equal(np.array([[int(v) for v in row[1:]] for row in rows[1:]]), evaluation.matrix.numpy())
    with open(tmp_path / "confusion_matrix_normalized.csv", newline="") as handle:
        shares = np.array([[float(v) for v in row[1:]] for row in list(csv.reader(handle))[1:]])
    assert np.allclose(shares.sum(1)[:2], 1.0, atol=1e-3) and shares[2].sum() == 0  # "car" never true
    with open(tmp_path / "per_image.csv", newline="") as handle:
        per_image = list(csv.DictReader(handle))
    assert [row["image"] for row in per_image] == ["/data/img1.jpg", "/data/img2.jpg", "/data/img0.jpg"]
    assert sorted(float(row["pixel_acc"]) for row in per_image) == [float(row["pixel_acc"]) for row in per_image]


def test_training_curves_of_a_semantic_run_show_its_losses_and_mean_iou(tmp_path):
    from yolotl.evaluation.plots import _training_panels, read_epoch_history

    logs = tmp_path / "run" / "logs"
    logs.mkdir(parents=True)
    (logs / "metrics.csv").write_text("epoch,step,train/loss_epoch,train/ce,train/dice,val/loss,val/ce,val/dice,"
                                      "val/miou,val/pixel_acc\n0,4,1.5,1.0,0.5,1.4,0.9,0.5,0.3,0.7\n"
                                      "1,9,1.1,0.7,0.4,1.2,0.8,0.4,0.4,0.8\n")
    panels = {title for title, series in _training_panels(read_epoch_history(logs / "metrics.csv")) if series}
    assert panels == {"Total loss", "Cross-entropy loss", "Dice loss", "Validation mIoU"}
    truths, preds = zip(*[_scene(5)])
    evaluation = collect_semantic(FixedSegmenter(list(preds)), _batches(list(truths)))
    page = write_semantic_report(tmp_path / "report", evaluation, run_dir=tmp_path / "run")
    assert "(training_curves.png)" in page.read_text() and (tmp_path / "report" / "training_curves.png").is_file()
