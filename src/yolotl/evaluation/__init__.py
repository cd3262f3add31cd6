"""Evaluation: mAP and operating-point metrics."""

from yolotl.evaluation.metrics import DetectionMetrics
from yolotl.evaluation.pr_f1 import PrecisionRecallF1, best_f1, match_predictions

__all__ = ["DetectionMetrics", "PrecisionRecallF1", "best_f1", "match_predictions"]
