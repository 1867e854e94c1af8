"""Multi-face tracking: constant-velocity Kalman boxes, ByteTrack-style two-stage matching, re-identification.

Per processed frame, :meth:`Tracker.update` takes every detection (including low-confidence ones) and:

1. matches **high-score** detections to active and recently lost tracks by IoU with the Kalman-predicted box;
   where a detection overlaps several tracks (or a track several detections) and the tracks have an
   appearance vector, the detections are embedded and the cost mixes IoU with embedding similarity;
2. matches **low-score** detections (ByteTrack's second stage) to the still-unmatched tracks that were seen in
   the previous frame, by IoU only: they extend existing tracks through blur and occlusion, never start one;
3. embeds the remaining high-score detections and **re-identifies** them against lost tracks by cosine
   similarity (a person who walked behind someone, or a shot cut back to them);
4. starts a tentative track for each detection still unmatched whose score reaches ``new_track_score``.

A tentative track is confirmed after ``min_hits`` consecutive hits (else dropped as a false positive); a
confirmed track survives misses for ``max_age_s`` seconds of video, then ends. Embeddings are computed
lazily through the ``embed`` callback, so a frame where every face is tracked by IoU costs no embedding.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

import numpy as np

from facewise.decision.rates import ScoreScale
from facewise.errors import FacewiseError
from facewise.types import Box, Face

log = logging.getLogger(__name__)

try:  # optimal assignment when scipy is installed (the `eval` extra); greedy otherwise
    from scipy.optimize import linear_sum_assignment as _lsa
except ImportError:  # pragma: no cover - depends on the install
    _lsa = None

INF_COST = 1e6
NOMINAL_FRAME_MS = 1000.0 / 30  # Kalman noise is specified per 1/30 s


@dataclass(frozen=True)
class TrackerOptions:
    """Association thresholds. Scores are the detector's confidence. Appearance is judged in error rates, never in
    raw cosines (profiles score on different scales): ``reid_far`` and ``veto_far`` are per-comparison
    false-accept rates, turned into the profile's own similarity by its calibration (``decision/rates.py``;
    fast: 0.45 and 0.10, the cosines once fixed for it; default: 0.944 and 0.872)."""

    high_score: float = 0.6  # stage 1: detections at or above this match first
    low_score: float = 0.35  # stage 2: detections in [low_score, high_score) only extend existing tracks
    new_track_score: float = 0.7  # a new track starts only from a detection this confident
    match_iou: float = 0.2  # stage 1 gate
    low_match_iou: float = 0.4  # stage 2 gate
    reid_far: float = 5e-5  # stage 3: re-attach a lost track by appearance at or below this FAR
    appearance_weight: float = 0.5  # share of appearance evidence (ScoreScale.evidence) in the stage-1 cost
    veto_far: float = 0.15  # an ambiguous pair whose appearance is this common among strangers is not matched
    max_age_s: float = 1.0  # a track unseen this long (video time) ends
    min_hits: int = 3  # consecutive hits to confirm a track

    def __post_init__(self) -> None:
        if not 0 <= self.low_score <= self.high_score <= 1:
            raise FacewiseError("tracker scores must satisfy 0 <= low_score <= high_score <= 1")
        if self.max_age_s < 0 or self.min_hits < 1:
            raise FacewiseError("tracker max_age_s must be >= 0 and min_hits >= 1")
        if not (0 < self.reid_far <= 1 and 0 < self.veto_far <= 1):
            raise FacewiseError("tracker reid_far and veto_far must lie in (0, 1]")


class TrackState(Enum):
    TENTATIVE = "tentative"
    CONFIRMED = "confirmed"
    ENDED = "ended"


class KalmanBox:
    """Constant-velocity Kalman filter on the box centre and size: state (cx, cy, w, h, vcx, vcy, vw, vh).

    Time is measured in nominal frames of 1/30 s so that sampling (stride, fps, variable frame rate) scales
    the prediction; noise follows ByteTrack's weights, proportional to the box height.
    """

    POS_W = 1 / 20
    VEL_W = 1 / 160
    LOST_DECAY = 0.8  # per nominal frame

    def __init__(self, box: Box, t_ms: float) -> None:
        cx, cy = box.center
        self.x = np.array([cx, cy, box.width, box.height, 0, 0, 0, 0], np.float64)
        h = max(box.height, 1.0)
        p, v = 2 * self.POS_W * h, 10 * self.VEL_W * h
        self.P = np.diag([p, p, p, p, v, v, v, v]) ** 2
        self.t_ms = t_ms
        self._H = np.hstack([np.eye(4), np.zeros((4, 4))])

    @property
    def box(self) -> Box:
        cx, cy, w, h = self.x[:4]
        w, h = max(w, 1.0), max(h, 1.0)
        return Box(float(cx - w / 2), float(cy - h / 2), float(cx + w / 2), float(cy + h / 2))

    def predict(self, t_ms: float, damp: bool = False) -> Box:
        """Advance to ``t_ms``. ``damp`` (a track that was not seen) decays the velocity so an unseen face
        does not drift away: a lost face is more likely to have stopped than to keep moving."""
        dt = max(0.0, (t_ms - self.t_ms) / NOMINAL_FRAME_MS)
        if dt > 0 and damp:
            self.x[4:6] *= self.LOST_DECAY**dt
            self.x[6:] = 0.0
        if dt > 0:
            F = np.eye(8)
            F[:4, 4:] = np.eye(4) * dt
            h = max(self.x[3], 1.0)
            q = np.array([self.POS_W * h] * 4 + [self.VEL_W * h] * 4) ** 2 * dt
            self.x = F @ self.x
            self.P = F @ self.P @ F.T + np.diag(q)
            self.t_ms = t_ms
        return self.box

    def update(self, box: Box, t_ms: float) -> None:
        self.predict(t_ms)
        cx, cy = box.center
        z = np.array([cx, cy, box.width, box.height])
        r = (self.POS_W * max(box.height, 1.0)) ** 2
        S = self._H @ self.P @ self._H.T + np.eye(4) * r
        K = self.P @ self._H.T @ np.linalg.inv(S)
        self.x = self.x + K @ (z - self._H @ self.x)
        self.P = (np.eye(8) - K @ self._H) @ self.P


@dataclass(eq=False)
class Track:
    """One tracked face. ``appearance`` is the track's fused unit vector (set by the identity stage)."""

    id: int
    kalman: KalmanBox
    first_ms: float
    last_ms: float
    face: Face
    state: TrackState = TrackState.TENTATIVE
    hits: int = 1  # frames with a matched detection
    streak: int = 1  # consecutive hits
    misses: int = 0  # consecutive processed frames without a match
    shot: int = 0  # scene (between cuts) the track was last seen in
    appearance: np.ndarray | None = None

    @property
    def box(self) -> Box:
        return self.kalman.box

    @property
    def confirmed(self) -> bool:
        return self.state is TrackState.CONFIRMED


