"""Shared detector helpers: working-resolution scaling, non-maximum suppression, similarity fits."""

from __future__ import annotations

import cv2
import numpy as np


def fit_scale(image: np.ndarray, max_side: int, min_side: int = 0) -> tuple[np.ndarray, float]:
    """Resize so the longer side is at most ``max_side`` (and the shorter at least ``min_side``).

    Returns the resized image and the factor that maps its coordinates back to the original.
    """
    h, w = image.shape[:2]
    scale = 1.0
    if max(h, w) > max_side:
        scale = max_side / max(h, w)
    elif min_side and min(h, w) < min_side:
        scale = min(min_side / min(h, w), max_side / max(h, w))
    if scale == 1.0:
        return image, 1.0
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=interp)
    return resized, 1.0 / scale


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list[int]:
    """Greedy non-maximum suppression on (N, 4) x1,y1,x2,y2 boxes; returns kept indices."""
    order = np.argsort(-scores)
    keep: list[int] = []
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    while order.size:
        i = int(order[0])
        keep.append(i)
        xx1 = np.maximum(boxes[i, 0], boxes[order[1:], 0])
        yy1 = np.maximum(boxes[i, 1], boxes[order[1:], 1])
        xx2 = np.minimum(boxes[i, 2], boxes[order[1:], 2])
        yy2 = np.minimum(boxes[i, 3], boxes[order[1:], 3])
        inter = np.clip(xx2 - xx1, 0, None) * np.clip(yy2 - yy1, 0, None)
        iou = inter / (areas[i] + areas[order[1:]] - inter + 1e-9)
        order = order[1:][iou <= iou_threshold]
    return keep


def bgr_and_boxes(image_rgb: np.ndarray, boxes: object) -> tuple[np.ndarray, np.ndarray]:
    """Validate an RGB image and ``[N, >=4]`` (x1, y1, x2, y2) boxes for crop-based models.

    Returns the image in BGR and the boxes as float64 ``[N, >=4]`` (``N`` may be 0).
    """
    image = np.asarray(image_rgb)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 RGB image, got shape {image.shape}")
    box_arr = np.asarray(boxes, dtype=np.float64)
    if box_arr.size == 0:
        return image[:, :, ::-1], np.zeros((0, 4))
    box_arr = np.atleast_2d(box_arr)
    if box_arr.ndim != 2 or box_arr.shape[1] < 4:
        raise ValueError(f"boxes must be [N, >=4] (x1, y1, x2, y2), got shape {box_arr.shape}")
    return cv2.cvtColor(image.astype(np.uint8, copy=False), cv2.COLOR_RGB2BGR), box_arr


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (Umeyama) mapping ``src`` points onto ``dst``; returns a 2x3 matrix."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    cov = d0.T @ s0 / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1
    rot = u @ np.diag(d) @ vt
    var_s = (s0**2).sum() / len(src)
    scale = (sig * d).sum() / var_s if var_s > 0 else 1.0
    t = mu_d - scale * rot @ mu_s
    return np.hstack([scale * rot, t[:, None]]).astype(np.float32)
