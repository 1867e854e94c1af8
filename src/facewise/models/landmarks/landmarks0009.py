"""Landmark refinement with Intel's landmarks-regression-retail-0009 (OpenVINO, Apache-2.0).

The Open Model Zoo pairs it with face-reidentification-retail-0095: the detector's box, enlarged
by ``roi_scale`` around its centre, is resized to 48x48 (BGR 0..255) and the network returns five
points (eyes, nose tip, mouth corners; ArcFace order) normalised to that crop.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np

from facewise.models.catalogue import ModelCard
from facewise.models.runtime import openvino_compiled
from facewise.types import Detection


class Landmarks0009:
    options: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def from_card(cls, card: ModelCard, paths: list[Path], threads: int = 0, **options: Any) -> Landmarks0009:
        """The IR's ``.xml`` among the card's files; the box enlargement from the card's ``input.roi_scale``."""
        xml = next(p for p in paths if p.suffix == ".xml")
        return cls(xml, card.id, roi_scale=float(card.input.get("roi_scale", 1.15)), threads=threads)

    def __init__(self, xml: Path, model_id: str = "landmarks-0009", roi_scale: float = 1.15, threads: int = 0) -> None:
        self.model_id = model_id
        self.roi_scale = roi_scale
        self._model = openvino_compiled(xml, threads)
        self._out = self._model.output(0)
        self._lock = threading.Lock()

    def refine(self, image: np.ndarray, dets: list[Detection]) -> list[Detection]:
        """The same detections with landmarks re-estimated on the (enlarged) box crop."""
        if not dets:
            return dets
        h, w = image.shape[:2]
        crops, origins = [], []
        for d in dets:
            cx, cy = d.box.center
            bw, bh = d.box.width * self.roi_scale, d.box.height * self.roi_scale
            x1, y1 = cx - bw / 2, cy - bh / 2
            m = np.array([[48 / bw, 0, -x1 * 48 / bw], [0, 48 / bh, -y1 * 48 / bh]], np.float32)
            crops.append(cv2.warpAffine(image, m, (48, 48), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
            origins.append((x1, y1, bw, bh))
        blob = np.stack(crops)[..., ::-1].transpose(0, 3, 1, 2).astype(np.float32)
        with self._lock:
            out = np.asarray(self._model(np.ascontiguousarray(blob))[self._out]).reshape(len(dets), 5, 2)
        refined = []
        for d, pts, (x1, y1, bw, bh) in zip(dets, out, origins, strict=True):
            lm = np.stack([x1 + pts[:, 0] * bw, y1 + pts[:, 1] * bh], axis=1).astype(np.float32)
            refined.append(Detection(box=d.box, landmarks=lm, score=d.score, found_by=d.found_by))
        _ = (h, w)
        return refined
