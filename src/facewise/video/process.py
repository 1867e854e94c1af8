"""The video pipeline: decode -> detect -> track -> (embed when a track needs it) -> name -> timeline.

::

    from facewise import FaceWise
    from facewise.video import VideoProcessor, VideoOptions, DecodeOptions, OutputOptions

    fw = FaceWise(db="people.db", profile="fast")
    result = VideoProcessor(fw, VideoOptions(decode=DecodeOptions(stride=2))).run(
        "clip.mp4", outputs=OutputOptions(Path("out")), on_event=print)
    for t in result.tracks:
        print(t.track, t.person or "unknown", t.first_ms, t.last_ms)

Every processed frame is detected; a face is embedded only when its track needs a vector (a new track, a
warming-up or periodic refresh, a clearly better view, or an ambiguous overlap the tracker must resolve).
Faces smaller than ``refine_small_px`` get their five landmarks re-detected on an upscaled crop before
embedding (YuNet profiles), which makes distant faces markedly more recognisable.

A video that cannot be opened raises :class:`~facewise.video.decode.VideoError` with ``partial=None``; one that
ends before its declared length raises ``VideoError`` whose ``partial`` is the :class:`VideoResult` of
everything processed before the fault (``result.error`` set; the outputs, if asked for, are written too).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

from facewise.collection import Collection
from facewise.core.challenge import ChallengePolicy, ChallengeRun
from facewise.core.engine import FaceEngine
from facewise.core.outfiles import InputFiles
from facewise.decision.rates import ScoreScale
from facewise.models.protocols import Detector
from facewise.types import Box, Face
from facewise.video.decode import DecodeOptions, Frame, VideoError, VideoReader, VideoSource
from facewise.video.outputs import (
    AnnotatedWriter,
    DrawItem,
    OutputOptions,
    result_paths,
    save_thumbnail,
    write_timeline,
)
from facewise.video.recognize import (
    ExpressionPredictor,
    ExpressionTrack,
    IdentityOptions,
    TrackIdentity,
    expression_crop,
    load_expression_model,
)
from facewise.video.records import EventFn, TrackSummary, VideoEvent, VideoResult
from facewise.video.scenecut import CutOptions, SceneCutDetector
from facewise.video.tracker import Track, Tracker, TrackerOptions

if TYPE_CHECKING:
    from facewise.api import FaceWise
    from facewise.core.analysis import Analyzer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoOptions:
    """Everything that tunes a run; the defaults suit 25-30 fps footage."""

    decode: DecodeOptions = field(default_factory=DecodeOptions)
    tracker: TrackerOptions = field(default_factory=TrackerOptions)
    identity: IdentityOptions = field(default_factory=IdentityOptions)
    cuts: CutOptions = field(default_factory=CutOptions)
    refine_small_px: float = 48.0  # re-detect landmarks on an upscaled crop below this face height; 0 = never
    expression: bool = False  # per-track expression timeline (needs facewise.models.attributes.expression weights)
    expression_alpha: float = 0.3  # EMA weight of the newest frame
    challenge: tuple[str, ...] = ()  # active liveness: head motions asked of the largest face (core.challenge)
    challenge_time_limit_s: float = 10.0




@dataclass(frozen=True)
class RunHooks:
    """Callbacks of a run: ``on_open(reader)`` once the video is open (``reader.info``,
    ``reader.expected_frames``), ``on_frame(frame)`` after each processed frame, ``on_event(event)`` for
    entered / identified / left as they happen; ``on_decoded()`` for every decoded frame, kept or skipped (from
    the decoding thread: a cancel or deadline check that holds however sparse the sampling; what it raises
    ends the run and reaches the caller)."""

    on_open: Callable[[VideoReader], None] | None = None
    on_frame: Callable[[Frame], None] | None = None
    on_event: EventFn | None = None
    on_decoded: Callable[[], None] | None = None  # every decoded frame, in the decoding thread; raise to stop


class HasEngine(Protocol):
    """A :class:`~facewise.api.FaceWise` or a :class:`~facewise.collection.Collection`: what holds an engine."""

    engine: FaceEngine


def tracking_detector(fw: HasEngine, low_score: float) -> tuple[Detector, Detector | None]:
    """:meth:`FaceEngine.tracking_detectors` of ``fw``'s engine: the profile's detector with a low score
    threshold, plus the same model tuned for small crops where the detector can be scaled so (YuNet)."""
    return fw.engine.tracking_detectors(low_score)


def as_collection(fw: FaceWise | Collection) -> Collection:
    """The collection a door works on: a :class:`Collection`, or that of a :class:`~facewise.api.FaceWise`."""
    return fw if isinstance(fw, Collection) else fw.coll


class VideoProcessor:
    """Runs the video pipeline of one collection (a :class:`~facewise.collection.Collection`, or that of a
    :class:`~facewise.api.FaceWise`): its engine's profile, its gallery."""

    def __init__(self, fw: FaceWise | Collection, options: VideoOptions | None = None,
                 expression_model: ExpressionPredictor | None = None, analyzer: Analyzer | None = None) -> None:
        self.coll = as_collection(fw)
        self.engine = self.coll.engine.load()
        self.options = options or VideoOptions()
        self.detector, self.refiner = self.engine.tracking_detectors(self.options.tracker.low_score)
        self.expression_model = expression_model
        if self.options.expression and self.expression_model is None:
            self.expression_model = load_expression_model()
        # the challenge's head pose and liveness models, loaded once here (a missing model fails before any video
        # is opened); it follows the faces the profile's detector itself would keep (the tracker keeps weaker ones),
        # as `facewise challenge` and a live session do
        self.analyzer = analyzer
        if self.options.challenge and self.analyzer is None:
            from facewise.core.analysis import Analyzer

            self.analyzer = Analyzer()
        self.challenge_min_score = self.engine.detector_score_threshold

    def new_challenge(self) -> ChallengeRun | None:
        """A fresh challenge for one run, or None when the options ask for none."""
        if not self.options.challenge or self.analyzer is None:
            return None
        return ChallengeRun(list(self.options.challenge), self.analyzer,
                            ChallengePolicy(time_limit_s=self.options.challenge_time_limit_s))

    def run(self, source: VideoSource, outputs: OutputOptions | None = None,
            hooks: RunHooks | None = None) -> VideoResult:
        """Process a whole video (or a stream until it ends / Ctrl-C). See the module docstring for errors."""
        hooks = hooks or RunHooks()
        reader = VideoReader(source, self.options.decode, hooks.on_decoded)  # VideoError if it cannot be opened
        failure: type[VideoError] = VideoError
        with reader:
            run = _Run(self, reader, outputs, hooks.on_event)
            if hooks.on_open:
                hooks.on_open(reader)
            t0 = time.perf_counter()
            try:
                for frame in reader:
                    run.process(frame)
                    if hooks.on_frame:
                        hooks.on_frame(frame)
            except VideoError as exc:
                run.result.error, failure = str(exc), type(exc)
            except KeyboardInterrupt:
                run.result.interrupted = True
                log.warning("%s: interrupted; writing what was processed", reader.name)
            finally:
                run.result.stats.wall_s = time.perf_counter() - t0
                run.result.stats.frames_decoded = reader.stats.decoded
                run.result.stats.frames_dropped = reader.stats.dropped
                run.finish()
        if run.result.error is not None:
            raise failure(run.result.error, partial=run.result)
        return run.result


