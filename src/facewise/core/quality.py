"""Face quality with reasons an operator can read, computed on the aligned crop.

Every limit lives in :class:`QualityPolicy` (no hidden constants); the defaults were chosen on
LFW and the knn_examples photos and are documented in docs/ANALYSIS.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facewise.core.align import ARCFACE_112, align
from facewise.models.attributes.headpose import pose_from_landmarks
from facewise.types import Detection, Quality


@dataclass(frozen=True)
class QualityPolicy:
    min_face_px: float = 40.0  # shorter side of the box
    min_sharpness: float = 60.0  # variance of the Laplacian on the 112 px aligned grey crop
    min_brightness: float = 45.0
    max_brightness: float = 215.0
    max_abs_yaw: float = 50.0
    min_det_score: float = 0.6
    max_outside: float = 0.2  # share of the box outside the image


def yaw_from_landmarks(lm: np.ndarray) -> float:
    """Approximate yaw in degrees from five landmarks (FSA-Net's sign: > 0 when the face turns to image-left)."""
    return pose_from_landmarks(lm)[0]


def assess(image: np.ndarray, det: Detection, yaw: float, policy: QualityPolicy | None = None) -> Quality:
    p = policy or QualityPolicy()
    crop = align(image, det.landmarks, ARCFACE_112, 112)
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    centre = grey[24:100, 20:92]
    sharp = float(cv2.Laplacian(centre, cv2.CV_64F).var())
    bright = float(centre.mean())
    side = min(det.box.width, det.box.height)
    h, w = image.shape[:2]
    # the raw detector box may extend past the image: estimate that from the landmark spread
    span = float(np.ptp(det.landmarks[:, 0])) * 1.8
    cx, cy = det.landmarks.mean(0)
    x1, x2, y1, y2 = cx - span / 2, cx + span / 2, cy - span * 0.6, cy + span * 0.6
    inside = max(0.0, min(x2, w) - max(x1, 0)) * max(0.0, min(y2, h) - max(y1, 0))
    outside = 1.0 - inside / max(span * span * 1.2, 1e-6)

    reasons: list[str] = []
    score = 1.0
    if side < p.min_face_px:
        reasons.append(f"too small ({side:.0f} px < {p.min_face_px:.0f} px)")
        score *= max(0.2, side / p.min_face_px)
    if sharp < p.min_sharpness:
        reasons.append(f"blurred (sharpness {sharp:.0f} < {p.min_sharpness:.0f})")
        score *= max(0.2, sharp / p.min_sharpness)
    if bright < p.min_brightness:
        reasons.append(f"too dark (brightness {bright:.0f} < {p.min_brightness:.0f})")
        score *= max(0.2, bright / p.min_brightness)
    elif bright > p.max_brightness:
        reasons.append(f"over-exposed (brightness {bright:.0f} > {p.max_brightness:.0f})")
        score *= max(0.2, (255 - bright) / (255 - p.max_brightness))
    if abs(yaw) > p.max_abs_yaw:
        reasons.append(f"extreme pose (yaw {yaw:+.0f}°)")
        score *= max(0.3, 1 - (abs(yaw) - p.max_abs_yaw) / 60)
    if det.score < p.min_det_score:
        reasons.append(f"low detector confidence ({det.score:.2f} < {p.min_det_score:.2f})")
        score *= max(0.2, det.score / p.min_det_score)
    if outside > p.max_outside:
        reasons.append(f"partial face ({outside:.0%} outside the image)")
        score *= max(0.2, 1 - outside)
    metrics = {"sharpness": round(sharp, 1), "brightness": round(bright, 1), "face_px": round(side, 1),
               "outside": round(float(max(outside, 0.0)), 3)}
    return Quality(score=float(np.clip(score, 0.0, 1.0)), reasons=reasons, metrics=metrics)
