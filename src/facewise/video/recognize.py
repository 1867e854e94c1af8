"""Per-track identity: quality-weighted template fusion, a hysteresis on names, the best frame, expressions.

A track's template is the L2-normalised sum of its face vectors weighted by ``Face.quality.score``, so sharp,
frontal, well-lit frames dominate and one bad frame cannot flip the answer. The template is searched in the
gallery after every new vector and decided with the collection's threshold (:class:`Decision`):

* a name is **assigned** once the same person is the best match at or above the threshold for
  ``confirm_updates`` consecutive updates;
* it is **kept** while the template stays ambiguous or falls below the threshold, and **replaced** only when
  another person clearly beats the current one (``switch_far_ratio`` in estimated FAR; uncalibrated: ``switch_margin``)
  for ``confirm_updates`` consecutive updates.

Vectors cost time, so a track asks for one (:meth:`TrackIdentity.needs_embedding`) only while warming up, every
``embed_every`` processed frames after that, or when the face is clearly better than any seen so far.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from facewise.decision.matching import Decision
from facewise.errors import FacewiseError
from facewise.gallery.store import SearchHit
from facewise.types import Box, Face


@dataclass(frozen=True)
class IdentityOptions:
    confirm_updates: int = 3  # consecutive agreeing updates before a name is shown or changed
    switch_far_ratio: float = 4.0  # a challenger's estimated FAR must be this many times smaller than the current's
    switch_margin: float = 0.05  # ... or, with an uncalibrated decision, its score higher by this much
    warmup: int = 3  # embed every processed frame until the track has this many vectors
    embed_every: int = 10  # then one vector every N processed frames ...
    quality_gain: float = 0.15  # ... or whenever quality beats the track's best by this much
    min_weight: float = 0.02  # floor of a vector's fusion weight (quality scores can reach 0)
    top_k: int = 3  # gallery candidates fetched per update (to score the current person too)

    def __post_init__(self) -> None:
        if self.confirm_updates < 1 or self.warmup < 0 or self.embed_every < 1 or self.top_k < 1:
            raise FacewiseError("identity options: confirm_updates, embed_every, top_k >= 1 and warmup >= 0")


def frontal_score(face: Face) -> float:
    """How good a face is as a thumbnail: quality (sharpness, light, size...) times cos(yaw)."""
    yaw = min(abs(face.yaw), 90.0)
    return float(face.quality.score * math.cos(math.radians(yaw)))


def crop_with_margin(pixels: np.ndarray, box: Box, margin: float = 0.5) -> np.ndarray:
    """The box grown by ``margin`` of its size on every side, clipped to the image (a copy)."""
    h, w = pixels.shape[:2]
    mx, my = box.width * margin, box.height * margin
    x1, y1 = max(0, int(box.x1 - mx)), max(0, int(box.y1 - my))
    x2, y2 = min(w, int(math.ceil(box.x2 + mx))), min(h, int(math.ceil(box.y2 + my)))
    return pixels[y1:max(y2, y1 + 1), x1:max(x2, x1 + 1)].copy()


@dataclass
class BestFrame:
    score: float
    t_ms: float
    frame_index: int
    face: Face
    crop: np.ndarray  # RGB, the face with a margin


@dataclass
class TrackIdentity:
    """Fusion and decision state of one track."""

    options: IdentityOptions = field(default_factory=IdentityOptions)
    person: str | None = None
    person_id: int | None = None
    score: float = 0.0  # current person's score (or the best candidate's while unknown)
    far: float | None = None
    candidate: str | None = None  # best gallery match at the last update, even below the threshold
    n_vectors: int = 0
    updates: int = 0
    best: BestFrame | None = None
    best_quality: float = 0.0
    frames_since_vector: int = 0
    _sum: np.ndarray | None = None
    _streak_id: int | None = None
    _streak: int = 0

    @property
    def template(self) -> np.ndarray | None:
        if self._sum is None:
            return None
        norm = float(np.linalg.norm(self._sum))
        return (self._sum / norm).astype(np.float32) if norm > 0 else None

    def needs_embedding(self, face: Face) -> bool:
        o = self.options
        return (self.n_vectors < o.warmup or self.frames_since_vector + 1 >= o.embed_every
                or face.quality.score >= self.best_quality + o.quality_gain)

    def observe(self, face: Face, pixels: np.ndarray, t_ms: float, frame_index: int) -> None:
        """Every matched frame: fold in its vector (if computed) and keep the best thumbnail."""
        self.frames_since_vector += 1
        if face.embedding is not None:
            w = max(face.quality.score, self.options.min_weight)
            vec = np.asarray(face.embedding, np.float64) * w
            self._sum = vec if self._sum is None else self._sum + vec
            self.n_vectors += 1
            self.frames_since_vector = 0
            self.best_quality = max(self.best_quality, face.quality.score)
        s = frontal_score(face)
        if self.best is None or s > self.best.score:
            self.best = BestFrame(s, t_ms, frame_index, face, crop_with_margin(pixels, face.box))

    def _beats(self, challenger: float, decision: Decision) -> bool:
        """Whether a challenger's score clearly beats the current person's: in estimated FAR (the profile's own
        scale), or in raw score when the decision is uncalibrated. A current score above every impostor seen
        (its FAR only bounded) is never beaten."""
        o = self.options
        if decision.calibration is None:
            return challenger >= self.score + o.switch_margin
        far_new, far_now = decision.far_of(challenger), decision.far_of(self.score)
        floor = decision.far_floor or 0.0
        if far_new is None or far_now is None or far_now <= floor * 1.0001:
            return False
        return challenger > self.score and far_new * o.switch_far_ratio <= far_now

    def decide(self, hits: Sequence[SearchHit], decision: Decision) -> bool:
        """Update the name from this template's gallery hits; True when the shown name changed."""
        o = self.options
        self.updates += 1
        best = hits[0] if hits else None
        self.candidate = best.name if best else None
        current = next((h for h in hits if h.person_id == self.person_id), None) if self.person_id else None
        if self.person_id is not None:
            self.score = current.score if current else -1.0
        elif best is not None:
            self.score = best.score
        self.far = decision.far_of(self.score) if (best is not None or current is not None) else None
        if best is None or best.score < decision.threshold or best.person_id == self.person_id:
            self._streak_id, self._streak = None, 0
            return False
        if self.person_id is not None and not self._beats(best.score, decision):
            self._streak_id, self._streak = None, 0
            return False
        self._streak = self._streak + 1 if self._streak_id == best.person_id else 1
        self._streak_id = best.person_id
        if self._streak < o.confirm_updates:
            return False
        self.person, self.person_id, self.score = best.name, best.person_id, best.score
        self.far = decision.far_of(best.score)
        self._streak_id, self._streak = None, 0
        return True


