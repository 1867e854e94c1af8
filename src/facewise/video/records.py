"""The records of a video run: its events, one summary per track, statistics and the whole result.

Kept apart from the orchestrator (:mod:`facewise.video.process`) so that what writes them
(:mod:`facewise.video.outputs`) and what makes them both import them from here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from facewise.video.decode import VideoInfo


@dataclass(frozen=True)
class VideoEvent:
    """``entered`` (track confirmed), ``identified`` (its name changed), ``left`` (track ended); with a challenge
    also ``challenge`` (a new step is asked for, or it ended: ``detail`` is its state)."""

    kind: str
    track: int
    person: str | None
    score: float
    t_ms: float
    detail: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {"event": self.kind, "track": self.track, "person": self.person or "unknown",
             "score": round(self.score, 4), "t_ms": round(self.t_ms, 1)}
        if self.detail is not None:
            d["challenge"] = self.detail
        return d


@dataclass
class TrackSummary:
    """One line of the timeline."""

    track: int
    person: str | None
    person_id: int | None
    score: float
    far: float | None
    candidate: str | None
    first_ms: float
    last_ms: float
    frames: int
    vectors: int
    best_frame: str | None = None  # thumbnail path relative to the output folder
    best_frame_ms: float | None = None
    best_box: list[float] | None = None
    best_quality: float | None = None
    expression: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {"track": self.track, "person": self.person or "unknown", "person_id": self.person_id,
             "score": round(self.score, 4), "far": self.far, "candidate": self.candidate,
             "first_ms": round(self.first_ms, 1), "last_ms": round(self.last_ms, 1), "frames": self.frames,
             "vectors": self.vectors, "best_frame": self.best_frame,
             "best_frame_ms": round(self.best_frame_ms, 1) if self.best_frame_ms is not None else None,
             "best_box": self.best_box, "best_quality": self.best_quality}
        if self.expression is not None:
            d["expression"] = self.expression
        return d


@dataclass
class VideoStats:
    frames_decoded: int = 0
    frames_processed: int = 0
    frames_dropped: int = 0
    faces: int = 0  # detections handed to the tracker
    embeddings: int = 0  # face vectors computed
    refined: int = 0  # small faces whose landmarks were re-detected
    cuts: int = 0  # scene cuts detected
    wall_s: float = 0.0
    video_s: float = 0.0  # video time covered by the processed frames
    detect_s: float = 0.0
    embed_s: float = 0.0

    @property
    def fps(self) -> float:
        return self.frames_processed / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def realtime_factor(self) -> float:
        """Video seconds per wall-clock second (> 1: faster than real time)."""
        return self.video_s / self.wall_s if self.wall_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"frames_decoded": self.frames_decoded, "frames_processed": self.frames_processed,
                "frames_dropped": self.frames_dropped, "faces": self.faces, "embeddings": self.embeddings,
                "refined": self.refined, "cuts": self.cuts, "wall_s": round(self.wall_s, 3),
                "video_s": round(self.video_s, 3),
                "fps": round(self.fps, 2), "realtime_factor": round(self.realtime_factor, 3),
                "detect_s": round(self.detect_s, 3), "embed_s": round(self.embed_s, 3)}


@dataclass
class VideoResult:
    """The timeline of a run, its events and statistics; ``error`` is set when the video ended early."""

    source: str
    info: VideoInfo | None
    profile: str
    collection: str
    threshold: float
    threshold_source: str
    sampling: dict[str, Any]
    tracks: list[TrackSummary] = field(default_factory=list)
    events: list[VideoEvent] = field(default_factory=list)
    stats: VideoStats = field(default_factory=VideoStats)
    error: str | None = None
    interrupted: bool = False
    outputs: dict[str, Any] | None = None
    challenge: dict[str, Any] | None = None  # the active challenge's result, when one was asked

    @property
    def complete(self) -> bool:
        return self.error is None and not self.interrupted

    def persons(self) -> set[str]:
        return {t.person for t in self.tracks if t.person}

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"format": "facewise-video-timeline", "version": 1, "source": self.source,
                             "video": self.info.to_dict() if self.info else None, "profile": self.profile,
                             "collection": self.collection, "threshold": round(self.threshold, 4),
                             "threshold_source": self.threshold_source, "sampling": self.sampling,
                             "complete": self.complete, "error": self.error, "interrupted": self.interrupted,
                             "stats": self.stats.to_dict(), "outputs": self.outputs,
                             "tracks": [t.to_dict() for t in self.tracks], "events": [e.to_dict() for e in self.events]}
        if self.challenge is not None:
            d["challenge"] = self.challenge
        return d


EventFn = Callable[[VideoEvent], None]