class _Run:
    """The state of one run (kept apart so a processor can run several videos)."""

    def __init__(self, proc: VideoProcessor, reader: VideoReader, outputs: OutputOptions | None,
                 on_event: EventFn | None) -> None:
        self.proc, self.coll, self.engine, self.opts = proc, proc.coll, proc.engine, proc.options
        self.reader, self.outputs, self.on_event = reader, outputs, on_event
        self.tracker = Tracker(self.opts.tracker, ScoreScale.of(self.engine.profile))
        self.cut_detector = SceneCutDetector(self.opts.cuts)
        self.decision = self.coll.decision()  # one snapshot for the whole run
        self.collection = self.coll.name
        self.identities: dict[int, TrackIdentity] = {}
        self.expressions: dict[int, ExpressionTrack] = {}
        d = self.opts.decode
        self.result = VideoResult(
            source=reader.name, info=reader.info, profile=self.engine.profile.name, collection=self.collection,
            threshold=self.decision.threshold, threshold_source=self.decision.source,
            sampling={"stride": d.stride, "fps": d.fps, "start_s": d.start_s, "duration_s": d.duration_s})
        self.first_t: float | None = None
        self.last_t: float | None = None
        self.challenge = proc.new_challenge()
        self.asked: tuple[str | None, bool] | None = None
        self.writer: AnnotatedWriter | None = None
        self.inputs = InputFiles([reader.name])  # an output never overwrites the video it reads
        if outputs is not None:
            outputs.out_dir.mkdir(parents=True, exist_ok=True)
            self.result.outputs = result_paths(outputs.out_dir, outputs)
            if outputs.annotated_video:
                info = reader.info
                src_fps = info.fps or 30.0
                out_fps = d.fps if d.fps is not None else src_fps / d.stride
                self.writer = AnnotatedWriter(outputs.out_dir / outputs.video_name, min(out_fps, src_fps),
                                              (info.width, info.height), self.inputs)

    # -- per frame --------------------------------------------------------------------------------
    def process(self, frame: Frame) -> None:
        px, t = frame.pixels, frame.t_ms
        stats = self.result.stats
        self.first_t = t if self.first_t is None else self.first_t
        self.last_t = t
        stats.frames_processed += 1
        t0 = time.perf_counter()
        dets = [d for d in self.proc.detector.detect(px) if d.score >= self.opts.tracker.low_score]
        faces = self.engine.faces_of(px, dets)
        stats.detect_s += time.perf_counter() - t0
        stats.faces += len(faces)
        if self.challenge is not None:
            self.challenge_step(px, faces, t)
        cut = self.cut_detector(px)
        stats.cuts += cut
        step = self.tracker.update(faces, t, embed=lambda fs: self.embed(px, fs), cut=cut)
        ident = self.identity
        need = [f for tr, f in step.matched if f.embedding is None and ident(tr).needs_embedding(f)]
        self.embed(px, need)
        updated: list[Track] = []
        for tr, face in step.matched:
            if face.embedding is not None:
                updated.append(tr)
            ident(tr).observe(face, px, t, frame.index)
        for tr in step.confirmed:  # before this frame's naming, so "entered" precedes "identified"
            self.emit("entered", tr, ident(tr), tr.first_ms)
        self.decide(updated, t)
        if self.proc.expression_model is not None:
            self.expression(frame, [tr for tr, _ in step.matched if tr.confirmed])
        for tr in step.ended:
            self.end_track(tr)
        for tr in step.dropped:
            self.forget(tr)
        if self.writer is not None:
            self.writer.write(px, [self.draw_item(tr) for tr, _ in step.matched])

    def identity(self, tr: Track) -> TrackIdentity:
        idn = self.identities.get(tr.id)
        if idn is None:
            idn = self.identities[tr.id] = TrackIdentity(self.opts.identity)
        return idn

    def embed(self, px: np.ndarray, faces: list[Face]) -> None:
        faces = [f for f in faces if f.embedding is None]
        if not faces:
            return
        t0 = time.perf_counter()
        if self.proc.refiner is not None and self.opts.refine_small_px > 0:
            for f in faces:
                if f.box.height < self.opts.refine_small_px:
                    self.refine(px, f)
        self.result.stats.embeddings += self.engine.embed_missing(px, faces)
        self.result.stats.embed_s += time.perf_counter() - t0

    def refine(self, px: np.ndarray, face: Face, target: float = 112.0) -> None:
        """Re-detect a small face on an upscaled crop around it; keep the landmarks that match its box."""
        import cv2

        b = face.box
        side = max(b.width, b.height, 1.0)
        cx, cy = b.center
        h, w = px.shape[:2]
        x1, y1 = max(0, int(cx - side)), max(0, int(cy - side))
        x2, y2 = min(w, int(cx + side)), min(h, int(cy + side))
        if x2 - x1 < 4 or y2 - y1 < 4:
            return
        k = target / side
        crop = cv2.resize(px[y1:y2, x1:x2], None, fx=k, fy=k, interpolation=cv2.INTER_CUBIC)
        assert self.proc.refiner is not None
        found = self.proc.refiner.detect(crop)
        if not found:
            return
        boxes = [Box(d.box.x1 / k + x1, d.box.y1 / k + y1, d.box.x2 / k + x1, d.box.y2 / k + y1) for d in found]
        best = max(range(len(found)), key=lambda i: boxes[i].iou(b))
        if boxes[best].iou(b) < 0.3:
            return
        face.landmarks = (found[best].landmarks / k + np.array([x1, y1], np.float32)).astype(np.float32)
        self.result.stats.refined += 1

    def decide(self, tracks: list[Track], t: float) -> None:
        named = [(tr, tmpl) for tr in tracks if (tmpl := self.identity(tr).template) is not None]
        if not named:  # a track whose vectors sum to zero has no template to search with
            return
        k = self.opts.identity.top_k
        hits = self.coll.search(np.stack([tmpl for _, tmpl in named]), k=k)
        for (tr, tmpl), h in zip(named, hits, strict=True):
            tr.appearance = tmpl
            idn = self.identity(tr)
            if idn.decide(h, self.decision) and tr.confirmed:
                self.emit("identified", tr, idn, t)

    def challenge_step(self, px: np.ndarray, faces: list[Face], t: float) -> None:
        """The frame's confident faces to the challenge; a ``challenge`` event when the step asked for changes."""
        run = self.challenge
        if run is None or run.finished:
            return
        sure = [f for f in faces if f.det_score >= self.proc.challenge_min_score]
        boxes = np.array([[f.box.x1, f.box.y1, f.box.x2, f.box.y2] for f in sure], np.float64).reshape(-1, 4)
        run.observe(t / 1000.0, px, boxes, [f.landmarks for f in sure])
        status = run.status()
        if (status["current"], status["finished"]) != self.asked:
            self.asked = (status["current"], status["finished"])
            ev = VideoEvent("challenge", 0, None, 0.0, t, detail=status)
            self.result.events.append(ev)
            if self.on_event:
                self.on_event(ev)

    def expression(self, frame: Frame, tracks: list[Track]) -> None:
        model = self.proc.expression_model
        if not tracks or model is None:
            return
        bgr = frame.pixels[:, :, ::-1]
        crops = [np.ascontiguousarray(expression_crop(bgr, tr.face.box)) for tr in tracks]
        probs = model.predict(crops)
        for tr, p in zip(tracks, probs, strict=True):
            ex = self.expressions.get(tr.id)
            if ex is None:
                ex = self.expressions[tr.id] = ExpressionTrack(tuple(model.CLASSES), self.opts.expression_alpha)
            ex.add(p, frame.t_ms)

    def draw_item(self, tr: Track) -> DrawItem:
        idn = self.identity(tr)
        label = f"#{tr.id} {idn.person or 'unknown'}"
        if idn.updates:
            label += f" {idn.score:.2f}"
        ex = self.expressions.get(tr.id)
        if ex is not None and ex.current:
            label += f" {ex.current}"
        b = tr.face.box
        return DrawItem(tr.id, (b.x1, b.y1, b.x2, b.y2), label, idn.person is not None, tr.confirmed)

    def emit(self, kind: str, tr: Track, idn: TrackIdentity, t: float) -> None:
        ev = VideoEvent(kind, tr.id, idn.person, idn.score, t)
        self.result.events.append(ev)
        if self.on_event:
            self.on_event(ev)

    # -- end of tracks and of the run -------------------------------------------------------------
    def end_track(self, tr: Track) -> None:
        idn = self.identity(tr)
        self.emit("left", tr, idn, tr.last_ms)
        best = idn.best
        summary = TrackSummary(
            track=tr.id, person=idn.person, person_id=idn.person_id, score=idn.score, far=idn.far,
            candidate=idn.candidate, first_ms=tr.first_ms, last_ms=tr.last_ms, frames=tr.hits,
            vectors=idn.n_vectors, best_frame_ms=best.t_ms if best else None,
            best_box=best.face.box.as_list() if best else None,
            best_quality=round(best.face.quality.score, 3) if best else None)
        if best is not None and self.outputs is not None and self.outputs.thumbnails:
            summary.best_frame = save_thumbnail(self.outputs.out_dir, tr.id, best.crop, self.inputs)
        ex = self.expressions.pop(tr.id, None)
        if ex is not None:
            summary.expression = ex.to_dict()
        self.result.tracks.append(summary)
        self.forget(tr)

    def forget(self, tr: Track) -> None:
        self.identities.pop(tr.id, None)
        self.expressions.pop(tr.id, None)

    def finish(self) -> None:
        for tr in self.tracker.finish():
            self.end_track(tr)
        if self.challenge is not None:
            self.result.challenge = self.challenge.result()
        self.result.tracks.sort(key=lambda s: (s.first_ms, s.track))
        stats = self.result.stats
        if self.first_t is not None and self.last_t is not None:
            d = self.opts.decode
            step = 1000.0 / d.fps if d.fps else self.reader.frame_interval_ms * d.stride
            stats.video_s = (self.last_t - self.first_t + step) / 1000
        if self.writer is not None:
            self.writer.close()
        if self.outputs is not None and self.outputs.timeline:
            write_timeline(self.result, self.outputs.out_dir, self.inputs)
