"""A random detector whose scores follow the pixels, for comparing runtimes and input forms."""

from __future__ import annotations

import torch

import yolotl


def lively_detector(backbone: str, image_size: int) -> yolotl.YoloDetector:
    """Random weights, norm statistics of one batch and a livelier class layer: scores spread over (0, 1)."""
    torch.manual_seed(0)
    detector = yolotl.create_detector(
        backbone, class_names=["a", "b", "c"], pretrained=False, image_size=image_size, neck_width=16
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