# -- expression over time -------------------------------------------------------------------------
class ExpressionPredictor(Protocol):
    """What ``facewise.models.attributes.expression.ExpressionModel`` offers: probabilities [N, len(CLASSES)]."""

    CLASSES: tuple[str, ...]

    def predict(self, faces_grey_or_bgr: Sequence[np.ndarray]) -> np.ndarray: ...


def load_expression_model() -> ExpressionPredictor:
    """The shipped expression model, or a clear error when it (or its weights) is not installed."""
    from facewise.errors import ModelNotFoundError

    try:
        from facewise.models.attributes.expression import ExpressionModel
    except ImportError as exc:  # pragma: no cover - depends on the checkout
        raise ModelNotFoundError(f"expression recognition is not available in this install ({exc})") from None
    try:
        return ExpressionModel.from_default()
    except FileNotFoundError as exc:
        raise ModelNotFoundError(f"the expression model: {exc}") from None


def expression_crop(bgr: np.ndarray, box: Box, scale: float = 1.1) -> np.ndarray:
    """A square BGR crop around the face box (FER-style framing)."""
    cx, cy = box.center
    half = max(box.width, box.height) * scale / 2
    h, w = bgr.shape[:2]
    x1, y1 = max(0, int(cx - half)), max(0, int(cy - half))
    x2, y2 = min(w, int(cx + half)), min(h, int(cy + half))
    return bgr[y1:max(y2, y1 + 1), x1:max(x2, x1 + 1)]


@dataclass
class ExpressionTrack:
    """Exponential moving average of a track's expression probabilities, with its timeline."""

    classes: tuple[str, ...]
    alpha: float = 0.3  # weight of the newest frame
    smoothed: np.ndarray | None = None
    total: np.ndarray | None = None
    timeline: list[dict[str, Any]] = field(default_factory=list)

    def add(self, probs: np.ndarray, t_ms: float) -> str:
        p = np.asarray(probs, np.float64)
        self.smoothed = p if self.smoothed is None else self.alpha * p + (1 - self.alpha) * self.smoothed
        self.total = self.smoothed.copy() if self.total is None else self.total + self.smoothed
        label = self.classes[int(np.argmax(self.smoothed))]
        self.timeline.append({"t_ms": round(t_ms, 1), "label": label,
                              "probs": [round(float(v), 3) for v in self.smoothed]})
        return label

    @property
    def current(self) -> str | None:
        return self.classes[int(np.argmax(self.smoothed))] if self.smoothed is not None else None

    @property
    def dominant(self) -> str | None:
        return self.classes[int(np.argmax(self.total))] if self.total is not None else None

    def to_dict(self) -> dict[str, Any]:
        return {"classes": list(self.classes), "alpha": self.alpha, "dominant": self.dominant,
                "timeline": self.timeline}
