"""YuNet detector through OpenCV's ``cv2.FaceDetectorYN`` (MIT, 230 kB)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import cv2
import numpy as np

from facewise.models._detect_util import fit_scale
from facewise.types import Box, Detection

log = logging.getLogger(__name__)

try:  # silence "Targets are not supported by the new graph engine" on every create
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
except AttributeError:  # pragma: no cover
    pass


class YuNetDetector:
    """Boxes, five ArcFace-ordered landmarks and scores; small images are upsampled to find small faces."""

    def __init__(self, model: Path, model_id: str = "yunet-2023mar", score_threshold: float = 0.6,
                 max_side: int = 1280, min_side: int = 320) -> None:
        self.model_id = model_id
        self.score_threshold = score_threshold
        self.max_side = max_side
        self.min_side = min_side
        self._det = cv2.FaceDetectorYN.create(str(model), "", (320, 320), score_threshold, 0.3, 5000)
        self._lock = threading.Lock()

    def detect(self, image: np.ndarray) -> list[Detection]:
        work, back = fit_scale(image, self.max_side, self.min_side)
        bgr = np.ascontiguousarray(work[:, :, ::-1])
        with self._lock:
            self._det.setInputSize((bgr.shape[1], bgr.shape[0]))
            _, rows = self._det.detect(bgr)
        out: list[Detection] = []
        if rows is None:
            return out
        h, w = image.shape[:2]
        for r in rows:
            x, y, bw, bh = (float(v) * back for v in r[:4])
            box = Box(max(0.0, x), max(0.0, y), min(float(w), x + bw), min(float(h), y + bh))
            if box.width < 2 or box.height < 2:
                continue
            lm = (r[4:14].reshape(5, 2) * back).astype(np.float32)
            out.append(Detection(box=box, landmarks=lm, score=float(r[14])))
        out.sort(key=lambda d: -d.box.area)
        return out
