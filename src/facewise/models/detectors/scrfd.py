"""InsightFace SCRFD detectors through onnxruntime (weights: non-commercial research only)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np

from facewise.models._detect_util import nms
from facewise.models.catalogue import ModelCard
from facewise.models.runtime import onnx_session
from facewise.types import Box, Detection

log = logging.getLogger(__name__)


class ScrfdDetector:
    """Letterboxes to ``input_size``, decodes the three stride heads, applies NMS."""

    options: ClassVar[frozenset[str]] = frozenset({"score_threshold"})

    @classmethod
    def from_card(cls, card: ModelCard, paths: list[Path], threads: int = 0, **options: Any) -> ScrfdDetector:
        return cls(paths[0], model_id=card.id, threads=threads, **options)

    def __init__(self, model: Path, model_id: str, input_size: int = 640, score_threshold: float = 0.5,
                 nms_threshold: float = 0.4, threads: int = 0) -> None:
        self.model_id = model_id
        self.input_size = input_size
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self._sess = onnx_session(model, threads)
        self._input = self._sess.get_inputs()[0].name
        self._strides = (8, 16, 32)
        self._anchors = 2
        self._centers: dict[tuple[int, int, int], np.ndarray] = {}
        self._lock = threading.Lock()

    def _anchor_centers(self, h: int, w: int, stride: int) -> np.ndarray:
        key = (h, w, stride)
        if key not in self._centers:
            ys, xs = np.mgrid[:h, :w]
            c = (np.stack([xs, ys], axis=-1).reshape(-1, 2) * stride).astype(np.float32)
            self._centers[key] = np.repeat(c, self._anchors, axis=0)
        return self._centers[key]

    def detect(self, image: np.ndarray) -> list[Detection]:
        h0, w0 = image.shape[:2]
        size = self.input_size
        scale = size / max(h0, w0)
        nh, nw = max(1, round(h0 * scale)), max(1, round(w0 * scale))
        canvas = np.zeros((size, size, 3), np.uint8)
        canvas[:nh, :nw] = cv2.resize(image, (nw, nh))
        blob = ((canvas.astype(np.float32) - 127.5) / 128.0).transpose(2, 0, 1)[None]
        with self._lock:
            outs = self._sess.run(None, {self._input: blob})
        n = len(self._strides)
        all_boxes, all_scores, all_kps = [], [], []
        for i, stride in enumerate(self._strides):
            scores = outs[i].reshape(-1)
            dist = outs[i + n].reshape(-1, 4) * stride
            kps = outs[i + 2 * n].reshape(-1, 10) * stride
            centers = self._anchor_centers(size // stride, size // stride, stride)
            keep = scores >= self.score_threshold
            c = centers[keep]
            boxes = np.hstack([c - dist[keep, :2], c + dist[keep, 2:]])
            all_boxes.append(boxes)
            all_scores.append(scores[keep])
            all_kps.append(np.tile(c, 5) + kps[keep])
        boxes = np.vstack(all_boxes) / scale
        scores = np.concatenate(all_scores)
        kps = np.vstack(all_kps) / scale
        out = []
        for i in nms(boxes, scores, self.nms_threshold):
            x1, y1, x2, y2 = boxes[i]
            box = Box(max(0.0, float(x1)), max(0.0, float(y1)), min(float(w0), float(x2)), min(float(h0), float(y2)))
            if box.width < 2 or box.height < 2:
                continue
            out.append(Detection(box=box, landmarks=kps[i].reshape(5, 2).astype(np.float32), score=float(scores[i])))
        out.sort(key=lambda d: -d.box.area)
        return out
