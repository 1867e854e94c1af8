"""dlib's HOG face detector with its 68-point shape predictor reduced to 5 ArcFace-ordered points.

Ships with the registry packages ``dlib-bin`` and ``face_recognition_models``: always available.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import dlib
import numpy as np

from facewise.models._detect_util import fit_scale
from facewise.types import Box, Detection

log = logging.getLogger(__name__)


def five_from_68(points: np.ndarray) -> np.ndarray:
    """Eye centres, nose tip and mouth corners from dlib's 68-point layout (ArcFace order)."""
    return np.array(
        [points[36:42].mean(0), points[42:48].mean(0), points[30], points[48], points[54]], dtype=np.float32
    )


class DlibHogDetector:
    """Frontal faces only. Images are brought to at most ``max_side`` px; small ones are upsampled."""

    def __init__(self, shape_predictor: Path, model_id: str = "dlib-hog", max_side: int = 1280,
                 upsample_below: int = 640) -> None:
        self.model_id = model_id
        self.max_side = max_side
        self.upsample_below = upsample_below
        self._local = threading.local()  # one HOG detector per thread (cheap): detections run in parallel
        self._sp = dlib.shape_predictor(str(shape_predictor))
        self._lock = threading.Lock()  # the shape predictor is shared (large); its calls are short

    @property
    def _det(self) -> dlib.fhog_object_detector:
        det = getattr(self._local, "det", None)
        if det is None:
            det = self._local.det = dlib.get_frontal_face_detector()
        return det

    def detect(self, image: np.ndarray) -> list[Detection]:
        work, back = fit_scale(image, self.max_side)
        det = self._det
        rects, scores, _ = det.run(work, 0, -0.2)
        if not rects and max(work.shape[:2]) < self.upsample_below:
            # small image: look again at twice the resolution for faces under ~80 px
            rects, scores, _ = det.run(work, 1, -0.2)
        with self._lock:
            shapes = [self._sp(work, r) for r in rects]
        h, w = image.shape[:2]
        out = []
        for r, s, shape in zip(rects, scores, shapes, strict=True):
            pts = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32) * back
            box = Box(max(0.0, r.left() * back), max(0.0, r.top() * back),
                      min(float(w), (r.right() + 1) * back), min(float(h), (r.bottom() + 1) * back))
            if box.width < 2 or box.height < 2:
                continue
            # map the SVM margin (about -0.2..3) to a 0..1 confidence
            conf = float(1.0 / (1.0 + np.exp(-2.0 * (s + 0.5))))
            out.append(Detection(box=box, landmarks=five_from_68(pts), score=conf))
        out.sort(key=lambda d: -d.box.area)
        return out
