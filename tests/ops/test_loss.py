"""Distribution focal loss and the DetectionLoss module on small hand-made heads."""

import math

import pytest
import torch

from yolotl.ops import DetectionLoss, TaskAlignedAssigner, dfl_loss, make_anchor_points, pad_targets

STRIDES = [8, 16]
SIZES = [(4, 4), (2, 2)]  # a 32x32 input
REG_MAX, NUM_CLASSES = 8, 3


def _maps(batch=1, box_fill=0.0, cls_fill=-4.0, requires_grad=True):
    box_maps = [torch.full((batch, 4 * REG_MAX, h, w), box_fill) for h, w in SIZES]
    cls_maps = [torch.full((batch, NUM_CLASSES, h, w), cls_fill) for h, w in SIZES]
    for tensor in box_maps + cls_maps:
        tensor.requires_grad_(requires_grad)
    return box_maps, cls_maps


def _target(boxes, labels):
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), "labels": torch.tensor(labels)}


def _perfect_maps(target_box, label, peak=20.0):
    """Box maps whose distributions put the exact target distances on every anchor."""
    box_maps, cls_maps = _maps(requires_grad=False)
    points, strides = make_anchor_points(SIZES, STRIDES)
    box = torch.tensor(target_box, dtype=torch.float32)
    ltrb = torch.cat((points - box[:2], box[2:] - points), dim=-1) / strides  # [A, 4]
    ltrb = ltrb.clamp(0, REG_MAX - 1.01)
    logits = torch.full((len(points), 4, REG_MAX), -peak)
    left = ltrb.floor().long()
    frac = ltrb - left
    # log-probabilities proportional to the two neighbouring bins' weights
    logits.scatter_(-1, left[..., None], (1 - frac).clamp(min=1e-6).log()[..., None])
    logits.scatter_(-1, (left + 1)[..., None], frac.clamp(min=1e-6).log()[..., None])
    inside = ((points > box[:2]) & (points < box[2:])).all(dim=-1)  # [A]
    cls_logits = torch.where(inside, 4.0, -4.0)
    start = 0
    for level, (h, w) in enumerate(SIZES):
        chunk = logits[start : start + h * w]  # [HW, 4, R]
        box_maps[level] = chunk.permute(1, 2, 0).reshape(1, 4 * REG_MAX, h, w).clone()
        cls_maps[level][0, label] = cls_logits[start : start + h * w].reshape(h, w)
        start += h * w
    return box_maps, cls_maps


def test_dfl_minimal_at_neighbouring_bins_in_proportion():
    target = torch.tensor([[2.3, 0.0, 5.5, 6.99]])
    weights = torch.zeros(1, 4, REG_MAX)
    for side, value in enumerate(target[0].tolist()):
        left = math.floor(value)
        weights[0, side, left] = left + 1 - value
        if left + 1 < REG_MAX:
            weights[0, side, left + 1] = value - left
    best = weights.clamp(min=1e-12).log()
    best_loss = dfl_loss(best, target)
    # the loss at the optimum is the entropy of the two-bin label
    entropy = -(weights * weights.clamp(min=1e-12).log()).sum(-1).mean(-1)
    torch.testing.assert_close(best_loss, entropy)
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        perturbed = best + 0.5 * torch.randn(best.shape, generator=generator)
        assert dfl_loss(perturbed, target) > best_loss
    # mass on the right bins in the wrong proportion is worse
    swapped = best.clone()
    swapped[0, 0, 2], swapped[0, 0, 3] = best[0, 0, 3], best[0, 0, 2]
    assert dfl_loss(swapped, target) > best_loss


def test_dfl_shape_and_gradient():
    logits = torch.randn(5, 4, REG_MAX, requires_grad=True)
    target = torch.rand(5, 4) * (REG_MAX - 1.01)
    loss = dfl_loss(logits, target)
    assert loss.shape == (5,)
    loss.sum().backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_pad_targets():
    targets = [_target([[0, 0, 1, 1]], [2]), _target([], []), _target([[1, 1, 2, 2]] * 3, [0] * 3)]
    labels, boxes, mask = pad_targets(targets)
    assert labels.shape == (3, 3) and boxes.shape == (3, 3, 4)
    assert mask.tolist() == [[True, False, False], [False, False, False], [True, True, True]]
    assert labels[0, 0] == 2


def test_better_predictions_give_lower_loss():
    target_box, label = [2.0, 3.0, 21.0, 26.0], 1
    criterion = DetectionLoss(NUM_CLASSES, reg_max=REG_MAX)
    targets = [_target([target_box], [label])]
    perfect = criterion(*_perfect_maps(target_box, label), STRIDES, targets)
    uniform = criterion(*_maps(requires_grad=False), STRIDES, targets)
    wrong_box = criterion(*_perfect_maps([16.0, 16.0, 31.0, 31.0], label), STRIDES, targets)
    assert perfect.num_foreground > 0
    assert perfect.box.item() < 1e-3
    assert perfect.box < wrong_box.box and perfect.dfl < wrong_box.dfl
    assert perfect.box < uniform.box and perfect.dfl < uniform.dfl
    assert perfect.total < uniform.total and perfect.total < wrong_box.total


def test_empty_image_in_batch_and_gradients():
    box_maps, cls_maps = _maps(batch=2)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for tensor in box_maps + cls_maps:
            tensor.add_(torch.randn(tensor.shape, generator=generator))
    targets = [_target([[2.0, 3.0, 21.0, 26.0]], [1]), _target([], [])]
    out = DetectionLoss(NUM_CLASSES, reg_max=REG_MAX)(box_maps, cls_maps, STRIDES, targets)
    assert torch.isfinite(out.total) and out.box > 0 and out.dfl > 0
    out.total.backward()
    for tensor in box_maps + cls_maps:
        assert torch.isfinite(tensor.grad).all()
    assert sum(t.grad[0].abs().sum() for t in box_maps) > 0
    assert sum(t.grad.abs().sum() for t in cls_maps) > 0
    assert all(t.grad[1].abs().sum() == 0 for t in box_maps)  # no positives in image 1