@dataclass
class TrackerStep:
    """What one frame did: tracks matched to a face, tracks confirmed this frame, confirmed tracks that ended,
    and tentative tracks dropped as false starts."""

    matched: list[tuple[Track, Face]]
    confirmed: list[Track]
    ended: list[Track]
    dropped: list[Track]


EmbedFn = Callable[[list[Face]], None]  # fills ``Face.embedding`` for the faces given (batched)


def iou_matrix(a: list[Box], b: list[Box]) -> np.ndarray:
    if not a or not b:
        return np.zeros((len(a), len(b)))
    A = np.array([[x.x1, x.y1, x.x2, x.y2] for x in a])[:, None, :]
    B = np.array([[x.x1, x.y1, x.x2, x.y2] for x in b])[None, :, :]
    iw = np.clip(np.minimum(A[..., 2], B[..., 2]) - np.maximum(A[..., 0], B[..., 0]), 0, None)
    ih = np.clip(np.minimum(A[..., 3], B[..., 3]) - np.maximum(A[..., 1], B[..., 1]), 0, None)
    inter = iw * ih
    area_a = (A[..., 2] - A[..., 0]) * (A[..., 3] - A[..., 1])
    area_b = (B[..., 2] - B[..., 0]) * (B[..., 3] - B[..., 1])
    return np.asarray(inter / np.maximum(area_a + area_b - inter, 1e-9))


