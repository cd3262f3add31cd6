"""A random detector whose scores follow the pixels, for comparing runtimes and input forms."""

from __future__ import annotations

import torch

import yolotl


def lively_detector(backbone: str, image_size: int, task: str = "detect", **options) -> yolotl.YoloDetector:
    """Random weights, norm statistics of one batch and a livelier class layer: scores spread over (0, 1).
    ``options``: more ``create_detector`` settings (``neck``, ``head``, ``reg_max``)."""
    torch.manual_seed(0)
    detector = yolotl.create_detector(
        backbone, class_names=["a", "b", "c"], pretrained=False, image_size=image_size, neck_width=16, task=task,
        **options,
    )
    for module in detector.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # cumulative average: the statistics of the one batch below
    with torch.no_grad():
        detector.train()(torch.rand(4, 3, image_size, image_size))
    for branch in detector.head.cls_branches:
        torch.nn.init.normal_(branch[-1].weight, std=0.05)
    return detector.eval()


def lively_photo_detector(images: torch.Tensor, image_size: int) -> yolotl.YoloDetector:
    """The offline ImageNet efficientnet_lite0 backbone (real features: where INT8 rounding matters), a
    random neck and head with the norm statistics of ``images`` (real photos, ``[B, 3, S, S]`` in [0, 1])
    and a class layer whose scores spread over (0, 1) on them."""
    torch.manual_seed(0)
    detector = yolotl.create_detector(
        "efficientnet_lite0", class_names=["a", "b", "c"], pretrained="offline", image_size=image_size, neck_width=16
    )
    for module in [*detector.neck.modules(), *detector.head.modules()]:
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None
    detector.eval()
    detector.neck.train()
    detector.head.train()
    with torch.no_grad():
        detector(images)
    for branch in detector.head.cls_branches:
        torch.nn.init.normal_(branch[-1].weight, std=0.3)
        torch.nn.init.constant_(branch[-1].bias, -2.0)
    return detector.eval()


SEMANTIC_CLASSES = ["background", "road", "tree"]


def lively_segmenter(image_size: int, backbone: str = "mobilenetv3_small_100") -> yolotl.YoloDetector:
    """A random semantic segmenter (``task="semantic"``, :data:`SEMANTIC_CLASSES`) with the norm statistics of
    one batch and a livelier classifier: every class wins somewhere, so class maps are worth comparing."""
    torch.manual_seed(0)
    detector = yolotl.create_detector(
        backbone, task="semantic", class_names=SEMANTIC_CLASSES, pretrained=False, image_size=image_size,
        neck_width=16,
    )
    for module in detector.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None
    with torch.no_grad():
        detector.train()(torch.rand(4, 3, image_size, image_size))
    torch.nn.init.normal_(detector.head.classifier.weight, std=0.03)  # logits of a few units: soft maps
    return detector.eval()


def save_checkpoint(detector: yolotl.YoloDetector, path) -> str:
    """``detector`` as a checkpoint ``yolotl.load`` reads (what training writes, less Lightning's entries)."""
    from yolotl.models.checkpoint import checkpoint_entry

    torch.save({"state_dict": {f"detector.{k}": v for k, v in detector.state_dict().items()},
                "yolotl": checkpoint_entry(detector)}, path)
    return str(path)
