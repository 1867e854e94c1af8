"""Live camera sessions: the web page's webcam view (or any client) sends frames one by one to a session.

A session belongs to the key that opened it and to one collection. Each frame is named like ``identify``
(the same pipeline and decision), the tracked face -- the largest at first, then the one nearest the previous
frame's -- gets its passive liveness with the cues that fired (and, on request, the occlusion map), and, when the
session carries an active challenge (:mod:`facewise.core.challenge`), the frame moves it on. Time is the
server's: a client cannot stretch a challenge's time limit.

Budgets (:class:`~facewise.service.config.LiveLimits`): open sessions per key and overall (429 beyond), a
session's lifetime, idle time and frame count (an ended session is gone: 404), one frame of a session at a
time, and every frame under the key's concurrency budget for image work, like identify.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from facewise.collection import Collection
from facewise.core.analysis import Analyzer
from facewise.core.challenge import ChallengePolicy, ChallengeRun, largest, random_steps
from facewise.core.imageio import DecodedImage
from facewise.gallery.maintenance import Erasure
from facewise.service.config import LiveLimits
from facewise.service.errors import ApiError


@dataclass
class LiveSession:
    id: str
    key_id: str
    collection: str
    created: float  # time.monotonic()
    last_seen: float
    challenge: ChallengeRun | None = None
    frames: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def age(self, now: float) -> float:
        return now - self.created

    def describe(self, limits: LiveLimits, now: float | None = None) -> dict[str, Any]:
        now = time.monotonic() if now is None else now
        out: dict[str, Any] = {"session_id": self.id, "collection": self.collection, "frames": self.frames,
                               "age_s": round(self.age(now), 2), "max_seconds": limits.max_seconds,
                               "idle_seconds": limits.idle_seconds, "max_frames": limits.max_frames}
        out["challenge"] = self.challenge.status(self.age(now)) if self.challenge is not None else None
        return out


class LiveSessions:
    """Open sessions, in memory (a restart ends them all)."""

    def __init__(self, limits: LiveLimits) -> None:
        self.limits = limits
        self._lock = threading.Lock()
        self._sessions: dict[str, LiveSession] = {}

    def _expire(self, now: float) -> None:
        lim = self.limits
        for sid, s in list(self._sessions.items()):
            if s.age(now) > lim.max_seconds or now - s.last_seen > lim.idle_seconds:
                del self._sessions[sid]

    def count(self) -> int:
        with self._lock:
            self._expire(time.monotonic())
            return len(self._sessions)

    def open(self, key_id: str, collection: str, challenge: ChallengeRun | None) -> LiveSession:
        now = time.monotonic()
        with self._lock:
            self._expire(now)
            mine = sum(1 for s in self._sessions.values() if s.key_id == key_id)
            if mine >= self.limits.per_key:
                raise ApiError(429, "live_sessions_full", f"key {key_id} already has {mine} live session(s) open "
                               f"(at most {self.limits.per_key}); end one (DELETE) or let it expire",
                               headers={"Retry-After": str(max(1, round(self.limits.idle_seconds)))})
            if len(self._sessions) >= self.limits.total:
                raise ApiError(429, "live_sessions_full", f"the server has {len(self._sessions)} live sessions "
                               "open, its limit; try again later", headers={"Retry-After": "10"})
            session = LiveSession(secrets.token_urlsafe(18), key_id, collection, now, now, challenge)
            self._sessions[session.id] = session
            return session

    def get(self, session_id: str, key_id: str, collection: str) -> LiveSession:
        """The key's open session in that collection; 404 for any other (unknown, ended, another key's)."""
        with self._lock:
            self._expire(time.monotonic())
            s = self._sessions.get(session_id)
            if s is None or s.key_id != key_id or s.collection != collection:
                raise ApiError(404, "not_found", f"no open live session {session_id!r} in collection {collection!r} "
                               "for this key (sessions end when closed, idle, too old or out of frames)")
            return s

    def end(self, session: LiveSession) -> None:
        with self._lock:
            self._sessions.pop(session.id, None)

    def erase(self, event: Erasure) -> None:
        """An erasure listener: a deleted collection ends its sessions (a session holds no face data)."""
        if event.whole_collection:
            with self._lock:
                for sid in [sid for sid, s in self._sessions.items() if s.collection == event.collection]:
                    del self._sessions[sid]


def new_challenge(analyzer: Analyzer, steps: list[str] | None, n_steps: int, time_limit_s: float) -> ChallengeRun:
    """The session's challenge: the caller's steps, else ``n_steps`` random ones (always with a turn)."""
    return ChallengeRun(steps or random_steps(n_steps), analyzer, ChallengePolicy(time_limit_s=time_limit_s),
                        live_every=1)


def process_frame(session: LiveSession, coll: Collection, img: DecodedImage, limits: LiveLimits,
                  with_map: bool) -> dict[str, Any]:
    """One frame of a session (call it with ``session.lock`` held): faces named with one snapshot of the
    collection's decision, the tracked face's liveness by the collection's engine, the challenge moved on. Runs in
    the CPU pool."""
    decision = coll.decision()
    results = coll.identify(img, 1, decision)
    faces = [r.face for r in results]
    boxes = np.array([[f.box.x1, f.box.y1, f.box.x2, f.box.y2] for f in faces], np.float64).reshape(-1, 4)
    now = time.monotonic()
    t = session.age(now)
    run = session.challenge
    tracked = run.track(boxes) if run is not None else largest(boxes)
    live: float | None = None
    if tracked is not None:
        what = ("live", "live_map") if with_map else ("live",)
        coll.engine.attributes(img.pixels, [faces[tracked]], what)
        result = faces[tracked].attributes.get("live")
        live = float(result["score"]) if result else None
    if run is not None:
        run.observe(t, img.pixels, boxes, [f.landmarks for f in faces], live)
    session.frames += 1
    session.last_seen = now
    w, h = img.size
    out = {"session_id": session.id, "frame": session.frames, "t": round(t, 3), "image": {"width": w, "height": h},
           "profile": coll.profile.name, "threshold": round(decision.threshold, 4),
           "threshold_source": decision.source, "tracked": tracked,
           "faces": [r.to_dict() for r in results],
           "challenge": run.status(t) if run is not None else None}
    out["frames_left"] = max(0, limits.max_frames - session.frames)
    return out
