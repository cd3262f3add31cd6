"""One way to write a split's scores on one line, for every console line, log line and benchmark print.

``val mAP50-95 0.4121  mAP50 0.8350  mAP75 0.4012  P 0.810  R 0.770  F1 0.790  conf 0.312``: the numbers
present, in this order (box mAP, mask mAP, a semantic segmenter's mean IoU and pixel accuracy, then
precision, recall and F1 at the best-F1 confidence); training, ``yolotl-eval``, ``yolotl-train``'s last line
and the benchmarks read alike.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

__all__ = ["BRIEF", "FIELDS", "score_line"]

# metric key (as in metrics.json), label, digits
FIELDS: tuple[tuple[str, str, int], ...] = (
    ("map", "mAP50-95", 4),
    ("map_50", "mAP50", 4),
    ("map_75", "mAP75", 4),
    ("mask_map", "mask mAP50-95", 4),
    ("mask_map_50", "mask mAP50", 4),
    ("mask_map_75", "mask mAP75", 4),
    ("miou", "mIoU", 4),
    ("pixel_acc", "pixel acc", 4),
    ("precision", "P", 3),
    ("recall", "R", 3),
    ("f1", "F1", 3),
    ("confidence", "conf", 3),
)
# the headline: box and mask mAP50-95 and mAP50; mean IoU and pixel accuracy (task=semantic)
BRIEF = ("map", "map_50", "mask_map", "mask_map_50", "miou", "pixel_acc")


def score_line(split: str, values: Mapping[str, float], keys: Collection[str] | None = None) -> str:
    """``<split> mAP50-95 0.4121  mAP50 0.8350 ...``: the ``FIELDS`` found in ``values`` (only those in
    ``keys`` when given; e.g. :data:`BRIEF`), in ``FIELDS`` order; other keys are left out."""
    shown = [f"{label} {float(values[key]):.{digits}f}" for key, label, digits in FIELDS
             if key in values and (keys is None or key in keys)]
    return f"{split} {'  '.join(shown)}".rstrip()
