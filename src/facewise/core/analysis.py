"""What a face shows beyond identity: liveness, head pose, expression — each optional, each measured.

Models come from the catalogue: ``minifasnet-v2-v1se`` (anti-spoofing; fused with cheap cues by the
project-trained ``weights/liveness-fused.weights`` when present), ``fsanet`` (head pose; five-landmark
geometry when absent) and ``expression-fer7`` (trained by this project, shipped in the package).
Results land in ``Face.attributes`` and, for liveness, in the quality reasons.

The liveness threshold is, in order: a deployment's own threshold file (``facewise calibrate-liveness``;
:meth:`Analyzer.set_live_threshold` or the ``FACEWISE_LIVENESS_THRESHOLD`` environment variable), the
fused model's fitted boundary, the anti-spoofing card's 0.5.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facewise import settings
from facewise.errors import FacewiseError
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


THRESHOLD_ENV = "FACEWISE_LIVENESS_THRESHOLD"


@dataclass(frozen=True)
class LiveThreshold:
    """A deployment's own liveness threshold, fitted on its bona fide samples (``calibrate-liveness``)."""

    model: str  # "fused" or "minifasnet": the scorer it was fitted for
    threshold: float
    target_bpcer: float
    n_bona_fide: int
    source: str = ""

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"kind": "facewise-liveness-threshold", **asdict(self)}, indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> LiveThreshold:
        try:
            doc = json.loads(Path(path).read_text())
            if doc.pop("kind", None) != "facewise-liveness-threshold":
                raise ValueError("not a liveness threshold file (no kind: facewise-liveness-threshold)")
            t = cls(**doc)
        except (OSError, ValueError, TypeError) as exc:
            raise FacewiseError(f"liveness threshold file {path}: {exc}") from exc
        if not 0.0 <= t.threshold <= 1.0:
            raise FacewiseError(f"liveness threshold file {path}: threshold {t.threshold} is not in [0, 1]")
        return t


class Analyzer:
    """Loads each analysis model on first use; answers what is available."""

    def __init__(self, threads: int = 1, live_map: bool = True) -> None:
        self.threads = threads
        self.live_map = live_map
        self._lock = threading.Lock()
        self._live_threshold: LiveThreshold | None = None
        env = settings.liveness_threshold_file()  # THRESHOLD_ENV
        if env is not None:
            self.set_live_threshold(LiveThreshold.load(env))

    def set_live_threshold(self, t: LiveThreshold | None) -> None:
        """Decide liveness at a deployment's own fitted threshold (``None``: the model's default)."""
        if t is not None and self.live_model is not None and t.model != self.live_model_name:
            raise FacewiseError(f"the liveness threshold was fitted for the {t.model} scorer, "
                                f"but this installation scores with {self.live_model_name}")
        self._live_threshold = t

    @cached_property
    def live_model(self) -> Any | None:
        """The fused scorer when its weights ship, MiniFASNet alone otherwise, None without MiniFASNet."""
        fas = self.antispoof
        if fas is None:
            return None
        from facewise.models.attributes.livefusion import DEFAULT_WEIGHTS, LiveFusion

        if DEFAULT_WEIGHTS.is_file():
            return LiveFusion(fas, DEFAULT_WEIGHTS)
        return fas

    @property
    def live_model_name(self) -> str:
        from facewise.models.attributes.livefusion import LiveFusion

        return "fused" if isinstance(self.live_model, LiveFusion) else "minifasnet"

    def live_threshold(self) -> tuple[float, str]:
        """The threshold in force and where it came from."""
        if self._live_threshold is not None:
            return self._live_threshold.threshold, f"fitted ({self._live_threshold.source or 'threshold file'})"
        model = self.live_model
        if model is not None and hasattr(model, "threshold"):
            return float(model.threshold), "fused model boundary"
        return live_threshold(), "card"

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
        model = self.live_model
        if model is None or not faces:
            return None
        boxes = np.array([[f.box.x1, f.box.y1, f.box.x2, f.box.y2] for f in faces])
        return np.asarray(model.live_scores(pixels, boxes))

    def _live_results(self, pixels: np.ndarray, faces: list[Face], with_map: bool) -> list[dict[str, Any]] | None:
        model = self.live_model
        if model is None:
            return None
        thr, source = self.live_threshold()
        base = {"threshold": round(thr, 4), "threshold_source": source, "model": self.live_model_name}
        if not hasattr(model, "explain"):
            scores = self.liveness(pixels, faces)
            return [{"score": round(float(s), 4), **base} for s in (scores if scores is not None else [])]
        out = []
        for f in faces:
            try:
                ex = model.explain(pixels, [f.box.x1, f.box.y1, f.box.x2, f.box.y2], with_map=with_map)
            except FacewiseError as exc:  # a face too small for a map still gets its score and cues
                log.info("no occlusion map: %s", exc)
                ex = model.explain(pixels, [f.box.x1, f.box.y1, f.box.x2, f.box.y2], with_map=False)
            out.append({**ex, **base})
        return out

    def analyze(self, pixels: np.ndarray, faces: list[Face],
                what: tuple[str, ...] = ("live", "pose", "expression")) -> list[Face]:
        """Fill ``face.attributes`` with ``live``, ``pose`` and ``expression`` where models allow.

        ``live`` carries the score, decision, threshold (and its source), the cues with their pull on the
        log-odds and which fired, and with ``"live_map"`` in ``what`` the occlusion map over the face.
        """
        if not faces:
            return faces
        boxes = np.array([[f.box.x1, f.box.y1, f.box.x2, f.box.y2] for f in faces])
        if "live" in what:
            results = self._live_results(pixels, faces, self.live_map and "live_map" in what)
            for f, res in zip(faces, results, strict=True) if results is not None else ():
                s, thr = res["score"], res["threshold"]
                f.attributes["live"] = {"score": s, "is_live": bool(s >= thr), **res}
                if s < thr:
                    why = f" ({', '.join(res['fired'])})" if res.get("fired") else ""
                    f.quality.reasons.append(f"not live (P(live) {s:.2f} < {thr:.2f}){why}")
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
