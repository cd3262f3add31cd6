"""Box, assignment, loss and post-processing ops of the anchor-free YOLO head."""

from yolotl.ops.assign import Assignment, TaskAlignedAssigner, points_in_boxes
from yolotl.ops.boxes import (
    box_to_distance,
    decode_boxes,
    distance_to_box,
    distribution_to_distance,
    flatten_levels,
    make_anchor_points,
)
from yolotl.ops.loss import DetectionLoss, LossOutput, OneToOneLoss, box_loss, dfl_loss, pad_targets
from yolotl.ops.postprocess import decode_predictions, postprocess, scale_boxes_to_original

__all__ = [
    "Assignment",
    "DetectionLoss",
    "OneToOneLoss",
    "LossOutput",
    "TaskAlignedAssigner",
    "box_loss",
    "box_to_distance",
    "decode_boxes",
    "decode_predictions",
    "dfl_loss",
    "distance_to_box",
    "distribution_to_distance",
    "flatten_levels",
    "make_anchor_points",
    "pad_targets",
    "points_in_boxes",
    "postprocess",
    "scale_boxes_to_original",
]
