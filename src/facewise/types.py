"""Typed records returned by the public API."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from facewise.errors import FacewiseError


@dataclass(frozen=True)
class Box:
    """Axis-aligned face box in pixels of the decoded (EXIF-rotated) image."""

    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)

    @property
    def center(self) -> tuple[float, float]:
        return ((self.x1 + self.x2) / 2, (self.y1 + self.y2) / 2)

    def as_list(self) -> list[float]:
        return [round(self.x1, 1), round(self.y1, 1), round(self.x2, 1), round(self.y2, 1)]

    def iou(self, other: Box) -> float:
        ix = max(0.0, min(self.x2, other.x2) - max(self.x1, other.x1))
        iy = max(0.0, min(self.y2, other.y2) - max(self.y1, other.y1))
        inter = ix * iy
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0


@dataclass
class Detection:
    """A detector's output: box, five landmarks and confidence.

    Landmarks are (5, 2) float32 in this order: image-left eye, image-right eye, nose tip,
    image-left mouth corner, image-right mouth corner (the ArcFace order). ``found_by`` names the
    detector pass that found it when that was not the first (``upscaled``, ``padded``).
    """

    box: Box
    landmarks: np.ndarray
    score: float
    found_by: str = "first"


@dataclass
class Quality:
    """Face quality in [0, 1] with human-readable reasons for anything that lowered it."""

    score: float
    reasons: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.reasons


@dataclass
class Face:
    """One face found in an image, with what the pipeline computed for it."""

    index: int
    box: Box
    landmarks: np.ndarray
    det_score: float
    quality: Quality
    yaw: float = 0.0
    embedding: np.ndarray | None = None
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def vector(self) -> np.ndarray:
        """The embedding, or :class:`FacewiseError` when the pipeline did not compute one for this face."""
        if self.embedding is None:
            raise FacewiseError(f"face {self.index} has no embedding (the pipeline ran without an embedder)")
        return self.embedding

    def __repr__(self) -> str:  # short: never the vector, landmarks or attribute maps
        vec = "None" if self.embedding is None else f"<{int(np.asarray(self.embedding).size)}-d>"
        return (f"Face(index={self.index}, box={self.box.as_list()}, det_score={float(self.det_score):.3f}, "
                f"quality={self.quality.score:.2f}, yaw={float(self.yaw):.1f}, embedding={vec}, "
                f"attributes={sorted(self.attributes)})")

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "box": self.box.as_list(),
            "landmarks": np.round(self.landmarks.astype(np.float64), 1).tolist(),
            "det_score": round(float(self.det_score), 4),
            "yaw": round(float(self.yaw), 1),
            "quality": round(self.quality.score, 3),
            "quality_reasons": list(self.quality.reasons),
            **self.attributes,
        }


@dataclass(frozen=True)
class Person:
    id: int
    name: str
    metadata: dict[str, Any]
    n_samples: int
    created_at: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "metadata": self.metadata,
            "samples": self.n_samples,
            "created_at": self.created_at,
        }


@dataclass(frozen=True)
class Sample:
    id: int
    person_id: int
    image_sha256: str
    source: str
    box: list[float]
    quality: float
    yaw: float
    created_at: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "person_id": self.person_id,
            "image_sha256": self.image_sha256,
            "source": self.source,
            "box": self.box,
            "quality": round(self.quality, 3),
            "yaw": round(self.yaw, 1),
            "created_at": self.created_at,
        }


@dataclass(frozen=True)
class Candidate:
    person_id: int
    name: str
    score: float
    far: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "person_id": self.person_id,
            "person": self.name,
            "score": round(self.score, 4),
            "far": self.far,
        }


@dataclass
class Identification:
    """The answer for one face: a person, or ``None`` for "unknown"."""

    face: Face
    person: str | None
    person_id: int | None
    score: float
    far: float | None
    threshold: float
    candidates: list[Candidate] = field(default_factory=list)
    # open-set risk of this search: the estimated chance that a stranger gets some name from a search of
    # ``searched`` persons at ``threshold`` (``far`` is per comparison; None: uncalibrated)
    fpir: float | None = None
    searched: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.face.to_dict(),
            "person": self.person if self.person is not None else "unknown",
            "person_id": self.person_id,
            "score": round(self.score, 4),
            "far": self.far,
            "fpir": self.fpir,
            "searched": self.searched,
            "threshold": round(self.threshold, 4),
            "candidates": [c.to_dict() for c in self.candidates],
        }


@dataclass(frozen=True)
class Verification:
    score: float
    same: bool
    threshold: float
    far: float | None
    profile: str
    reason: str | None = None  # why "not same" was forced (e.g. the probe is not live)
    # the faces compared: {"index", "box"} of the probe, then of the second image (verify_person: the probe only)
    faces: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": round(self.score, 4),
            "same": self.same,
            "threshold": round(self.threshold, 4),
            "far": self.far,
            "profile": self.profile,
            "reason": self.reason,
            "faces": self.faces,
        }


@dataclass
class EnrollResult:
    """Outcome of enrolling one image."""

    source: str
    person: str
    status: str  # "added" | "duplicate" | "rejected"
    sample_id: int | None = None
    reason: str | None = None
    face: Face | None = None
    code: str | None = None  # a rejection's error code (``bad_image``, ``no_face``, ``multiple_faces``...)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "person": self.person,
            "status": self.status,
            "sample_id": self.sample_id,
            "reason": self.reason,
            "code": self.code if self.code is not None else ("rejected" if self.status == "rejected" else None),
            "quality_reasons": list(self.face.quality.reasons) if self.face else [],
        }

    def __repr__(self) -> str:  # short: the face without its vector
        return (f"EnrollResult(source={self.source!r}, person={self.person!r}, status={self.status!r}, "
                f"sample_id={self.sample_id}, reason={self.reason!r}, face={self.face!r})")
