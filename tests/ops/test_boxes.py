"""Anchor points, level flattening and distance <-> box conversions on hand-made cases."""

import torch

from yolotl.ops import (
    box_to_distance,
    decode_boxes,
    distance_to_box,
    distribution_to_distance,
    flatten_levels,
    make_anchor_points,
)


def test_anchor_points_counts_and_positions():
    points, strides = make_anchor_points([(2, 2), (1, 1)], [8, 16])
    expected = torch.tensor([[4.0, 4.0], [12.0, 4.0], [4.0, 12.0], [12.0, 12.0], [8.0, 8.0]])
    assert points.shape == (5, 2) and strides.shape == (5, 1)
    torch.testing.assert_close(points, expected)
    torch.testing.assert_close(strides.squeeze(1), torch.tensor([8.0, 8.0, 8.0, 8.0, 16.0]))


def test_anchor_points_non_square_is_row_major():
    points, _ = make_anchor_points([(2, 3)], [10], offset=0.0)
    # row 0: x = 0, 10, 20 at y = 0; row 1: same x at y = 10
    torch.testing.assert_close(points[:, 0], torch.tensor([0.0, 10.0, 20.0, 0.0, 10.0, 20.0]))
    torch.testing.assert_close(points[:, 1], torch.tensor([0.0, 0.0, 0.0, 10.0, 10.0, 10.0]))


def test_flatten_order_matches_anchor_points():
    batch, bins, classes = 2, 3, 5
    sizes, strides = [(2, 3), (1, 2)], [8, 16]
    points, _ = make_anchor_points(sizes, strides)
    box_maps, cls_maps = [], []
    for height, width in sizes:
        # encode each cell's (row, col) and the channel into the map values to track them
        rows = torch.arange(height).view(1, 1, height, 1).float()
        cols = torch.arange(width).view(1, 1, 1, width).float()
        channels = torch.arange(4 * bins).view(1, -1, 1, 1).float()
        box_maps.append((1000 * channels + 10 * rows + cols).expand(batch, -1, -1, -1))
        cls_maps.append((100 * rows + cols + torch.zeros(batch, classes, 1, 1)))
    box_logits, cls_logits = flatten_levels(box_maps, cls_maps)
    assert box_logits.shape == (batch, 6 + 2, 4, bins)
    assert cls_logits.shape == (batch, 8, classes)
    # anchor 4 = level 0, row 1, col 1 -> point (12, 12); channel side*R + bin
    assert box_logits[1, 4, 2, 1].item() == 1000 * (2 * bins + 1) + 10 * 1 + 1
    assert cls_logits[0, 4, 3].item() == 101
    torch.testing.assert_close(points[4], torch.tensor([12.0, 12.0]))
    # anchor 7 = level 1, row 0, col 1 -> point (24, 8)
    assert cls_logits[0, 7, 0].item() == 1
    torch.testing.assert_close(points[7], torch.tensor([24.0, 8.0]))


def test_distance_box_round_trip():
    points = torch.tensor([[10.0, 20.0], [5.0, 5.0]])
    ltrb = torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.5, 0.0, 2.5, 1.0]])
    boxes = distance_to_box(points, ltrb)
    torch.testing.assert_close(boxes[0], torch.tensor([9.0, 18.0, 13.0, 24.0]))
    torch.testing.assert_close(box_to_distance(points, boxes, max_distance=15.0), ltrb)


def test_box_to_distance_clamps():
    points = torch.tensor([[0.0, 0.0]])
    boxes = torch.tensor([[1.0, -100.0, 50.0, 2.0]])  # point left of the box: l < 0
    ltrb = box_to_distance(points, boxes, max_distance=15.0)
    torch.testing.assert_close(ltrb, torch.tensor([[0.0, 14.99, 14.99, 2.0]]))


def test_distribution_expectation_and_batched_points():
    logits = torch.full((1, 1, 4, 5), -1e4)
    logits[..., 0, 2] = 0.0  # left side peaked on bin 2
    logits[..., 1, 0] = 0.0
    logits[..., 2, 4] = 0.0
    logits[..., 3, 1:3] = 0.0  # half on bins 1 and 2 -> 1.5
    torch.testing.assert_close(distribution_to_distance(logits), torch.tensor([[[2.0, 0.0, 4.0, 1.5]]]))
    batched_points = torch.tensor([[[1.0, 1.0]]])
    boxes = distance_to_box(batched_points, torch.tensor([[[1.0, 1.0, 1.0, 1.0]]]))
    torch.testing.assert_close(boxes, torch.tensor([[[0.0, 0.0, 2.0, 2.0]]]))


def test_decode_peaked_distribution():
    points, strides = make_anchor_points([(2, 2), (1, 1)], [8, 16])
    bins = 16
    logits = torch.full((1, 5, 4, bins), -50.0)
    sides = torch.tensor([1, 2, 3, 4])
    logits[0, :, torch.arange(4), sides] = 50.0
    boxes = decode_boxes(logits, points, strides)
    assert boxes.shape == (1, 5, 4)
    # anchor 0: point (4, 4), stride 8 -> (4 - 8, 4 - 16, 4 + 24, 4 + 32)
    torch.testing.assert_close(boxes[0, 0], torch.tensor([-4.0, -12.0, 28.0, 36.0]))
    # anchor 4: point (8, 8), stride 16 -> (8 - 16, 8 - 32, 8 + 48, 8 + 64)
    torch.testing.assert_close(boxes[0, 4], torch.tensor([-8.0, -24.0, 56.0, 72.0]))