def test_batch_without_boxes():
    box_maps, cls_maps = _maps(batch=2)
    out = DetectionLoss(NUM_CLASSES, reg_max=REG_MAX)(box_maps, cls_maps, STRIDES, [_target([], [])] * 2)
    assert torch.isfinite(out.total)
    assert out.box == 0 and out.dfl == 0 and out.cls > 0 and out.num_foreground == 0
    out.total.backward()
    assert sum(t.grad.abs().sum() for t in cls_maps) > 0
    assert all(t.grad is not None and (t.grad == 0).all() for t in box_maps)  # graph still reaches them


@pytest.mark.parametrize("fill", [1e4, -1e4])
def test_extreme_predictions_stay_finite(fill):
    box_maps, cls_maps = _maps(box_fill=0.0, cls_fill=fill, requires_grad=False)
    with torch.no_grad():
        for level in box_maps:  # every side's distribution collapsed on bin 0: point-sized boxes
            level.view(1, 4, REG_MAX, -1)[:, :, 0] = fill
    for tensor in box_maps + cls_maps:
        tensor.requires_grad_(True)
    targets = [_target([[2.0, 3.0, 21.0, 26.0], [16.0, 0.0, 32.0, 30.0]], [1, 2])]
    out = DetectionLoss(NUM_CLASSES, reg_max=REG_MAX)(box_maps, cls_maps, STRIDES, targets)
    out.total.backward()
    assert torch.isfinite(out.total)
    for tensor in box_maps + cls_maps:
        assert torch.isfinite(tensor.grad).all()


def test_custom_assigner_and_checks():
    criterion = DetectionLoss(NUM_CLASSES, reg_max=REG_MAX, assigner=TaskAlignedAssigner(topk=1))
    box_maps, cls_maps = _maps()
    out = criterion(box_maps, cls_maps, STRIDES, [_target([[2.0, 3.0, 21.0, 26.0]], [0])])
    assert out.num_foreground == 1
    with pytest.raises(ValueError, match="labels"):
        criterion(box_maps, cls_maps, STRIDES, [_target([[2.0, 3.0, 21.0, 26.0]], [NUM_CLASSES])])
    with pytest.raises(ValueError, match="reg_max"):
        DetectionLoss(NUM_CLASSES, reg_max=16)(box_maps, cls_maps, STRIDES, [_target([], [])])


def test_direct_regression_learns_boxes_without_a_distribution():
    """reg_max=1: one value per side (a softplus distance). A few steps of plain gradient descent on the loss
    bring the best decoded box from IoU 0.43 with the ground truth (every side 1.3 strides) to above 0.85."""
    from torchvision.ops import box_iou

    from yolotl.ops import decode_boxes, flatten_levels, make_anchor_points

    sizes = [(8, 8), (4, 4)]  # 64 px at strides 8 and 16
    box_maps = [torch.zeros(1, 4, h, w, requires_grad=True) for h, w in sizes]
    cls_maps = [torch.zeros(1, NUM_CLASSES, h, w, requires_grad=True) for h, w in sizes]
    targets = [_target([[10.0, 12.0, 40.0, 50.0]], [1])]
    criterion = DetectionLoss(NUM_CLASSES, reg_max=1)
    optimizer = torch.optim.SGD([*box_maps, *cls_maps], lr=0.2)
    points, strides = make_anchor_points(sizes, STRIDES)

    def best_iou() -> float:
        with torch.no_grad():
            boxes = decode_boxes(flatten_levels(box_maps, cls_maps)[0], points, strides)[0]
            return float(box_iou(boxes, targets[0]["boxes"]).max())

    before = best_iou()
    for _ in range(16):
        out = criterion(box_maps, cls_maps, STRIDES, targets)
        assert torch.isfinite(out.total) and float(out.dfl) >= 0
        optimizer.zero_grad()
        out.total.backward()
        optimizer.step()
    assert before < 0.5 and best_iou() > 0.85


def test_one_to_one_loss_trains_one_anchor_per_object_and_the_auxiliary_maps_many():
    from yolotl.ops import OneToOneLoss

    box_maps, cls_maps = _maps(batch=2)
    aux_box, aux_cls = _maps(batch=2)
    targets = [_target([[2.0, 3.0, 20.0, 26.0], [16.0, 16.0, 30.0, 31.0]], [1, 2]), _target([[4.0, 4.0, 28.0, 28.0]], [0])]
    criterion = OneToOneLoss(DetectionLoss(NUM_CLASSES, reg_max=REG_MAX, assigner=TaskAlignedAssigner(topk=1)),
                             DetectionLoss(NUM_CLASSES, reg_max=REG_MAX))
    out = criterion(box_maps, cls_maps, STRIDES, targets, aux_box, aux_cls)
    assert int(out.num_foreground) == 3  # the one-to-one side: one anchor for each of the 3 objects
    many = DetectionLoss(NUM_CLASSES, reg_max=REG_MAX)(aux_box, aux_cls, STRIDES, targets)
    assert int(many.num_foreground) > 3
    out.total.backward()
    assert all(m.grad is not None and m.grad.abs().sum() > 0 for m in [*cls_maps, *aux_cls])  # BCE: every anchor
    assert all(sum(m.grad.abs().sum() for m in maps) > 0 for maps in (box_maps, aux_box))  # boxes: the positives
