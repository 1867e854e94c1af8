"""Five-point similarity alignment to each model's own template."""

from __future__ import annotations

import cv2
import numpy as np

from facewise.models._detect_util import similarity_transform

__all__ = ["ARCFACE_112", "align", "align_many", "similarity_transform"]

ARCFACE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)


def align(image: np.ndarray, landmarks: np.ndarray, template: np.ndarray, size: int) -> np.ndarray:
    """Warp ``image`` so the five ``landmarks`` land on ``template``; returns (size, size, 3) uint8."""
    m = similarity_transform(landmarks, template)
    return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def align_many(image: np.ndarray, landmarks: list[np.ndarray], template: np.ndarray, size: int) -> np.ndarray:
    if not landmarks:
        return np.zeros((0, size, size, 3), np.uint8)
    return np.stack([align(image, lm, template, size) for lm in landmarks])
