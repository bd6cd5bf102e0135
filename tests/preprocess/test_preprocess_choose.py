"""The several-faces policy: annotated box, else largest, else most confident."""
from __future__ import annotations

import numpy as np
import pytest

from preprocess.detector import Detection
from preprocess.choose import choose_face


def _face(x1, y1, x2, y2, prob):
    box = np.array([x1, y1, x2, y2], dtype=float)
    cx, cy, w = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1
    eyes = [[cx - w / 4, cy], [cx + w / 4, cy]]
    points = np.array(eyes + [[cx, cy + w / 8], [cx - w / 5, cy + w / 4], [cx + w / 5, cy + w / 4]])
    return Detection(box, prob, points)


BIG_UNSURE = _face(0, 0, 100, 120, 0.91)
SMALL_SURE = _face(200, 0, 260, 70, 0.999)
MID = _face(400, 0, 480, 90, 0.95)


def test_largest_by_default_and_confident_on_request():
    faces = [SMALL_SURE, BIG_UNSURE, MID]
    assert choose_face(faces) == (BIG_UNSURE, "largest")
    assert choose_face(faces, select="confident") == (SMALL_SURE, "confident")
    assert choose_face([MID]) == (MID, "single")
    assert choose_face([]) == (None, "no_detection")
    with pytest.raises(ValueError, match="largest"):
        choose_face(faces, select="biggest")


def test_annotated_box_wins_over_size_and_score():
    faces = [SMALL_SURE, BIG_UNSURE, MID]
    assert choose_face(faces, annotated_box=(395, 5, 485, 95)) == (MID, "annotated_box")
    # a box where nothing was detected: no face, even though there are faces elsewhere
    assert choose_face(faces, annotated_box=(600, 600, 700, 700)) == (None, "no_detection_in_box")
