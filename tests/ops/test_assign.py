"""TaskAlignedAssigner on hand-made boxes (anchors of a 4x4 grid, stride 8)."""

import math

import pytest
import torch

from yolotl.ops import TaskAlignedAssigner, make_anchor_points

POINTS, _ = make_anchor_points([(4, 4)], [8])  # x, y in {4, 12, 20, 28}; anchor = 4 * row + col
NUM_ANCHORS, NUM_CLASSES = 16, 4


def _anchor(x: float, y: float) -> int:
    return int((POINTS == torch.tensor([x, y])).all(dim=1).nonzero())


def _inputs(gt_boxes, gt_labels, gt_mask=None, score=0.5, pred_boxes=None):
    """Batch of one image unless the arguments already have a batch dimension."""
    gt_boxes = torch.tensor(gt_boxes, dtype=torch.float32).reshape(1, -1, 4)
    gt_labels = torch.tensor(gt_labels, dtype=torch.long).reshape(1, -1)
    gt_mask = torch.ones_like(gt_labels, dtype=torch.bool) if gt_mask is None else torch.tensor([gt_mask])
    scores = torch.full((1, NUM_ANCHORS, NUM_CLASSES), score)
    if pred_boxes is None:  # every anchor predicts the first gt box
        pred_boxes = gt_boxes[:, :1].expand(1, NUM_ANCHORS, 4).clone()
    return scores, pred_boxes, POINTS, gt_labels, gt_boxes, gt_mask


def test_topk_picks_best_aligned_candidates():
    scores, pred_boxes, points, labels, boxes, mask = _inputs([[0, 0, 16, 16]], [2])
    inside = [_anchor(4, 4), _anchor(12, 4), _anchor(4, 12), _anchor(12, 12)]
    for anchor, value in zip(inside, [0.9, 0.2, 0.5, 0.1]):
        scores[0, anchor, 2] = value
    scores[0, _anchor(28, 28), 2] = 1.0  # best score but outside the gt: never a candidate
    result = TaskAlignedAssigner(topk=2)(scores, pred_boxes, points, labels, boxes, mask)
    assert result.fg_mask[0].nonzero().flatten().tolist() == sorted([inside[0], inside[2]])
    assert result.target_labels[0, inside[0]] == 2 and result.target_labels[0, inside[1]] == -1
    # all IoUs are 1: soft target = (s / s_max) ** alpha * 1
    assert result.target_scores[0, inside[0], 2].item() == pytest.approx(1.0, abs=1e-6)
    assert result.target_scores[0, inside[2], 2].item() == pytest.approx(math.sqrt(0.5 / 0.9), abs=1e-5)
    assert result.target_scores[0, :, [0, 1, 3]].abs().sum() == 0
    torch.testing.assert_close(result.target_boxes[0, inside[0]], torch.tensor([0.0, 0.0, 16.0, 16.0]))
    assert result.gt_index[0, inside[0]] == 0 and result.gt_index[0, inside[1]] == -1


def test_anchor_outside_all_gts_is_background():
    scores, pred_boxes, points, labels, boxes, mask = _inputs([[0, 0, 16, 16]], [1], score=0.9)
    result = TaskAlignedAssigner(topk=10)(scores, pred_boxes, points, labels, boxes, mask)
    assert result.fg_mask.sum() == 4  # exactly the four centres inside the box
    outside = _anchor(20, 20)
    assert not result.fg_mask[0, outside]
    assert result.target_scores[0, outside].sum() == 0
    assert result.target_boxes[0, outside].abs().sum() == 0


def test_centre_on_the_border_is_not_inside():
    # box edge passes exactly through the centres at x = 12: they are not strictly inside
    scores, pred_boxes, points, labels, boxes, mask = _inputs([[0, 0, 12, 16]], [0])
    result = TaskAlignedAssigner(topk=10)(scores, pred_boxes, points, labels, boxes, mask)
    assert result.fg_mask[0].nonzero().flatten().tolist() == [_anchor(4, 4), _anchor(4, 12)]


def test_overlapping_gts_anchor_goes_to_highest_iou():
    gts = [[0, 0, 24, 24], [8, 8, 32, 32]]
    pred_boxes = torch.tensor(gts[0]).float().expand(1, NUM_ANCHORS, 4).clone()
    shared_to_b, shared_to_a = _anchor(12, 12), _anchor(20, 20)  # inside both gts
    pred_boxes[0, shared_to_b] = torch.tensor(gts[1]).float()
    scores, _, points, labels, boxes, mask = _inputs(gts, [0, 1], pred_boxes=pred_boxes)
    result = TaskAlignedAssigner(topk=10)(scores, pred_boxes, points, labels, boxes, mask)
    assert result.gt_index[0, shared_to_b] == 1 and result.target_labels[0, shared_to_b] == 1
    assert result.gt_index[0, shared_to_a] == 0 and result.target_labels[0, shared_to_a] == 0
    assert result.target_scores[0, shared_to_b].tolist() == pytest.approx([0, 1, 0, 0], abs=1e-6)
    # one label per anchor even when two gts claim it
    assert ((result.target_scores > 0).sum(-1) <= 1).all()


