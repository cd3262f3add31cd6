"""The val loss counts the objects val mAP scores: crowd regions and VOC difficult objects stay out."""

import torch

from yolotl import DetectionModule
from yolotl.models import create_detector


def test_an_ignored_object_does_not_change_the_val_loss_but_an_ordinary_one_does():
    torch.manual_seed(0)
    detector = create_detector("efficientnet_lite0", num_classes=2, pretrained=False, image_size=64, neck_width=16)
    module = DetectionModule(detector).eval()
    images = torch.rand(1, 3, 64, 64)
    one = {"boxes": torch.tensor([[8.0, 8.0, 30.0, 30.0]]), "labels": torch.tensor([0]), "iscrowd": torch.tensor([False])}
    extra = {"boxes": torch.tensor([[8.0, 8.0, 30.0, 30.0], [34.0, 34.0, 60.0, 60.0]]), "labels": torch.tensor([0, 1])}
    with torch.no_grad():
        base = module._losses((images, [one]), scored_only=True)[1].total
        ignored = module._losses((images, [{**extra, "iscrowd": torch.tensor([False, True])}]), scored_only=True)[1].total
        counted = module._losses((images, [{**extra, "iscrowd": torch.tensor([False, False])}]), scored_only=True)[1].total
    assert torch.equal(base, ignored) and not torch.equal(base, counted)
