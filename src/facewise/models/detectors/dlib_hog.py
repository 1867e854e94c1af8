"""dlib's HOG face detector with a shape predictor, its points brought to 5 ArcFace-ordered points.

Ships with the registry packages ``dlib-bin`` and ``face_recognition_models``: always available.
Two predictors: the 5-point one (eye corners and the bottom of the nose; dlib's own data set, for
``default``) and the 68-point one (trained on iBUG 300-W, whose licence excludes commercial use).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, ClassVar

import dlib
import numpy as np

from facewise.models._detect_util import fit_scale, similarity_transform
from facewise.models.catalogue import ModelCard
from facewise.types import Box, Detection

log = logging.getLogger(__name__)


def five_from_68(points: np.ndarray) -> np.ndarray:
    """Eye centres, nose tip and mouth corners from dlib's 68-point layout (ArcFace order)."""
    return np.array(
        [points[36:42].mean(0), points[42:48].mean(0), points[30], points[48], points[54]], dtype=np.float32
    )


# Where the 5-point predictor's points and the ArcFace points sit in one face frame (dlib's 150 px chip),
# the mean over 399 LFW faces run through both predictors (68-point: eye centres, nose tip 30, mouth
# corners 48/54); measured once, see docs/ACCURACY.md ("default's landmarks").
DLIB5_FRAME = np.array([[109.69, 46.93], [89.16, 47.45], [37.07, 46.99], [57.63, 47.47], [73.7, 87.14]], np.float32)
NOSE_TIP_FROM_BOTTOM = np.array([0.04, -11.52], np.float32)
MOUTH_IN_FRAME = np.array([[49.91, 103.64], [97.09, 103.72]], np.float32)


def five_from_5(points: np.ndarray) -> np.ndarray:
    """ArcFace-ordered points from dlib's 5-point layout: eye centres from the corners, the nose tip one
    nose-length above the measured bottom of the nose, and mouth corners placed by the face frame
    (the predictor has no mouth points; the eyes and nose decide the alignment)."""
    pts = np.asarray(points, np.float32)
    m = similarity_transform(DLIB5_FRAME, pts)  # frame -> image
    lin = m[:, :2]
    mouth = MOUTH_IN_FRAME @ lin.T + m[:, 2]
    nose = pts[4] + lin @ NOSE_TIP_FROM_BOTTOM
    return np.array([pts[2:4].mean(0), pts[0:2].mean(0), nose, mouth[0], mouth[1]], dtype=np.float32)


class DlibHogDetector:
    """Frontal faces only. Images are brought to at most ``max_side`` px; small ones are upsampled.
    The shape predictor file decides the landmark layout (5 or 68 points)."""

    options: ClassVar[frozenset[str]] = frozenset()  # HOG has no score to tune

    @classmethod
    def from_card(cls, card: ModelCard, paths: list[Path], threads: int = 0, **options: Any) -> DlibHogDetector:
        return cls(paths[0], model_id=card.id)

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
            five = five_from_68(pts) if len(pts) == 68 else five_from_5(pts)
            out.append(Detection(box=box, landmarks=five, score=conf))
        out.sort(key=lambda d: -d.box.area)
        return out