def test_padded_gts_never_assigned_and_empty_image_in_batch():
    boxes = torch.tensor([[[0, 0, 16, 16], [0, 0, 32, 32]], [[0, 0, 32, 32], [0, 0, 32, 32]]]).float()
    labels = torch.tensor([[1, 3], [3, 3]])
    mask = torch.tensor([[True, False], [False, False]])  # image 1 has no gt at all
    scores = torch.full((2, NUM_ANCHORS, NUM_CLASSES), 0.5)
    pred_boxes = boxes[:, :1].expand(2, NUM_ANCHORS, 4).clone()
    result = TaskAlignedAssigner(topk=10)(scores, pred_boxes, POINTS, labels, boxes, mask)
    assert result.fg_mask[0].sum() == 4 and not result.fg_mask[1].any()
    assert (result.gt_index[0][result.fg_mask[0]] == 0).all()
    assert (result.target_labels[result.fg_mask] == 1).all()
    assert result.target_scores[1].sum() == 0 and result.target_scores[..., 3].sum() == 0


@pytest.mark.parametrize("num_gts", [0, 2])
def test_no_gts_gives_all_background(num_gts):
    boxes = torch.zeros(3, num_gts, 4)
    labels = torch.zeros(3, num_gts, dtype=torch.long)
    mask = torch.zeros(3, num_gts, dtype=torch.bool)
    scores = torch.rand(3, NUM_ANCHORS, NUM_CLASSES)
    pred_boxes = torch.rand(3, NUM_ANCHORS, 4) * 10 + torch.tensor([0, 0, 10, 10])
    result = TaskAlignedAssigner()(scores, pred_boxes, POINTS, labels, boxes, mask)
    assert result.fg_mask.shape == (3, NUM_ANCHORS) and not result.fg_mask.any()
    assert result.target_scores.shape == (3, NUM_ANCHORS, NUM_CLASSES) and result.target_scores.sum() == 0
    assert result.target_boxes.shape == (3, NUM_ANCHORS, 4)
    assert (result.target_labels == -1).all() and (result.gt_index == -1).all()


def test_target_score_max_equals_max_iou_of_gt():
    gt = [0, 0, 16, 16]
    pred_boxes = torch.tensor(gt).float().expand(1, NUM_ANCHORS, 4).clone()
    pred_boxes[0, _anchor(4, 4)] = torch.tensor([0.0, 0.0, 16.0, 12.0])  # IoU 0.75
    pred_boxes[0, _anchor(12, 4)] = torch.tensor([0.0, 0.0, 16.0, 8.0])  # IoU 0.5
    pred_boxes[0, _anchor(4, 12)] = torch.tensor([0.0, 0.0, 8.0, 8.0])  # IoU 0.25
    pred_boxes[0, _anchor(12, 12)] = torch.tensor([0.0, 0.0, 4.0, 16.0])  # IoU 0.25
    scores, _, points, labels, boxes, mask = _inputs([gt], [0], pred_boxes=pred_boxes)
    result = TaskAlignedAssigner(topk=3)(scores, pred_boxes, points, labels, boxes, mask)
    positives = result.fg_mask[0].nonzero().flatten().tolist()
    assert len(positives) == 3 and _anchor(4, 4) in positives and _anchor(12, 4) in positives
    target = result.target_scores[0, :, 0]
    assert target.max().item() == pytest.approx(0.75, abs=1e-5)
    # equal scores: ratio of alignments = (IoU ratio) ** beta
    assert target[_anchor(12, 4)].item() == pytest.approx(0.75 * (0.5 / 0.75) ** 6, rel=1e-4)


def test_random_batch_invariants():
    generator = torch.Generator().manual_seed(0)
    points, _ = make_anchor_points([(8, 8), (4, 4)], [8, 16])
    batch, num_gts, topk = 3, 5, 4
    xy = torch.rand(batch, num_gts, 2, generator=generator) * 40
    gt_boxes = torch.cat((xy, xy + 8 + torch.rand(batch, num_gts, 2, generator=generator) * 24), dim=-1)
    gt_labels = torch.randint(0, 3, (batch, num_gts), generator=generator)
    gt_mask = torch.rand(batch, num_gts, generator=generator) > 0.3
    scores = torch.rand(batch, len(points), 3, generator=generator)
    centre = points.expand(batch, -1, -1)
    pred_boxes = torch.cat((centre - 6, centre + 6), dim=-1)
    result = TaskAlignedAssigner(topk=topk)(scores, pred_boxes, points, gt_labels, gt_boxes, gt_mask)
    for b in range(batch):
        for a in result.fg_mask[b].nonzero().flatten():
            g = result.gt_index[b, a]
            assert gt_mask[b, g]
            x1, y1, x2, y2 = gt_boxes[b, g]
            assert x1 < points[a, 0] < x2 and y1 < points[a, 1] < y2
            assert result.target_labels[b, a] == gt_labels[b, g]
            torch.testing.assert_close(result.target_boxes[b, a], gt_boxes[b, g])
        counts = torch.bincount(result.gt_index[b][result.fg_mask[b]], minlength=num_gts)
        assert (counts <= topk).all()
    assert (result.target_scores <= 1 + 1e-6).all() and (result.target_scores >= 0).all()
