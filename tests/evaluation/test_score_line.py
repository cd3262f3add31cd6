"""The one score line: the numbers present, in a fixed order, with fixed digits; a key subset when asked."""

from __future__ import annotations

from yolotl.evaluation.score_line import BRIEF, score_line

SCORES = {"f1": 0.79, "map_50": 0.835, "map": 0.41213, "precision": 0.81, "recall": 0.77, "confidence": 0.3124,
          "map_75": 0.4012, "ap/circle": 0.5, "loss": 1.2}


def test_every_known_score_in_order_and_nothing_else():
    assert score_line("val", SCORES) == ("val mAP50-95 0.4121  mAP50 0.8350  mAP75 0.4012  P 0.810  R 0.770  "
                                         "F1 0.790  conf 0.312")


def test_masks_follow_the_boxes_and_a_subset_keeps_the_order():
    scores = {**SCORES, "mask_map_50": 0.6, "mask_map": 0.3, "mask_map_75": 0.25}
    assert score_line("test", scores, BRIEF) == ("test mAP50-95 0.4121  mAP50 0.8350  mask mAP50-95 0.3000  "
                                                 "mask mAP50 0.6000")
    assert score_line("test", scores, ("map",)) == "test mAP50-95 0.4121"
    assert score_line("test", {}) == "test"


def test_a_semantic_segmenter_shows_mean_iou_and_pixel_accuracy_in_the_headline():
    scores = {"miou": 0.61234, "pixel_acc": 0.9, "iou/road": 0.8, "loss": 0.3}
    assert score_line("val", scores) == "val mIoU 0.6123  pixel acc 0.9000"
    assert score_line("test", scores, BRIEF) == "test mIoU 0.6123  pixel acc 0.9000"
