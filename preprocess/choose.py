"""Which face to align when the detector finds several.

Policy, in order:
1. annotated box (ExpW gives one per label line): the detection overlapping it most
   (IoU >= MIN_BOX_IOU, else the face counts as not found);
2. otherwise the largest detected box (`select="largest"`, the default), ties broken by score;
3. or, with `select="confident"`, the highest detection probability, ties broken by size.
The rule that decided is written to the manifest's `policy` column.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from common.errors import ConfigError
from preprocess.detector import Detection

SELECT_CHOICES = ("largest", "confident")
# An annotated box and MTCNN's box for the same face differ in extent (MTCNN's includes more
# forehead and chin); 0.3 keeps those and rejects a neighbouring face seen in the enlarged crop.
MIN_BOX_IOU = 0.3


def iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def choose_face(
    detections: Sequence[Detection],
    annotated_box: Sequence[float] | None = None,
    select: str = "largest",
) -> tuple[Detection | None, str]:
    """Return (chosen detection or None, name of the rule applied)."""
    if select not in SELECT_CHOICES:
        raise ConfigError(f"select must be one of {SELECT_CHOICES}, got {select!r}")
    if not detections:
        return None, "no_detection"
    if annotated_box is not None:
        box = np.asarray(annotated_box, dtype=np.float64)
        scored = [(iou(d.box, box), d.prob, d) for d in detections]
        best_iou, _, best = max(scored, key=lambda t: (t[0], t[1]))
        if best_iou < MIN_BOX_IOU:
            return None, "no_detection_in_box"
        return best, "annotated_box"
    if len(detections) == 1:
        return detections[0], "single"
    if select == "largest":
        return max(detections, key=lambda d: (d.area, d.prob)), "largest"
    return max(detections, key=lambda d: (d.prob, d.area)), "confident"