def assign(cost: np.ndarray, max_cost: float) -> list[tuple[int, int]]:
    """Minimum-cost matching (Hungarian when scipy is present, else greedy); pairs above ``max_cost`` dropped."""
    if cost.size == 0:
        return []
    if _lsa is not None:
        rows, cols = _lsa(cost)
        return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if cost[r, c] <= max_cost]
    pairs, used_r, used_c = [], set(), set()
    for flat in np.argsort(cost, axis=None):
        r, c = divmod(int(flat), cost.shape[1])
        if cost[r, c] > max_cost:
            break
        if r not in used_r and c not in used_c:
            pairs.append((r, c))
            used_r.add(r)
            used_c.add(c)
    return pairs


class Tracker:
    """Assigns a persistent id to every face across frames (see the module docstring for the stages)."""

    def __init__(self, options: TrackerOptions | None = None, scale: ScoreScale | None = None) -> None:
        """``scale``: the profile's score scale (``ScoreScale.of(profile)``); without one, the cosine constants
        fixed for ``fast`` (0.45, 0.10)."""
        self.options = options or TrackerOptions()
        self.scale = scale or ScoreScale("uncalibrated", None)
        self.reid_similarity = self.scale.at_far(self.options.reid_far, 0.45)
        self.veto_similarity = self.scale.at_far(self.options.veto_far, 0.1)
        self.tracks: list[Track] = []
        self.shot = 0
        self._next_id = 1

    def update(self, faces: list[Face], t_ms: float, embed: EmbedFn | None = None, cut: bool = False) -> TrackerStep:
        """Associate one frame's faces. ``cut=True`` (a scene cut before this frame) starts a new shot: boxes
        of earlier shots say nothing about this one, so their tracks can only come back by re-identification."""
        o = self.options
        embed = embed or (lambda fs: None)
        self.shot += cut
        for tr in self.tracks:
            tr.kalman.predict(t_ms, damp=tr.misses > 0)
        in_shot = [tr for tr in self.tracks if tr.shot == self.shot]
        high = [f for f in faces if f.det_score >= o.high_score]
        low = [f for f in faces if o.low_score <= f.det_score < o.high_score]
        matched: list[tuple[Track, Face]] = []

        # stage 1: confident detections against the tracks of this shot (IoU, plus appearance where ambiguous)
        pairs, free_in_shot, free_high = self._match_first(in_shot, high, embed)
        matched += pairs
        # stage 2: low-confidence detections extend tracks seen in the previous frame
        recent = [tr for tr in free_in_shot if tr.misses == 0]
        iou = iou_matrix([tr.box for tr in recent], [f.box for f in low])
        for r, c in assign(1 - iou, 1 - o.low_match_iou):
            matched.append((recent[r], low[c]))
        taken = {id(tr) for tr, _ in matched}
        free_tracks = [tr for tr in self.tracks if id(tr) not in taken]
        # stage 3: re-identify lost tracks by appearance; then start new tracks
        candidates = [f for f in free_high if f.det_score >= o.new_track_score]
        reid, new_faces = self._reidentify(free_tracks, candidates, embed)
        matched += reid

        confirmed: list[Track] = []
        for tr, face in matched:
            self._hit(tr, face, t_ms)
            if tr.state is TrackState.TENTATIVE and tr.streak >= o.min_hits:
                tr.state = TrackState.CONFIRMED
                confirmed.append(tr)
        for face in new_faces:
            tr = Track(id=self._next_id, kalman=KalmanBox(face.box, t_ms), first_ms=t_ms, last_ms=t_ms, face=face,
                       shot=self.shot)
            self._next_id += 1
            self.tracks.append(tr)
            matched.append((tr, face))
            if o.min_hits <= 1:
                tr.state = TrackState.CONFIRMED
                confirmed.append(tr)
        ended, dropped = self._age(t_ms, {id(tr) for tr, _ in matched})
        return TrackerStep(matched=matched, confirmed=confirmed, ended=ended, dropped=dropped)

    def finish(self) -> list[Track]:
        """End every live track (end of the video); returns the confirmed ones."""
        out = [tr for tr in self.tracks if tr.confirmed]
        for tr in self.tracks:
            tr.state = TrackState.ENDED
        self.tracks = []
        return out

    # -- stages -----------------------------------------------------------------------------------
    def _match_first(self, tracks: list[Track], dets: list[Face],
                     embed: EmbedFn) -> tuple[list[tuple[Track, Face]], list[Track], list[Face]]:
        o = self.options
        if not tracks or not dets:
            return [], list(tracks), list(dets)
        iou = iou_matrix([tr.box for tr in tracks], [f.box for f in dets])
        cost = 1 - iou
        gate = iou >= o.match_iou
        # ambiguous: a pair whose row or column holds a rival at least half as good (faces crossing)
        rival_r = np.where(gate, iou, 0.0)
        second_r = np.sort(rival_r, axis=1)[:, -2:-1] if iou.shape[1] > 1 else np.zeros((len(tracks), 1))
        second_c = np.sort(rival_r, axis=0)[-2:-1, :] if iou.shape[0] > 1 else np.zeros((1, len(dets)))
        close = np.maximum(o.match_iou, 0.5 * iou)
        ambiguous = gate & ((second_r >= close) | (second_c >= close))
        with_vec = np.array([tr.appearance is not None for tr in tracks])[:, None]
        need = ambiguous & with_vec
        if need.any():
            todo = [dets[j] for j in np.flatnonzero(need.any(0)) if dets[j].embedding is None]
            embed(todo)
            for i, j in zip(*np.nonzero(need), strict=True):
                vec = dets[j].embedding
                if vec is None:
                    continue
                sim = float(tracks[i].appearance @ vec)
                if sim < self.veto_similarity:
                    gate[i, j] = False
                evidence = float(self.scale.evidence([sim])[0])
                cost[i, j] = 1 - ((1 - o.appearance_weight) * iou[i, j] + o.appearance_weight * evidence)
        cost[~gate] = INF_COST
        pairs = assign(cost, INF_COST / 2)
        used_t, used_d = {r for r, _ in pairs}, {c for _, c in pairs}
        return ([(tracks[r], dets[c]) for r, c in pairs], [tr for i, tr in enumerate(tracks) if i not in used_t],
                [f for j, f in enumerate(dets) if j not in used_d])

    def _reidentify(self, tracks: list[Track], dets: list[Face],
                    embed: EmbedFn) -> tuple[list[tuple[Track, Face]], list[Face]]:
        if not dets:
            return [], []
        embed([f for f in dets if f.embedding is None])  # new tracks need their first vector anyway
        lost = [tr for tr in tracks if tr.appearance is not None and tr.confirmed]
        usable = [f for f in dets if f.embedding is not None]
        if not lost or not usable:
            return [], list(dets)
        sims = np.array([[float(tr.appearance @ f.embedding) for f in usable] for tr in lost])  # type: ignore[operator]  # both filtered to not None above
        pairs = assign(1 - sims, 1 - self.reid_similarity)
        for r, c in pairs:
            log.debug("track %d re-identified (similarity %.2f)", lost[r].id, sims[r, c])
        used = {id(usable[c]) for _, c in pairs}
        return [(lost[r], usable[c]) for r, c in pairs], [f for f in dets if id(f) not in used]

    def _hit(self, tr: Track, face: Face, t_ms: float) -> None:
        if tr.shot != self.shot:  # re-identified across a cut: restart the motion model
            tr.kalman = KalmanBox(face.box, t_ms)
            tr.shot = self.shot
        tr.kalman.update(face.box, t_ms)
        tr.face = face
        tr.last_ms = t_ms
        tr.hits += 1
        tr.streak = tr.streak + 1 if tr.misses == 0 else 1
        tr.misses = 0

    def _age(self, t_ms: float, seen: set[int]) -> tuple[list[Track], list[Track]]:
        ended: list[Track] = []
        dropped: list[Track] = []
        keep: list[Track] = []
        max_age_ms = self.options.max_age_s * 1000
        for tr in self.tracks:
            if id(tr) not in seen:
                tr.misses += 1
                tr.streak = 0
                if tr.state is TrackState.TENTATIVE or t_ms - tr.last_ms > max_age_ms:
                    (ended if tr.confirmed else dropped).append(tr)
                    tr.state = TrackState.ENDED
                    continue
            keep.append(tr)
        self.tracks = keep
        return ended, dropped
