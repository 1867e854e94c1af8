"""Redaction: hide the faces that must not be seen, in photos and videos, steadily.

::

    from facewise import FaceWise
    from facewise.video.redact import Redactor, RedactOptions

    fw = FaceWise(db="people.db", profile="fast")
    report = Redactor(fw, RedactOptions(mode="unknown")).redact_video(Path("in.mp4"), Path("out.mp4"))

Modes: ``all`` hides every face; ``unknown`` keeps the people enrolled in the gallery visible and hides
everyone else; ``only`` hides the people named in ``names`` (and nobody else).

In a video, masks follow the tracks of :class:`~facewise.video.tracker.Tracker` rather than single detections:

* a face the detector loses for a few frames keeps its mask where the track's Kalman filter predicts it, until
  the track ends (``hold_s``), so a missed frame never shows it;
* a scene cut ends that: the previous shot's tracks are not drawn in the new one;
* frames leave through a look-ahead buffer of ``lookahead`` frames: when a track starts, its first box is also
  masked in the buffered frames before it (a face walking in is covered before the detector is sure of it);
* whether a track is spared is decided per track, when its frames leave the buffer, and a decision to spare
  (``unknown``) or to hide (``only``) is never taken back, so a track does not flicker. Until a track is named
  it is hidden in ``unknown`` mode; in ``only`` mode a track is hidden until it has been searched in the gallery
  ``confirm_updates`` times without being one of the names (the safe side in both modes).

Detections that no track holds (weak ones) are hidden too, except in ``only`` mode.

The result is a report (:class:`RedactReport`, ``to_dict()``): per track, hidden or spared and why (name and
score for spared ones), frames where its mask came from prediction or look-ahead, and statistics.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from facewise.errors import NotFoundError, ValidationError
from facewise.types import Face
from facewise.video.decode import DecodeOptions, Frame, VideoError, VideoReader
from facewise.video.masks import BoxT, MaskStyle, draw_masks
from facewise.video.recognize import IdentityOptions, TrackIdentity
from facewise.video.redact_io import (
    RedactedVideoWriter,
    atomic_path,
    check_output,
    encode_image,
    video_format,
    write_bytes_atomic,
)
from facewise.video.scenecut import CutOptions, SceneCutDetector
from facewise.video.tracker import Track, Tracker, TrackerOptions

if TYPE_CHECKING:
    from facewise.api import FaceWise
    from facewise.collection import Collection

log = logging.getLogger(__name__)

MODES = ("all", "unknown", "only")
REPORT_FORMAT = "facewise-redaction"


@dataclass(frozen=True)
class RedactOptions:
    """What to hide and how; see the module docstring."""

    mode: str = "all"
    names: tuple[str, ...] = ()  # mode "only": the people to hide
    mask: MaskStyle = field(default_factory=MaskStyle)
    lookahead: int = 10  # frames a mask starts before a face is first detected
    hold_s: float = 1.0  # how long a lost face keeps its predicted mask
    detect_score: float = 0.3  # detections at or above this are hidden / tracked
    new_track_score: float = 0.5  # a track starts from a detection this confident
    decode: DecodeOptions = field(default_factory=DecodeOptions)
    identity: IdentityOptions = field(default_factory=IdentityOptions)
    cuts: CutOptions = field(default_factory=CutOptions)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValidationError(f"redaction mode {self.mode!r}: expected one of {', '.join(MODES)}")
        if self.mode == "only" and not self.names:
            raise ValidationError("redaction mode 'only' needs the names of the people to hide")
        if self.mode != "only" and self.names:
            raise ValidationError(f"names are given only with mode 'only' (mode is {self.mode!r})")
        if not 0 <= self.lookahead <= 120:
            raise ValidationError(f"look-ahead {self.lookahead}: expected 0 to 120 frames")
        if not 0 <= self.hold_s <= 10:
            raise ValidationError(f"hold {self.hold_s}: expected 0 to 10 seconds")
        if not 0.05 <= self.detect_score <= self.new_track_score <= 1:
            raise ValidationError("expected 0.05 <= detect_score <= new_track_score <= 1")
        if self.decode.stride != 1 or self.decode.fps is not None:
            raise ValidationError("redaction processes every frame (no stride or fps sampling)")

    @property
    def needs_identity(self) -> bool:
        return self.mode != "all"

    def tracker_options(self) -> TrackerOptions:
        return TrackerOptions(high_score=self.new_track_score, low_score=self.detect_score,
                              new_track_score=self.new_track_score, max_age_s=self.hold_s, min_hits=1)

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "names": list(self.names), "mask": self.mask.to_dict(),
                "lookahead": self.lookahead, "hold_s": self.hold_s, "detect_score": self.detect_score}


@dataclass
class TrackRecord:
    """What the report says about one track."""

    track: int
    first_frame: int
    first_ms: float
    last_frame: int = -1
    last_ms: float = 0.0
    detected: int = 0  # frames with a detection of this face
    predicted: list[int] = field(default_factory=list)  # frames masked from the track's prediction
    lookahead: list[int] = field(default_factory=list)  # frames masked before its first detection
    hidden_frames: int = 0
    shown_frames: int = 0
    spared: bool = False  # unknown mode: named, so kept visible from here on
    target: bool = False  # only mode: named as one of the people to hide
    spared_from_frame: int | None = None
    person: str | None = None
    person_id: int | None = None
    score: float | None = None
    candidate: str | None = None

    def to_dict(self, mode: str) -> dict[str, Any]:
        hidden = self.hidden_frames > 0 and self.shown_frames == 0
        if mode == "all":
            reason = "mode all: every face is hidden"
        elif mode == "unknown":
            reason = "recognised as an enrolled person" if self.spared else "not recognised as an enrolled person"
        else:
            reason = "recognised as one of the people to hide" if self.target else "not one of the people to hide"
        action = "blurred" if hidden else ("spared" if self.hidden_frames == 0 else "blurred, then spared")
        if mode == "only" and not self.target and self.hidden_frames:
            action = "blurred until checked, then shown"
        return {"track": self.track, "action": action, "reason": reason,
                "person": self.person or "unknown", "person_id": self.person_id,
                "score": None if self.score is None else round(self.score, 4), "candidate": self.candidate,
                "first_frame": self.first_frame, "last_frame": self.last_frame,
                "first_ms": round(self.first_ms, 1), "last_ms": round(self.last_ms, 1),
                "frames_detected": self.detected, "frames_hidden": self.hidden_frames,
                "frames_shown": self.shown_frames, "spared_from_frame": self.spared_from_frame,
                "predicted_frames": ranges(self.predicted), "lookahead_frames": ranges(self.lookahead)}


def ranges(frames: list[int]) -> list[list[int]]:
    """[3, 4, 5, 9] -> [[3, 5], [9, 9]]"""
    out: list[list[int]] = []
    for f in sorted(set(frames)):
        if out and f == out[-1][1] + 1:
            out[-1][1] = f
        else:
            out.append([f, f])
    return out


@dataclass
class RedactStats:
    frames: int = 0
    faces: int = 0  # detections
    masks: int = 0  # masks drawn
    predicted_masks: int = 0
    lookahead_masks: int = 0
    untracked_masks: int = 0
    cuts: int = 0
    embeddings: int = 0
    wall_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        fps = self.frames / self.wall_s if self.wall_s > 0 else 0.0
        return {"frames": self.frames, "faces": self.faces, "masks": self.masks,
                "predicted_masks": self.predicted_masks, "lookahead_masks": self.lookahead_masks,
                "untracked_masks": self.untracked_masks, "cuts": self.cuts, "embeddings": self.embeddings,
                "wall_s": round(self.wall_s, 3), "fps": round(fps, 2)}


@dataclass
class RedactReport:
    source: str
    output: str
    kind: str  # "video" | "image"
    options: dict[str, Any]
    profile: str
    threshold: float | None
    tracks: list[TrackRecord] = field(default_factory=list)
    faces: list[dict[str, Any]] = field(default_factory=list)  # images: one entry per face
    stats: RedactStats = field(default_factory=RedactStats)
    audio: str | None = None
    error: str | None = None

    @property
    def complete(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        mode = str(self.options["mode"])
        d: dict[str, Any] = {"format": REPORT_FORMAT, "version": 1, "kind": self.kind, "source": self.source,
                             "output": self.output, "options": self.options, "profile": self.profile,
                             "threshold": None if self.threshold is None else round(self.threshold, 4),
                             "complete": self.complete, "error": self.error, "stats": self.stats.to_dict()}
        if self.kind == "video":
            d["audio"] = self.audio
            d["tracks"] = [t.to_dict(mode) for t in sorted(self.tracks, key=lambda t: t.track)]
        else:
            d["faces"] = self.faces
        return d


def report_path(out: Path) -> Path:
    return out.with_name(out.name + ".json")


@dataclass
class _Mask:
    box: BoxT
    track: int | None  # None: a detection no track holds
    kind: str = "detected"  # "detected" | "predicted" | "lookahead"


@dataclass
class _Buffered:
    frame: Frame
    shot: int
    masks: list[_Mask]


class Redactor:
    """Redacts photos and videos with one collection (a :class:`~facewise.collection.Collection` or that of a
    :class:`~facewise.api.FaceWise`): its engine's profile, its gallery."""

    def __init__(self, fw: FaceWise | Collection, options: RedactOptions | None = None) -> None:
        from facewise.video.process import as_collection

        self.coll = as_collection(fw)
        self.engine = self.coll.engine.load()
        self.options = options or RedactOptions()
        self.detector, _ = self.engine.tracking_detectors(self.options.detect_score)
        if self.options.mode == "only":
            for name in self.options.names:
                try:
                    self.coll.person(name)
                except NotFoundError:
                    raise NotFoundError(f"--only {name!r}: no such person in collection {self.coll.name!r}"
                                        ) from None

    def detect(self, pixels: np.ndarray) -> list[Face]:
        dets = [d for d in self.detector.detect(pixels) if d.score >= self.options.detect_score]
        return self.engine.faces_of(pixels, dets)

    # -- photos -----------------------------------------------------------------------------------
    def redact_image(self, source: Path, out: Path) -> RedactReport:
        """Hide the faces of one photo; ``out`` is written atomically in its own format (EXIF and other metadata
        are not carried over). Unreadable or oversized photos raise ``ImageError`` as ``identify`` does."""
        from facewise.core.imageio import load_image

        check_output(source, out)
        encode_image(np.zeros((2, 2, 3), np.uint8), out.suffix)  # refuse an unknown output type before the work
        t0 = time.perf_counter()
        pixels = np.array(load_image(source).pixels)
        faces = self.detect(pixels)
        decision = self.coll.decision() if self.options.needs_identity else None
        named: list[tuple[str | None, int | None, float | None]] = [(None, None, None)] * len(faces)
        if decision is not None and faces:
            hits = self.coll.search(self.engine.embed(pixels, faces), k=1)
            named = [(h[0].name, h[0].person_id, float(h[0].score)) if h and h[0].score >= decision.threshold
                     else (None, None, float(h[0].score) if h else None) for h in hits]
        report = RedactReport(str(source), str(out), "image", self.options.to_dict(), self.engine.profile.name,
                              decision.threshold if decision else None)
        boxes: list[BoxT] = []
        for face, (person, pid, score) in zip(faces, named, strict=True):
            hide = self._hide_named(person)
            b = face.box
            if hide:
                boxes.append((b.x1, b.y1, b.x2, b.y2))
            report.faces.append({"index": face.index, "box": b.as_list(), "det_score": round(face.det_score, 4),
                                 "action": "blurred" if hide else "spared", "person": person or "unknown",
                                 "person_id": pid, "score": None if score is None else round(score, 4)})
        report.stats.frames, report.stats.faces = 1, len(faces)
        report.stats.masks = draw_masks(pixels, boxes, self.options.mask)
        write_bytes_atomic(out, encode_image(pixels, out.suffix))
        report.stats.wall_s = time.perf_counter() - t0
        return report

    def _hide_named(self, person: str | None) -> bool:
        mode = self.options.mode
        if mode == "all":
            return True
        if mode == "unknown":
            return person is None
        return person is not None and person in self.options.names

    # -- videos -----------------------------------------------------------------------------------
    def redact_video(self, source: Path, out: Path, on_frame: Callable[[Frame], None] | None = None,
                     on_open: Callable[[VideoReader], None] | None = None,
                     on_decoded: Callable[[], None] | None = None) -> RedactReport:
        """Redact a video file into ``out`` (.mp4, .mov or .mkv; H.264 with the source's audio copied).

        A video that cannot be opened raises :class:`VideoError` and writes nothing; one that ends early still
        gets what was decoded written (every frame of it redacted) and raises ``VideoError`` whose ``partial``
        is the report (``error`` set)."""
        check_output(source, out)
        check_output(source, report_path(out))
        fmt = video_format(out)
        run = _VideoRun(self, source, out)
        reader = VideoReader(source, self.options.decode, on_decoded)
        with reader:
            if on_open is not None:
                on_open(reader)
            info = reader.info
            t0 = time.perf_counter()
            with atomic_path(out) as tmp:
                writer = RedactedVideoWriter(tmp, source, info.fps or 30.0, (info.width, info.height), fmt)
                run.writer = writer
                try:
                    for frame in reader:
                        run.process(frame)
                        if on_frame is not None:
                            on_frame(frame)
                except VideoError as exc:
                    run.report.error = str(exc)
                except BaseException:
                    writer.close(abort=True)
                    raise
                run.flush()
                cut = self.options.decode.duration_s is not None or run.report.error is not None
                writer.close(audio_until_s=run.last_ms / 1000 + 1 / (info.fps or 30.0) if cut else None)
            run.report.audio = writer.audio
            run.report.stats.wall_s = time.perf_counter() - t0
        if run.report.error is not None:
            raise VideoError(run.report.error, partial=run.report)
        return run.report


