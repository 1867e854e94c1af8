"""YuNet detector through OpenCV's ``cv2.FaceDetectorYN`` (MIT, 230 kB)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np

from facewise.errors import FacewiseError
from facewise.models._detect_util import fit_scale
from facewise.models.catalogue import ModelCard
from facewise.types import Box, Detection

log = logging.getLogger(__name__)

try:  # silence "Targets are not supported by the new graph engine" on every create
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
except AttributeError:  # pragma: no cover
    pass


class YuNetDetector:
    """Boxes, five ArcFace-ordered landmarks and scores.

    The image is brought to at most ``max_side`` px and, when ``min_side`` is set, small images are
    upsampled so their shorter side is ``min_side`` (finds small faces, costs time). When nothing is
    found and ``retry`` is set, it looks again: upsampled to ``retry_min_side`` (when that is larger
    than the first pass), then padded by a quarter of the image on every side (faces cut by the border:
    profiles, tight crops); such detections say so in ``found_by``. Each thread gets its own OpenCV
    detector, so threads detect in parallel.

    ``engine`` (a profile's ``detector_options``) runs the network by ``opencv`` (this class) or ``openvino``
    (:class:`~facewise.models.detectors.yunet_ov.YuNetOpenVino`, which also takes ``precision``,
    ``nms_threshold``, ``cached_shapes`` and ``promote_after``).
    """

    options: ClassVar[frozenset[str]] = frozenset({
        "engine", "score_threshold", "max_side", "min_side", "retry", "retry_min_side",
        "precision", "nms_threshold", "cached_shapes", "promote_after"})

    @classmethod
    def from_card(cls, card: ModelCard, paths: list[Path], threads: int = 0, **options: Any) -> YuNetDetector:
        engine = options.pop("engine", "opencv")
        try:
            if engine == "openvino":
                from facewise.models.detectors.yunet_ov import YuNetOpenVino

                return YuNetOpenVino(paths[0], model_id=card.id, threads=threads, **options)
            if engine != "opencv":
                raise TypeError(f"engine must be opencv or openvino, got {engine!r}")
            return cls(paths[0], model_id=card.id, **options)
        except TypeError as exc:
            raise FacewiseError(f"model {card.id!r}: bad detector_options {options}: {exc}") from None

    def __init__(self, model: Path, model_id: str = "yunet-2023mar", score_threshold: float = 0.6,
                 max_side: int = 1280, min_side: int = 320, retry: bool = False, retry_min_side: int = 320) -> None:
        self._set_passes(model_id, score_threshold, max_side, min_side, retry, retry_min_side)
        self._model = str(model)
        self._make()  # fail early on a bad model file

    def _set_passes(self, model_id: str, score_threshold: float, max_side: int, min_side: int, retry: bool,
                    retry_min_side: int) -> None:
        """The options every backend shares: the passes :meth:`detect` makes and the score kept."""
        self.model_id = model_id
        self.score_threshold = score_threshold
        self.max_side = max_side
        self.min_side = min_side
        self.retry = retry
        self.retry_min_side = retry_min_side
        self._local = threading.local()

    def _make(self) -> cv2.FaceDetectorYN:
        det = getattr(self._local, "det", None)
        if det is None:
            det = self._local.det = cv2.FaceDetectorYN.create(self._model, "", (320, 320),
                                                               self.score_threshold, 0.3, 5000)
        return det

    def _rows(self, work: np.ndarray) -> np.ndarray | None:
        """The network's rows on an RGB image (x, y, w, h, five landmarks, score), or None: OpenCV runs it."""
        bgr = np.ascontiguousarray(work[:, :, ::-1])
        det = self._make()
        det.setInputSize((bgr.shape[1], bgr.shape[0]))
        _, rows = det.detect(bgr)
        return rows

    def _run(self, image: np.ndarray, min_side: int, pad: int = 0, tag: str = "first") -> list[Detection]:
        """One pass: pad, scale into [min_side, max_side], run, map the rows back to ``image``'s pixels."""
        if pad:
            image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        work, back = fit_scale(image, self.max_side, min_side)
        rows = self._rows(work)
        out: list[Detection] = []
        if rows is None:
            return out
        h, w = image.shape[0] - 2 * pad, image.shape[1] - 2 * pad
        for r in rows:
            x, y = float(r[0]) * back - pad, float(r[1]) * back - pad
            bw, bh = float(r[2]) * back, float(r[3]) * back
            box = Box(max(0.0, x), max(0.0, y), min(float(w), x + bw), min(float(h), y + bh))
            if box.width < 2 or box.height < 2:
                continue
            lm = (r[4:14].reshape(5, 2) * back - pad).astype(np.float32)
            out.append(Detection(box=box, landmarks=lm, score=float(r[14]), found_by=tag))
        out.sort(key=lambda d: -d.box.area)
        return out

    def detect(self, image: np.ndarray) -> list[Detection]:
        out = self._run(image, self.min_side)
        if out or not self.retry:
            return out
        if self.retry_min_side > max(self.min_side, 0) and min(image.shape[:2]) < self.retry_min_side:
            out = self._run(image, self.retry_min_side, tag="upscaled")
            if out:
                return out
        return self._run(image, max(self.min_side, self.retry_min_side), pad=max(image.shape[:2]) // 4, tag="padded")
