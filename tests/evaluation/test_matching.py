"""greedy_match: the one matcher behind best-F1, the confidence curves and the confusion matrix."""

import torch

from yolotl.evaluation.matching import greedy_match
from yolotl.evaluation.pr_f1 import match_predictions

GT = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]])
GT_LABELS = torch.tensor([0, 1])


def test_best_score_takes_the_box_and_each_box_is_used_once():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 31.0]])
    scores, labels = torch.tensor([0.5, 0.9, 0.7]), torch.tensor([0, 0, 1])
    assert greedy_match(boxes, scores, labels, GT, GT_LABELS).tolist() == [-1, 0, 1]
    is_tp, ignored = match_predictions(boxes, scores, labels, GT, GT_LABELS)
    assert is_tp.tolist() == [False, True, True] and not ignored.any()


def test_class_aware_first_then_class_agnostic_for_the_rest():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]])
    scores, labels = torch.tensor([0.9, 0.8]), torch.tensor([1, 1])  # the first has the wrong class
    assert greedy_match(boxes, scores, labels, GT, GT_LABELS).tolist() == [-1, 1]
    assert greedy_match(boxes, scores, labels, GT, GT_LABELS, then_class_agnostic=True).tolist() == [0, 1]


def test_iou_threshold_is_inclusive_and_empty_inputs_match_nothing():
    half = torch.tensor([[0.0, 0.0, 10.0, 5.0]])  # IoU 0.5 with the first box
    assert greedy_match(half, torch.tensor([1.0]), torch.tensor([0]), GT, GT_LABELS, 0.5).tolist() == [0]
    assert greedy_match(half, torch.tensor([1.0]), torch.tensor([0]), GT, GT_LABELS, 0.51).tolist() == [-1]
    assert greedy_match(half, torch.tensor([1.0]), torch.tensor([0]), GT[:0], GT_LABELS[:0]).tolist() == [-1]
    assert greedy_match(GT[:0], torch.zeros(0), torch.zeros(0, dtype=torch.long), GT, GT_LABELS).shape == (0,)


def test_stable_order_gives_ties_to_the_first_prediction():
    boxes = GT[:1].repeat(20, 1)
    matched = greedy_match(boxes, torch.ones(20), torch.zeros(20, dtype=torch.long), GT, GT_LABELS)
    assert matched.tolist() == [0] + [-1] * 19


def test_crowd_boxes_are_matched_as_cocoeval_matches_them():
    """Ordinary boxes first; then a crowd box of the same class covering at least the threshold of
    the prediction (intersection over the prediction's area), by any number of predictions."""
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 100.0, 100.0]])
    gt_labels, crowd = torch.tensor([0, 0]), torch.tensor([False, True])
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0],     # the ordinary box: it, not the crowd
                          [0.0, 0.0, 10.0, 10.0],     # a duplicate: the crowd box takes it
                          [40.0, 40.0, 50.0, 50.0],   # inside the crowd (IoU 0.01, covered 100 %)
                          [90.0, 90.0, 110.0, 110.0], # covered 25 %: no match
                          [40.0, 40.0, 50.0, 50.0]])  # another class: no match
    scores, labels = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5]), torch.tensor([0, 0, 0, 0, 1])
    assert greedy_match(boxes, scores, labels, gt, gt_labels, gt_crowd=crowd).tolist() == [0, 1, 1, -1, -1]
    assert greedy_match(boxes, scores, labels, gt, gt_labels, then_class_agnostic=True,
                        gt_crowd=crowd).tolist() == [0, 1, 1, -1, -1]  # crowd boxes stay out of confusions
    assert greedy_match(boxes, scores, labels, gt, gt_labels).tolist() == [0, -1, -1, -1, -1]
    is_tp, ignored = match_predictions(boxes, scores, labels, gt, gt_labels, gt_crowd=crowd)
    assert is_tp.tolist() == [True, False, False, False, False]
    assert ignored.tolist() == [False, True, True, False, False]
