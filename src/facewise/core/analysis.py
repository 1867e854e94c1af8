"""What a face shows beyond identity: liveness, head pose, expression — each optional, each measured.

Models come from the catalogue: ``minifasnet-v2-v1se`` (anti-spoofing), ``fsanet`` (head pose;
five-landmark geometry when absent) and ``expression-fer7`` (trained by this project, shipped in
the package). Results land in ``Face.attributes`` and, for liveness, in the quality reasons.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import cv2
import numpy as np

from facewise.models.attributes.headpose import pose_from_landmarks
from facewise.models.catalogue import card, is_available, resolve
from facewise.types import Face

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Gate:
    """Enrolment / verification gate: refuse faces below a quality or not live."""

    min_quality: float | None = None
    require_live: bool = False


def live_threshold() -> float:
    """P(live) at or above which a face counts as live (from the anti-spoofing card)."""
    return float(card("minifasnet-v2-v1se").thresholds.get("live", 0.5))


class Analyzer:
    """Loads each analysis model on first use; answers what is available."""

    def __init__(self, threads: int = 1) -> None:
        self.threads = threads
        self._lock = threading.Lock()

    @cached_property
    def antispoof(self) -> Any | None:
        if not is_available("minifasnet-v2-v1se"):
            return None
        from facewise.models.attributes.antispoof import MiniFASNet

        v2, v1se = resolve("minifasnet-v2-v1se")
        return MiniFASNet(v2, v1se, threads=self.threads)

    @cached_property
    def headpose(self) -> Any | None:
        if not is_available("fsanet"):
            return None
        from facewise.models.attributes.headpose import FSANet

        one_by_one, var = resolve("fsanet")
        return FSANet(one_by_one, var, threads=self.threads)

    @cached_property
    def expression(self) -> Any | None:
        try:
            from facewise.models.attributes.expression import ExpressionModel

            return ExpressionModel.from_default()
        except (ImportError, FileNotFoundError, OSError) as exc:
            log.info("no expression model: %s", exc)
            return None

    def liveness(self, pixels: np.ndarray, faces: list[Face]) -> np.ndarray | None:
        model = self.antispoof
        if model is None or not faces:
            return None
        boxes = np.array([[f.box.x1, f.box.y1, f.box.x2, f.box.y2] for f in faces])
        return np.asarray(model.live_scores(pixels, boxes))

    def analyze(self, pixels: np.ndarray, faces: list[Face], what: tuple[str, ...] = ("live", "pose", "expression"),
                ) -> list[Face]:
        """Fill ``face.attributes`` with ``live``, ``pose`` and ``expression`` where models allow."""
        if not faces:
            return faces
        boxes = np.array([[f.box.x1, f.box.y1, f.box.x2, f.box.y2] for f in faces])
        if "live" in what:
            scores = self.liveness(pixels, faces)
            if scores is not None:
                thr = live_threshold()
                for f, s in zip(faces, scores, strict=True):
                    f.attributes["live"] = {"score": round(float(s), 4), "is_live": bool(s >= thr),
                                            "threshold": thr}
                    if s < thr:
                        f.quality.reasons.append(f"not live (P(live) {s:.2f} < {thr:.2f})")
        if "pose" in what:
            if self.headpose is not None:
                poses = self.headpose.estimate(pixels, boxes)
                source = "fsanet"
            else:
                poses = np.array([pose_from_landmarks(f.landmarks) for f in faces])
                source = "landmarks"
            for f, (y, p, r) in zip(faces, poses, strict=True):
                f.attributes["pose"] = {"yaw": round(float(y), 1), "pitch": round(float(p), 1),
                                        "roll": round(float(r), 1), "source": source}
        if "expression" in what and self.expression is not None:
            grey = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
            crops = [_square_crop(grey, f) for f in faces]
            probs = self.expression.predict(crops)
            classes = list(self.expression.CLASSES)
            for f, pr in zip(faces, probs, strict=True):
                k = int(np.argmax(pr))
                probs = {c: round(float(v), 4) for c, v in zip(classes, pr, strict=True)}
                f.attributes["expression"] = {"label": classes[k], "score": round(float(pr[k]), 4), "probs": probs}
        return faces


def _square_crop(grey: np.ndarray, face: Face) -> np.ndarray:
    """A square crop around the face box (FER2013-like framing: the box, slightly enlarged)."""
    cx, cy = face.box.center
    side = max(face.box.width, face.box.height) * 1.1
    h, w = grey.shape[:2]
    x1, y1 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
    x2, y2 = int(min(w, cx + side / 2)), int(min(h, cy + side / 2))
    crop = grey[y1:y2, x1:x2]
    return crop if crop.size else grey
