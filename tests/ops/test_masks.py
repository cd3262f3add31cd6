"""Mask ops of the prototype head: the loss (inside the box, per box area, crowd ignored) and
post-processing (cropped, thresholded, un-letterboxed)."""

import torch

from yolotl.ops import DetectionLoss
from yolotl.ops.masks import box_region, downsample_masks, mask_loss, process_masks, scale_masks_to_original


def _square_mask(size: int, x0: int, y0: int, x1: int, y1: int) -> torch.Tensor:
    mask = torch.zeros(size, size)
    mask[y0:y1, x0:x1] = 1
    return mask


def test_mask_loss_is_zero_for_a_perfect_mask_and_larger_for_a_wrong_one() -> None:
    gt = _square_mask(16, 4, 4, 10, 12)[None]  # [1, 16, 16]
    protos = torch.stack([gt[0] * 40 - 20, torch.ones(16, 16)])  # prototype 0 is the object's mask as logits +-20
    box = torch.tensor([[3.0, 3.0, 11.0, 13.0]])
    perfect = mask_loss(torch.tensor([[1.0, 0.0]]), protos, gt, box)
    inverted = mask_loss(torch.tensor([[-1.0, 0.0]]), protos, gt, box)
    flat = mask_loss(torch.tensor([[0.0, 0.0]]), protos, gt, box)  # p = 0.5 everywhere: log 2 per pixel
    assert float(perfect) < 1e-6
    assert float(inverted) > float(flat) > 0.5
    assert torch.isclose(flat, torch.tensor(0.6931), atol=1e-3).all()  # normalised by the box area


def test_mask_loss_counts_only_pixels_inside_the_box() -> None:
    gt = _square_mask(16, 4, 4, 10, 12)[None]
    protos = torch.stack([gt[0] * 40 - 20, torch.zeros(16, 16)])
    protos[0, 0, 0] = 20.0  # a wrong pixel outside the box changes nothing
    assert float(mask_loss(torch.tensor([[1.0, 0.0]]), protos, gt, torch.tensor([[4.0, 4.0, 10.0, 12.0]]))) < 1e-6


def _head_maps(batch: int, size: int, num_classes: int, protos: int) -> dict:
    torch.manual_seed(0)
    sizes = [size // s for s in (8, 16, 32)]
    return {
        "box_maps": [torch.randn(batch, 64, n, n) for n in sizes],
        "cls_maps": [torch.randn(batch, num_classes, n, n) for n in sizes],
        "coef_maps": [torch.randn(batch, protos, n, n, requires_grad=True) for n in sizes],
        "protos": torch.randn(batch, protos, size // 4, size // 4, requires_grad=True),
    }


def test_detection_loss_adds_a_mask_term_that_ignores_crowd_objects() -> None:
    loss = DetectionLoss(num_classes=2)
    maps = _head_maps(1, 64, 2, 8)
    mask = _square_mask(64, 8, 8, 40, 40).to(torch.uint8)[None]
    target = {"boxes": torch.tensor([[8.0, 8.0, 40.0, 40.0]]), "labels": torch.tensor([1]), "masks": mask}
    plain = loss(maps["box_maps"], maps["cls_maps"], [8, 16, 32], [target], maps["coef_maps"], maps["protos"])
    assert plain.mask is not None and float(plain.mask) > 0
    assert torch.isclose(plain.total, 7.5 * plain.box + 0.5 * plain.cls + 1.5 * plain.dfl + 7.5 * plain.mask)
    crowd = {**target, "iscrowd": torch.tensor([True])}
    ignored = loss(maps["box_maps"], maps["cls_maps"], [8, 16, 32], [crowd], maps["coef_maps"], maps["protos"])
    assert float(ignored.mask) == 0.0 and float(ignored.box) == float(plain.box)
    ignored.total.backward()  # a zero mask term still reaches the mask branch (no unused parameters)
    assert maps["protos"].grad is not None
    detection = loss(maps["box_maps"], maps["cls_maps"], [8, 16, 32], [target])
    assert detection.mask is None and float(detection.total.detach()) < float(plain.total.detach())


def test_downsample_masks_keeps_more_than_half_covered_cells() -> None:
    mask = _square_mask(16, 2, 2, 12, 12).to(torch.uint8)[None]
    small = downsample_masks(mask, (4, 4))
    assert small.shape == (1, 4, 4) and small[0].tolist() == [[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]]
    assert downsample_masks(mask[:0], (4, 4)).shape == (0, 4, 4)


def test_process_masks_crops_to_the_box_and_unletterbox_maps_back() -> None:
    protos = torch.ones(1, 8, 8)  # positive everywhere: the mask is the box
    boxes = torch.tensor([[4.0, 8.0, 20.0, 16.0]])
    masks = process_masks(torch.ones(1, 1), protos, boxes, (32, 32))
    assert masks.dtype == torch.bool and masks.shape == (1, 32, 32)
    assert torch.equal(masks, box_region(boxes, 32, 32))
    # a 64x32 (w x h) original letterboxed into 32x32: scale 0.5, pad_y 8
    original = scale_masks_to_original(masks, 0.5, (0.0, 8.0), (32, 64))
    ys, xs = original[0].nonzero(as_tuple=True)
    assert original.shape == (1, 32, 64)
    assert (int(xs.min()), int(xs.max()), int(ys.min()), int(ys.max())) == (8, 39, 0, 15)