class _VideoRun:
    """The state of one video: tracker, identities, the look-ahead buffer and the report."""

    def __init__(self, redactor: Redactor, source: Path, out: Path) -> None:
        self.r, self.coll, self.engine, self.opts = redactor, redactor.coll, redactor.engine, redactor.options
        self.tracker = Tracker(self.opts.tracker_options())
        self.cuts = SceneCutDetector(self.opts.cuts)
        self.decision = self.coll.decision() if self.opts.needs_identity else None  # one snapshot per run
        self.identities: dict[int, TrackIdentity] = {}
        self.records: dict[int, TrackRecord] = {}
        self.buffer: deque[_Buffered] = deque()
        self.writer: RedactedVideoWriter | None = None
        self.last_ms = 0.0
        self.report = RedactReport(str(source), str(out), "video", self.opts.to_dict(), self.engine.profile.name,
                                   self.decision.threshold if self.decision else None)

    def identity(self, tr: Track) -> TrackIdentity:
        idn = self.identities.get(tr.id)
        if idn is None:
            idn = self.identities[tr.id] = TrackIdentity(self.opts.identity)
        return idn

    def embed(self, px: np.ndarray, faces: list[Face]) -> None:
        self.report.stats.embeddings += self.engine.embed_missing(px, faces)

    def process(self, frame: Frame) -> None:
        px, t, stats = frame.pixels, frame.t_ms, self.report.stats
        self.last_ms = t
        faces = self.r.detect(px)
        stats.frames += 1
        stats.faces += len(faces)
        cut = self.cuts(px)
        stats.cuts += cut
        embed = (lambda fs: self.embed(px, fs)) if self.decision is not None else None
        step = self.tracker.update(faces, t, embed=embed, cut=cut)
        if self.decision is not None:
            self.name_tracks(px, frame, step.matched)
        matched = {tr.id for tr, _ in step.matched}
        held = {id(f) for _, f in step.matched}
        masks: list[_Mask] = []
        shot = self.tracker.shot
        for tr, face in step.matched:
            rec = self.records.get(tr.id)
            if rec is None:
                rec = self.records[tr.id] = TrackRecord(tr.id, frame.index, t)
                self.backfill(tr.id, face, shot)
            rec.detected += 1
            rec.last_frame, rec.last_ms = frame.index, t
            b = face.box
            masks.append(_Mask((b.x1, b.y1, b.x2, b.y2), tr.id))
        for tr in self.tracker.tracks:  # lost for now: the mask stays where the track is predicted to be
            if tr.id in matched or tr.shot != shot or tr.id not in self.records:
                continue
            b = tr.box
            masks.append(_Mask((b.x1, b.y1, b.x2, b.y2), tr.id, "predicted"))
            self.records[tr.id].predicted.append(frame.index)
        for face in faces:
            if id(face) not in held:
                b = face.box
                masks.append(_Mask((b.x1, b.y1, b.x2, b.y2), None))
        for tr in step.ended + step.dropped:
            self.identities.pop(tr.id, None)
        self.buffer.append(_Buffered(frame, shot, masks))
        while len(self.buffer) > self.opts.lookahead:
            self.emit(self.buffer.popleft())

    def backfill(self, track: int, face: Face, shot: int) -> None:
        """A new track: mask its first box in the buffered frames of the same shot before it."""
        b = face.box
        for item in reversed(self.buffer):
            if item.shot != shot:
                break
            item.masks.append(_Mask((b.x1, b.y1, b.x2, b.y2), track, "lookahead"))
            self.records[track].lookahead.append(item.frame.index)

    def name_tracks(self, px: np.ndarray, frame: Frame, matched: list[tuple[Track, Face]]) -> None:
        assert self.decision is not None
        need = [f for tr, f in matched if f.embedding is None and self.identity(tr).needs_embedding(f)]
        self.embed(px, need)
        updated = []
        for tr, face in matched:
            idn = self.identity(tr)
            idn.observe(face, px, frame.t_ms, frame.index)
            if face.embedding is not None:
                updated.append((tr, idn))
        named = [(tr, idn, tmpl) for tr, idn in updated if (tmpl := idn.template) is not None]
        if not named:
            return
        hits = self.coll.search(np.stack([tmpl for _, _, tmpl in named]), k=self.opts.identity.top_k)
        for (tr, idn, tmpl), h in zip(named, hits, strict=True):
            tr.appearance = tmpl
            idn.decide(h, self.decision)
            rec = self.records.get(tr.id)
            if rec is not None:
                rec.person, rec.person_id, rec.score, rec.candidate = idn.person, idn.person_id, idn.score, \
                    idn.candidate
                if self.opts.mode == "only" and idn.person in self.opts.names:
                    rec.target = True

    def hide(self, mask: _Mask, frame_index: int) -> bool:
        """Per track and sticky: see the module docstring."""
        mode = self.opts.mode
        if mask.track is None:
            return mode != "only"
        if mode == "all":
            return True
        rec = self.records[mask.track]
        if mode == "unknown":
            if not rec.spared and rec.person is not None:
                rec.spared, rec.spared_from_frame = True, frame_index
            return not rec.spared
        if rec.target:
            return True
        idn = self.identities.get(mask.track)
        checked = idn is not None and idn.updates >= self.opts.identity.confirm_updates
        return not checked and rec.detected > 0 and not rec.shown_frames

    def emit(self, item: _Buffered) -> None:
        stats = self.report.stats
        boxes: list[BoxT] = []
        seen: set[int] = set()
        for m in item.masks:
            if m.track is not None:
                if m.track in seen:  # a look-ahead box for a frame that also holds the track
                    continue
                seen.add(m.track)
            hide = self.hide(m, item.frame.index)
            rec = self.records.get(m.track) if m.track is not None else None
            if rec is not None:
                if hide:
                    rec.hidden_frames += 1
                else:
                    rec.shown_frames += 1
            if not hide:
                continue
            boxes.append(m.box)
            stats.predicted_masks += m.kind == "predicted"
            stats.lookahead_masks += m.kind == "lookahead"
            stats.untracked_masks += m.track is None
        stats.masks += draw_masks(item.frame.pixels, boxes, self.opts.mask)
        if self.writer is not None:
            self.writer.write(item.frame.pixels, item.frame.t_ms)

    def flush(self) -> None:
        while self.buffer:
            self.emit(self.buffer.popleft())
        self.report.tracks = list(self.records.values())
