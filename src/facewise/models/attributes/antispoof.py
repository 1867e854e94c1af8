"""Silent-face presentation-attack detection with minivision-ai's MiniFASNet models.

Two ONNX models converted from minivision-ai/Silent-Face-Anti-Spoofing (Apache-2.0) are run on
differently scaled crops around the face and their softmax outputs are averaged:

* ``2.7_80x80_MiniFASNetV2.onnx``   -- crop = face box scaled by 2.7 around its centre
* ``4_0_0_80x80_MiniFASNetV1SE.onnx`` -- crop = face box scaled by 4.0 around its centre

Each crop is resized to 80x80 and fed as raw BGR 0..255 float32 NCHW.  The models output three
logits; after the softmax, class 1 is "real" (live), classes 0 and 2 are attacks.

The crop follows the original ``CropImage._get_new_box`` exactly: the scale is first reduced so the
scaled box fits in the image, then the scaled box is shifted (not clipped) back inside the image.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from os import PathLike
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from facewise.models._detect_util import bgr_and_boxes
from facewise.models.runtime import onnx_session

logger = logging.getLogger(__name__)

__all__ = ["MiniFASNet", "silentface_crop", "silentface_crop_box"]

INPUT_SIZE = 80
LIVE_CLASS = 1


def silentface_crop_box(
    src_w: int, src_h: int, box: Sequence[float], scale: float
) -> tuple[int, int, int, int]:
    """Return the inclusive crop rectangle ``(left, top, right, bottom)`` used by Silent-Face.

    ``box`` is ``(x1, y1, x2, y2)`` in pixels; the original works on ``(x, y, w, h)``, which is
    ``(x1, y1, x2 - x1, y2 - y1)`` here.  As in the original: the scale is capped at
    ``(src - 1) / box_size`` in both directions (so a face too large for the image gets a smaller
    crop), the box is scaled around its centre, then shifted back inside ``[0, src - 1]`` and the
    coordinates truncated to int.  The crop is ``img[top:bottom + 1, left:right + 1]``.
    """
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    box_w = max(x2 - x1, 1.0)
    box_h = max(y2 - y1, 1.0)
    scale = min((src_h - 1) / box_h, min((src_w - 1) / box_w, float(scale)))

    new_w = box_w * scale
    new_h = box_h * scale
    cx = x1 + box_w / 2
    cy = y1 + box_h / 2

    left = cx - new_w / 2
    top = cy - new_h / 2
    right = cx + new_w / 2
    bottom = cy + new_h / 2

    if left < 0:
        right -= left
        left = 0
    if top < 0:
        bottom -= top
        top = 0
    if right > src_w - 1:
        left -= right - src_w + 1
        right = src_w - 1
    if bottom > src_h - 1:
        top -= bottom - src_h + 1
        bottom = src_h - 1
    # The original truncates with int(); guard against float round-off below zero.
    return max(int(left), 0), max(int(top), 0), int(right), int(bottom)


def silentface_crop(
    image: np.ndarray, box: Sequence[float], scale: float, out_size: int = INPUT_SIZE
) -> np.ndarray:
    """Crop ``image`` (any channel order) around ``box`` the Silent-Face way and resize to a square."""
    src_h, src_w = image.shape[:2]
    left, top, right, bottom = silentface_crop_box(src_w, src_h, box, scale)
    patch = image[top : bottom + 1, left : right + 1]
    return cv2.resize(patch, (out_size, out_size))


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=1, keepdims=True))


class MiniFASNet:
    """Ensemble of MiniFASNetV2 (scale 2.7) and MiniFASNetV1SE (scale 4.0) anti-spoofing models.

    Args:
        v2_path: path of ``2.7_80x80_MiniFASNetV2.onnx``.
        v1se_path: path of ``4_0_0_80x80_MiniFASNetV1SE.onnx``.
        threads: onnxruntime intra-op threads per session.
        v2_scale, v1se_scale: crop scales the models were trained with (do not change normally).
    """

    def __init__(
        self,
        v2_path: str | PathLike[str],
        v1se_path: str | PathLike[str],
        threads: int = 1,
        v2_scale: float = 2.7,
        v1se_scale: float = 4.0,
    ) -> None:
        self._models: list[tuple[ort.InferenceSession, str, float]] = []
        for path, scale in ((Path(v2_path), v2_scale), (Path(v1se_path), v1se_scale)):
            if not path.is_file():
                raise FileNotFoundError(f"anti-spoofing model not found: {path}")
            sess = onnx_session(path, threads)
            self._models.append((sess, sess.get_inputs()[0].name, float(scale)))
            logger.debug("loaded MiniFASNet model %s (scale %.1f)", path.name, scale)

    @property
    def scales(self) -> tuple[float, ...]:
        return tuple(scale for _, _, scale in self._models)

    def class_probs(self, image_rgb: np.ndarray, boxes: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
        """Averaged softmax over the two models, shape ``[N, 3]`` (class 1 = live)."""
        bgr, box_arr = bgr_and_boxes(image_rgb, boxes)
        if len(box_arr) == 0:
            return np.zeros((0, 3), dtype=np.float32)
        n = box_arr.shape[0]
        total = np.zeros((n, 3), dtype=np.float64)
        for sess, input_name, scale in self._models:
            batch = np.stack([silentface_crop(bgr, b, scale) for b in box_arr])
            blob = np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32)
            logits = sess.run(None, {input_name: blob})[0]
            total += _softmax(logits.astype(np.float64))
        return (total / len(self._models)).astype(np.float32)

    def live_per_model(self, image_rgb: np.ndarray, boxes: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
        """P(live) of each model separately, shape ``[N, 2]`` (columns: V2 at 2.7, V1SE at 4.0)."""
        bgr, box_arr = bgr_and_boxes(image_rgb, boxes)
        out = np.zeros((len(box_arr), len(self._models)), dtype=np.float32)
        if len(box_arr) == 0:
            return out
        for j, (sess, input_name, scale) in enumerate(self._models):
            batch = np.stack([silentface_crop(bgr, b, scale) for b in box_arr])
            blob = np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32)
            out[:, j] = _softmax(sess.run(None, {input_name: blob})[0].astype(np.float64))[:, LIVE_CLASS]
        return out

    def live_per_model_images(self, images_rgb: Sequence[np.ndarray], box: Sequence[float]) -> np.ndarray:
        """P(live) of each model for one box in each of several same-size images, ``[N, 2]``, one batch per model."""
        bgrs = [bgr_and_boxes(im, [box])[0] for im in images_rgb]
        out = np.zeros((len(bgrs), len(self._models)), dtype=np.float32)
        if not bgrs:
            return out
        for j, (sess, input_name, scale) in enumerate(self._models):
            batch = np.stack([silentface_crop(bgr, box, scale) for bgr in bgrs])
            blob = np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32)
            out[:, j] = _softmax(sess.run(None, {input_name: blob})[0].astype(np.float64))[:, LIVE_CLASS]
        return out

    def live_scores(self, image_rgb: np.ndarray, boxes: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
        """P(live) for each face box ``(x1, y1, x2, y2)``; shape ``[N]``, float32 in ``[0, 1]``."""
        return self.class_probs(image_rgb, boxes)[:, LIVE_CLASS]
