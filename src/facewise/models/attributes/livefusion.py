"""Fused passive liveness: MiniFASNet's two scales plus cheap cues, weighed by a small logistic model.

The weights are a JSON file the project trains itself (``training/train_liveness.py``; shipped as
``models/weights/liveness-fused.weights``, card ``liveness-fused.json``): feature names,
standardisation (``mean``, ``scale``), logistic-regression ``coef`` and ``intercept``, the data sets
it was fitted on and its decision threshold. P(live) = sigmoid(intercept + coef . (x - mean) / scale).

:meth:`LiveFusion.explain` says *why* (each cue's value and its pull on the log-odds; a cue "fires"
when it alone lowers the odds of live by ``FIRE`` or more) and *where* (occlusion sensitivity: a
``GRID x GRID`` map over the face region, each cell the change of P(live) when that cell is blurred
out; positive = the cell argued for an attack).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facewise.errors import FacewiseError
from facewise.models.attributes.antispoof import MiniFASNet
from facewise.models.attributes.livecues import CUE_NAMES, face_cues

__all__ = ["DEFAULT_WEIGHTS", "FEATURES", "FIRE", "GRID", "FusionWeights", "LiveFusion", "feature_matrix", "one_sided"]

log = logging.getLogger(__name__)

FEATURES: tuple[str, ...] = ("fas_v2", "fas_v1se", *CUE_NAMES)
DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "liveness-fused.weights"
FIRE = 1.0  # a cue "fires" when its term lowers the log-odds of live by at least this much
GRID = 4
MAP_SCALE = 1.6  # the occlusion map covers the face box scaled by this around its centre


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-4, 1 - 1e-4)
    return np.asarray(np.log(p / (1 - p)))


def feature_matrix(fas: MiniFASNet, image_rgb: np.ndarray, boxes: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """``[N, len(FEATURES)]``: logit P(live) of each MiniFASNet, then the cues of :mod:`livecues`."""
    box_arr = np.atleast_2d(np.asarray(boxes, dtype=np.float64))
    if box_arr.size == 0:
        return np.zeros((0, len(FEATURES)))
    probs = fas.live_per_model(image_rgb, box_arr)
    cues = [face_cues(image_rgb, b) for b in box_arr]
    return np.column_stack([_logit(probs[:, 0]), _logit(probs[:, 1]),
                            np.array([[c[n] for n in CUE_NAMES] for c in cues])])


def one_sided(z: np.ndarray, hinge: Sequence[float | None], signs: Sequence[int]) -> np.ndarray:
    """Cues that only count as evidence of an attack: a cue on the live side of its hinge (the bona fide
    median) contributes nothing; ``None`` hinges (MiniFASNet's logits) stay two-sided."""
    out = np.array(z, dtype=np.float64, copy=True)
    for j, (h, sgn) in enumerate(zip(hinge, signs, strict=True)):
        if h is not None:
            out[:, j] = sgn * np.minimum(sgn * (out[:, j] - h), 0.0)
    return out


@dataclass(frozen=True)
class FusionWeights:
    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    threshold: float
    meta: dict[str, Any]

    @classmethod
    def load(cls, path: str | Path = DEFAULT_WEIGHTS) -> FusionWeights:
        try:
            doc = json.loads(Path(path).read_text())
            w = cls(tuple(doc["features"]), np.asarray(doc["mean"], float), np.asarray(doc["scale"], float),
                    np.asarray(doc["coef"], float), float(doc["intercept"]), float(doc["threshold"]),
                    {k: v for k, v in doc.items() if k not in ("features", "mean", "scale", "coef", "intercept")})
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise FacewiseError(f"liveness fusion weights {path}: {exc}") from exc
        unknown = set(w.features) - set(FEATURES)
        if unknown or not (len(w.features) == len(w.mean) == len(w.scale) == len(w.coef)):
            raise FacewiseError(f"liveness fusion weights {path}: features {sorted(unknown)} unknown or lengths differ")
        return w

    def to_dict(self) -> dict[str, Any]:
        return {"features": list(self.features), "mean": self.mean.round(6).tolist(),
                "scale": self.scale.round(6).tolist(), "coef": self.coef.round(6).tolist(),
                "intercept": round(self.intercept, 6), "threshold": round(self.threshold, 6), **self.meta}

    def terms(self, x: np.ndarray) -> np.ndarray:
        """Each feature's term of the log-odds, ``[N, F]``; ``x`` is the full ``[N, len(FEATURES)]`` matrix."""
        cols = [FEATURES.index(f) for f in self.features]
        z = (np.atleast_2d(x)[:, cols] - self.mean) / self.scale
        hinge = self.meta.get("hinge")
        if hinge:
            z = one_sided(z, hinge, self.meta["signs"])
        return np.asarray(self.coef * z)

    def probability(self, x: np.ndarray) -> np.ndarray:
        z = self.intercept + self.terms(x).sum(axis=1)
        return np.asarray(1.0 / (1.0 + np.exp(-z)))


class LiveFusion:
    """MiniFASNet + cues + logistic fusion; ``live_scores`` has MiniFASNet's signature."""

    def __init__(self, fas: MiniFASNet, weights: FusionWeights | str | Path = DEFAULT_WEIGHTS) -> None:
        self.fas = fas
        self.weights = weights if isinstance(weights, FusionWeights) else FusionWeights.load(weights)

    @property
    def threshold(self) -> float:
        return self.weights.threshold

    def features(self, image_rgb: np.ndarray, boxes: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
        return feature_matrix(self.fas, image_rgb, boxes)

    def live_scores(self, image_rgb: np.ndarray, boxes: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
        x = self.features(image_rgb, boxes)
        return self.weights.probability(x).astype(np.float32) if len(x) else np.zeros(0, np.float32)

    def explain(self, image_rgb: np.ndarray, box: Sequence[float], with_map: bool = True) -> dict[str, Any]:
        """Score, cues (value, pull on the log-odds, fired) and the occlusion map of one face."""
        x = self.features(image_rgb, [box])
        p = float(self.weights.probability(x)[0])
        terms = self.weights.terms(x)[0]
        cues = {f: {"value": round(float(x[0, FEATURES.index(f)]), 4), "pull": round(float(t), 3),
                    "fired": bool(t <= -FIRE)} for f, t in zip(self.weights.features, terms, strict=True)}
        res: dict[str, Any] = {"score": round(p, 4), "cues": cues,
                               "fired": [f for f, c in cues.items() if c["fired"]]}
        if with_map:
            res["map"] = self.occlusion_map(image_rgb, box, p)
        return res

    def occlusion_map(self, image_rgb: np.ndarray, box: Sequence[float], base: float | None = None) -> dict[str, Any]:
        """Change of P(live) when each of ``GRID x GRID`` cells over the face region is blurred out."""
        region = _map_region(image_rgb.shape, box)
        if base is None:
            base = float(self.live_scores(image_rgb, [box])[0])
        x1, y1, x2, y2 = region
        blurred = cv2.GaussianBlur(image_rgb[y1:y2, x1:x2], (0, 0), max(2.0, (x2 - x1) / GRID / 3))
        xs = np.linspace(x1, x2, GRID + 1).round().astype(int)
        ys = np.linspace(y1, y2, GRID + 1).round().astype(int)
        images = []
        for i in range(GRID):
            for j in range(GRID):
                img = image_rgb.copy()
                img[ys[i] : ys[i + 1], xs[j] : xs[j + 1]] = blurred[ys[i] - y1 : ys[i + 1] - y1,
                                                                    xs[j] - x1 : xs[j + 1] - x1]
                images.append(img)
        probs = self.fas.live_per_model_images(images, box)  # one batch per model
        cues = [face_cues(img, box) for img in images]
        x = np.column_stack([_logit(probs[:, 0]), _logit(probs[:, 1]),
                             np.array([[c[n] for n in CUE_NAMES] for c in cues])])
        delta = (self.weights.probability(x) - base).reshape(GRID, GRID)
        return {"box": [int(v) for v in region], "grid": GRID, "delta": delta.round(4).tolist()}


def _map_region(shape: tuple[int, ...], box: Sequence[float]) -> tuple[int, int, int, int]:
    h, w = shape[:2]
    bx1, by1, bx2, by2 = (float(v) for v in box[:4])
    cx, cy = (bx1 + bx2) / 2, (by1 + by2) / 2
    half = max(bx2 - bx1, by2 - by1) * MAP_SCALE / 2
    x1, y1 = max(0, int(cx - half)), max(0, int(cy - half))
    x2, y2 = min(w, int(cx + half)), min(h, int(cy + half))
    if x2 - x1 < GRID or y2 - y1 < GRID:
        raise FacewiseError(f"face box {list(box)[:4]} is too small for an occlusion map")
    return x1, y1, x2, y2
