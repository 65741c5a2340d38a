"""Keypoint layouts and the mapping from mediapipe's 33 pose landmarks to COCO-23.

COCO-23 is the order of anny's keypoint regressor: the 17 COCO body points, then big toe,
small toe and heel per foot. Left/right are the person's own sides in both layouts.
"""

from __future__ import annotations

import numpy as np

COCO23 = [
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_big_toe", "right_big_toe", "left_small_toe", "right_small_toe", "left_heel", "right_heel",
]  # fmt: skip

# COCO-23 index -> mediapipe pose landmark index (None: no counterpart). mediapipe has one
# "foot index" point per foot, between the toes: it stands in for the big toe only.
_MEDIAPIPE_FOR_COCO23 = [0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28, 31, 32, None, None, 29, 30]

# How much each COCO-23 point is trusted in the fit. mediapipe's hip points sit higher and
# wider than anny's hip joints, and its ears are often guessed: they count less.
COCO23_FIT_WEIGHTS = np.array(
    [1.0, 0.6, 0.6, 0.4, 0.4, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.6, 0.6, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.0, 0.0, 0.7, 0.7],
    dtype=np.float32,
)


def mediapipe_to_coco23(body33: np.ndarray) -> np.ndarray:
    """body33: (33, 3) x, y pixels and visibility -> (23, 3) in COCO-23 order (missing: 0)."""
    out = np.zeros((len(COCO23), 3), dtype=np.float32)
    for k, m in enumerate(_MEDIAPIPE_FOR_COCO23):
        if m is not None:
            out[k] = body33[m]
    return out
