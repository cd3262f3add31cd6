"""Score filtering, NMS and letterbox undo."""

import torch

from yolotl.ops import decode_predictions, make_anchor_points, postprocess, scale_boxes_to_original


def _one_image(boxes, scores):
    return torch.tensor([boxes], dtype=torch.float32), torch.tensor([scores], dtype=torch.float32)


def test_same_class_duplicates_suppressed_other_classes_kept():
    boxes, scores = _one_image(
        [[0, 0, 10, 10], [0.5, 0, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60]],
        [[0.9, 0.0], [0.8, 0.0], [0.0, 0.7], [0.6, 0.0]],
    )
    (result,) = postprocess(boxes, scores, score_threshold=0.1, iou_threshold=0.5)
    assert result["scores"].tolist() == torch.tensor([0.9, 0.7, 0.6]).tolist()
    assert result["labels"].tolist() == [0, 1, 0]
    assert result["labels"].dtype == torch.int64
    torch.testing.assert_close(result["boxes"][1], torch.tensor([0.0, 0.0, 10.0, 10.0]))


def test_class_agnostic_suppresses_across_classes():
    boxes, scores = _one_image([[0, 0, 10, 10], [0, 0, 10, 10]], [[0.9, 0.0], [0.0, 0.7]])
    (result,) = postprocess(boxes, scores, score_threshold=0.1, class_agnostic=True)
    assert result["labels"].tolist() == [0]


def test_multi_label_anchor_gives_one_box_per_class():
    boxes, scores = _one_image([[0, 0, 10, 10]], [[0.9, 0.5, 0.01]])
    (result,) = postprocess(boxes, scores, score_threshold=0.1)
    assert result["labels"].tolist() == [0, 1]


def test_score_threshold_and_caps():
    generator = torch.Generator().manual_seed(0)
    xy = torch.rand(2, 50, 2, generator=generator) * 1000
    boxes = torch.cat((xy, xy + 5), dim=-1)  # small scattered boxes: NMS removes few
    scores = torch.rand(2, 50, 3, generator=generator)
    results = postprocess(boxes, scores, score_threshold=0.5, max_detections=10)
    assert len(results) == 2
    for result in results:
        assert len(result["scores"]) == 10 and (result["scores"] > 0.5).all()
        assert (result["scores"][:-1] >= result["scores"][1:]).all()
    (few,) = postprocess(boxes[:1], scores[:1], score_threshold=0.5, max_candidates=4)
    assert len(few["scores"]) <= 4
    top4 = scores[0][scores[0] > 0.5].topk(4).values
    torch.testing.assert_close(few["scores"].sort(descending=True).values, top4[: len(few["scores"])])


def test_nothing_above_threshold_and_empty_input():
    boxes, scores = _one_image([[0, 0, 10, 10]], [[0.0005, 0.0]])
    for result in postprocess(boxes, scores) + postprocess(torch.zeros(1, 0, 4), torch.zeros(1, 0, 3)):
        assert result["boxes"].shape == (0, 4)
        assert result["scores"].shape == (0,)
        assert result["labels"].shape == (0,) and result["labels"].dtype == torch.int64
    assert postprocess(torch.zeros(0, 5, 4), torch.zeros(0, 5, 2)) == []


def test_scale_boxes_undoes_letterbox():
    orig_h, orig_w = 300, 400
    scale, pad = 640 / 400, (0.0, (640 - 300 * 640 / 400) / 2)
    original = torch.tensor([[10.0, 20.0, 110.0, 220.0], [0.0, 0.0, 400.0, 300.0]])
    letterboxed = original * scale + torch.tensor([pad[0], pad[1], pad[0], pad[1]])
    restored = scale_boxes_to_original(letterboxed, scale, pad, (orig_h, orig_w))
    torch.testing.assert_close(restored, original)
    beyond = torch.tensor([[-20.0, 0.0, 700.0, 640.0]])
    outside = scale_boxes_to_original(beyond, scale, pad, (orig_h, orig_w))
    torch.testing.assert_close(outside, torch.tensor([[0.0, 0.0, 400.0, 300.0]]))


def test_decode_predictions_shapes():
    sizes, strides, bins = [(4, 4), (2, 2)], [8, 16], 16
    box_maps = [torch.zeros(2, 4 * bins, h, w) for h, w in sizes]
    cls_maps = [torch.zeros(2, 3, h, w) for h, w in sizes]
    boxes, scores = decode_predictions(box_maps, cls_maps, strides)
    assert boxes.shape == (2, 20, 4) and scores.shape == (2, 20, 3)
    points, stride_tensor = make_anchor_points(sizes, strides)
    # uniform distribution: expectation 7.5 bins on each side
    torch.testing.assert_close(boxes[0, :, :2], points - 7.5 * stride_tensor)
    torch.testing.assert_close(scores, torch.full_like(scores, 0.5))


def test_without_nms_every_candidate_above_the_threshold_stays_best_first_up_to_the_cap():
    """An NMS-free head's output: duplicates are not suppressed (the head was trained not to make them)."""
    boxes, scores = _one_image(
        [[0, 0, 10, 10], [0.5, 0, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60]],
        [[0.8, 0.0], [0.9, 0.0], [0.0, 0.7], [0.05, 0.0]],
    )
    (result,) = postprocess(boxes, scores, score_threshold=0.1, nms=False)
    assert result["scores"].tolist() == torch.tensor([0.9, 0.8, 0.7]).tolist()
    assert result["labels"].tolist() == [0, 0, 1]
    (capped,) = postprocess(boxes, scores, score_threshold=0.1, max_detections=2, nms=False, classes=[0])
    assert capped["scores"].tolist() == torch.tensor([0.9, 0.8]).tolist()
