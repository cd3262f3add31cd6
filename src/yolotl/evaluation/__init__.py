"""Evaluation: mAP and operating-point metrics, semantic IoU, curves, the confusion matrix, COCO JSON and the report."""

from typing import Any

from yolotl.evaluation.curves import (
    ConfidenceCurves,
    confidence_curves,
    confusion_matrix,
    confusion_summary,
    pr_curves_from_coco,
)
from yolotl.evaluation.matching import greedy_match
from yolotl.evaluation.metrics import DetectionMetrics
from yolotl.evaluation.pr_f1 import PrecisionRecallF1, best_f1, match_predictions
from yolotl.evaluation.semantic_metrics import SemanticMetrics, scores_from_confusion

__all__ = [
    "ConfidenceCurves",
    "DetectionMetrics",
    "PrecisionRecallF1",
    "SemanticMetrics",
    "best_f1",
    "confidence_curves",
    "confusion_matrix",
    "confusion_summary",
    "greedy_match",
    "match_predictions",
    "pr_curves_from_coco",
    "scores_from_confusion",
    "write_report",
]


def __getattr__(name: str) -> Any:
    # The report pulls in matplotlib; import it only when asked for.
    if name == "write_report":
        from yolotl.evaluation.report import write_report

        return write_report
    raise AttributeError(f"module 'yolotl.evaluation' has no attribute {name!r}")
