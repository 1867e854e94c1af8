"""Video jobs: upload -> job id -> poll progress -> timeline. One background worker thread runs them in turn.

The work itself is a pluggable *runner*: ``runner(task) -> dict`` (the job's result, JSON-able). The
default, :func:`video_runner`, is :class:`facewise.video.VideoProcessor` (detect, track, name; one
thumbnail per track). Pass another runner to :class:`JobManager` (or ``create_app``) to replace it.

Erasure: a job's result and thumbnails are derived from the gallery. :meth:`JobManager.erase` (an erasure
listener) de-identifies the tracks of an erased person (name, id, score, candidate, thumbnail) and drops
every job of an erased collection with its files. Reads check again against the gallery (``gallery``), so a
delete made by another process (the CLI on the same gallery) is honoured too, and a re-created collection
of the same name never shows the old collection's jobs.
"""

from __future__ import annotations

import logging
import queue
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from facewise.api import FaceWise
from facewise.errors import FacewiseError, NotFoundError
from facewise.gallery.maintenance import Erasure

if TYPE_CHECKING:
    from facewise.video.decode import Frame, VideoReader
    from facewise.video.records import VideoResult

log = logging.getLogger(__name__)

STATES = ("queued", "running", "done", "failed", "cancelled")
JOB_FILE = re.compile(r"([0-9a-f]{16})\.video(\.out|\.mp4)?")  # an upload, its output folder, its output video
MAX_THUMBNAILS = 200  # track thumbnails one job keeps (a track past them has none)
MAX_THUMBNAIL_BYTES = 16 * 1024 * 1024  # and their bytes together


class JobCancelledError(Exception):
    pass


class JobTimeoutError(Exception):
    pass


class QueueFullError(Exception):
    """No room for another job (per key or overall); the message says which."""


@dataclass
class VideoTask:
    """What a runner gets: the video file, a collection handle and callbacks to report through."""

    path: Path
    name: str  # the uploaded file's name
    fw: FaceWise
    fps: float
    report: Callable[[float], None]  # fraction done, 0..1; raises JobCancelledError when the job was cancelled
    add_thumbnail: Callable[[bytes], int | None]  # JPEG -> index for GET /v1/jobs/{id}/thumbnails/{index}; None: full
    set_video: Callable[[Path], None] | None = None  # the annotated MP4 file, moved into the job's folder
    max_pixels: int | None = None  # a frame's width x height, checked when the video is opened
    max_seconds: float | None = None  # the video's length, checked when it is opened and while it is decoded
    check: Callable[[], None] = lambda: None  # raises JobCancelledError / JobTimeoutError; call it per decoded frame
    options: dict[str, Any] = field(default_factory=dict)  # what the job's kind takes (redaction: mode, style...)


VideoRunner = Callable[[VideoTask], dict[str, Any]]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class Job:
    id: str
    collection: str
    owner: str
    filename: str
    fps: float
    stamp: str = ""  # the collection's created_at when the job was submitted: a re-created one differs
    state: str = "queued"
    progress: float = 0.0
    created_at: str = field(default_factory=_now)
    started_at: str | None = None
    finished_at: str | None = None
    error: dict[str, str] | None = None
    result: dict[str, Any] | None = None
    thumbnails: list[bytes] = field(default_factory=list)
    video: Path | None = None  # the annotated H.264 MP4, a file in the jobs folder (streamed on download)
    thumbnail_bytes: int = 0
    path: Path | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    kind: str = "video"  # which runner: "video" (identify) or "redact"
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self, with_result: bool = True) -> dict[str, Any]:
        d = {"id": self.id, "collection": self.collection, "filename": self.filename, "state": self.state,
             "progress": round(self.progress, 4), "fps": self.fps, "created_at": self.created_at,
             "started_at": self.started_at, "finished_at": self.finished_at, "error": self.error,
             "thumbnails": len(self.thumbnails), "annotated_video": self.video is not None, "kind": self.kind}
        if with_result:
            d["result"] = self.result
        return d


class GalleryView(Protocol):
    """What the jobs ask the gallery on every read (see the module's note on erasure)."""

    def collection_stamp(self, collection: str) -> str | None: ...  # None: no such collection

    def person_exists(self, collection: str, person: str | int) -> bool: ...


class JobManager:
    """Queue, worker thread and the last ``keep`` jobs (in memory); uploads live in ``video_dir``. At most
    ``per_key`` queued or running jobs per key and ``total`` overall; a job running longer than ``max_seconds``
    fails with ``job_timeout``. ``runners`` adds runners for other job kinds (``Job.kind``; ``runner`` runs
    ``"video"``)."""

    def __init__(self, runner: VideoRunner, face_wise: Callable[[str], FaceWise], keep: int = 50,
                 video_dir: Path | None = None, gallery: GalleryView | None = None,
                 per_key: int = 2, total: int = 16, max_seconds: float = 1800.0,
                 video_limits: tuple[int | None, float | None] = (None, None),
                 runners: dict[str, VideoRunner] | None = None) -> None:
        self.runner, self.face_wise, self.keep = runner, face_wise, keep
        self.runners: dict[str, VideoRunner] = {**(runners or {}), "video": runner}
        self.video_dir, self.gallery = video_dir, gallery
        self.per_key, self.total, self.max_seconds, self.video_limits = per_key, total, max_seconds, video_limits
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._remove_stale()

    def _remove_stale(self) -> None:
        """A killed process's uploads and outputs (jobs die with their process; only job files are touched)."""
        if self.video_dir is None or not self.video_dir.is_dir():
            return
        stale = [f for f in self.video_dir.iterdir() if JOB_FILE.fullmatch(f.name)]
        for f in stale:
            _remove(f)
        if stale:
            log.warning("removed %d stale video job file(s) from %s", len(stale), self.video_dir)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="facewise-jobs", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        with self._lock:
            jobs = list(self._jobs.values())
            for job in jobs:
                job.cancel.set()
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=10)
            self._thread = None
        for job in jobs:  # jobs die with the process: their annotated videos go with them
            _drop_video(job)

    def check_room(self, owner: str) -> None:
        """Raise :class:`QueueFullError` when ``owner`` (or everyone together) has no room for another job."""
        with self._lock:
            self._check_room(owner)

    def _check_room(self, owner: str) -> None:
        active = [j for j in self._jobs.values() if j.state in ("queued", "running")]
        if sum(j.owner == owner for j in active) >= self.per_key:
            raise QueueFullError(f"key {owner} has {self.per_key} video jobs queued or running; wait for one to end")
        if len(active) >= self.total:
            raise QueueFullError(f"the server has {self.total} video jobs queued or running; try again later")

    def submit(self, job: Job, path: Path) -> Job:
        job.path = path
        with self._lock:
            try:
                self._check_room(job.owner)
            except QueueFullError:
                path.unlink(missing_ok=True)
                raise
            self._evict()
            self._jobs[job.id] = job
        self._queue.put(job.id)
        log.info("video job %s queued (%s, collection %s)", job.id, job.filename, job.collection)
        return job

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None or not self._current(job, {}):
            raise NotFoundError(f"job {job_id!r} does not exist (finished jobs are kept for a while only)")
        self._recheck_people(job)
        return job

    def jobs(self) -> list[Job]:
        with self._lock:
            jobs = sorted(self._jobs.values(), key=lambda j: j.created_at, reverse=True)
        stamps: dict[str, str | None] = {}
        return [j for j in jobs if self._current(j, stamps)]

    # -- erasure ------------------------------------------------------------------------------------
    def erase(self, event: Erasure) -> None:
        """An erasure listener: forget an erased collection's jobs (with their files); de-identify an erased
        person's tracks. Single samples change no job (a track names a person, not a sample)."""
        with self._lock:
            jobs = [j for j in self._jobs.values() if j.collection == event.collection]
            if event.whole_collection:
                for job in jobs:
                    del self._jobs[job.id]

        def named(track: dict[str, Any]) -> bool:
            return track.get("person_id") == event.person_id or (
                event.person_name is not None and event.person_name in (track.get("person"), track.get("candidate")))

        for job in jobs:
            if event.whole_collection:
                self._drop(job)
            elif event.person_id is not None:
                _scrub(job, named)
        if event.whole_collection and jobs:
            log.info("erased %d video job(s) of deleted collection %r", len(jobs), event.collection)

    def _drop(self, job: Job) -> None:
        job.cancel.set()
        if job.state == "queued":
            job.state, job.finished_at = "cancelled", _now()
        job.result, job.thumbnails = None, []
        _drop_video(job)
        if job.path is not None:
            _remove(job.path)
            _remove(job.path.with_name(job.path.name + ".out"))

    def _current(self, job: Job, stamps: dict[str, str | None]) -> bool:
        """Does the job's collection still exist as the one it ran on? If not, drop the job now."""
        if self.gallery is None or not job.stamp:
            return True
        if job.collection not in stamps:
            stamps[job.collection] = self.gallery.collection_stamp(job.collection)
        if stamps[job.collection] == job.stamp:
            return True
        with self._lock:
            self._jobs.pop(job.id, None)
        self._drop(job)
        return False

    def _recheck_people(self, job: Job) -> None:
        """De-identify tracks naming a person the gallery no longer holds (erased by another process)."""
        if self.gallery is None or not job.result:
            return
        gallery = self.gallery
        known: dict[str | int, bool] = {}

        def gone(key: str | int | None) -> bool:
            if key is None or key == "unknown":
                return False
            if key not in known:
                known[key] = gallery.person_exists(job.collection, key)
            return not known[key]

        _scrub(job, lambda t: gone(t.get("person_id")) or gone(t.get("candidate")))

    def cancel(self, job_id: str) -> Job:
        job = self.get(job_id)
        job.cancel.set()
        if job.state == "queued":
            job.state, job.finished_at = "cancelled", _now()
            if job.path is not None:  # the worker will skip it: its upload goes now
                job.path.unlink(missing_ok=True)
        return job

    def counts(self) -> dict[str, float]:
        with self._lock:
            states = [j.state for j in self._jobs.values()]
        return {f'state="{s}"': float(states.count(s)) for s in STATES}

    def _evict(self) -> None:
        done = [j for j in self._jobs.values() if j.state in ("done", "failed", "cancelled")]
        for job in sorted(done, key=lambda j: j.created_at)[: max(0, len(self._jobs) - self.keep + 1)]:
            del self._jobs[job.id]
            _drop_video(job)

    def _work(self) -> None:
        while (job_id := self._queue.get()) is not None:
            with self._lock:
                job = self._jobs.get(job_id)
            if job is None or job.state != "queued":
                if job is not None and job.path is not None:
                    job.path.unlink(missing_ok=True)
                continue
            self._run(job)

    def _run(self, job: Job) -> None:
        job.state, job.started_at = "running", _now()
        t0 = time.perf_counter()

        def check() -> None:
            if job.cancel.is_set():
                raise JobCancelledError
            if time.perf_counter() - t0 > self.max_seconds:
                raise JobTimeoutError

        def report(fraction: float) -> None:
            check()
            job.progress = min(1.0, max(job.progress, float(fraction)))

        def add_thumbnail(jpeg: bytes) -> int | None:
            if len(job.thumbnails) >= MAX_THUMBNAILS or job.thumbnail_bytes + len(jpeg) > MAX_THUMBNAIL_BYTES:
                return None
            job.thumbnails.append(jpeg)
            job.thumbnail_bytes += len(jpeg)
            return len(job.thumbnails) - 1

        def set_video(mp4: Path) -> None:
            assert job.path is not None
            dest = job.path.with_name(job.path.name + ".mp4")
            mp4.replace(dest)
            job.video = dest

        try:
            assert job.path is not None
            task = VideoTask(job.path, job.filename, self.face_wise(job.collection), job.fps, report,
                             add_thumbnail, set_video, max_pixels=self.video_limits[0],
                             max_seconds=self.video_limits[1], check=check, options=job.options)
            runner = self.runners.get(job.kind)
            if runner is None:
                raise FacewiseError(f"no runner for {job.kind} jobs on this server")
            job.result = runner(task)
            job.state, job.progress = "done", 1.0
        except JobCancelledError:
            job.state = "cancelled"
        except JobTimeoutError:
            job.state, job.error = "failed", {"code": "job_timeout",
                                              "message": f"{job.filename}: stopped after the "
                                                         f"{self.max_seconds:.0f}-second limit of a job"}
        except FacewiseError as exc:  # the message names the upload, not the server's file
            message = str(exc).replace(str(job.path), job.filename)
            job.state, job.error = "failed", {"code": exc.code, "message": message}
            partial = getattr(exc, "partial", None)
            if isinstance(partial, dict):
                job.result = partial
        except Exception as exc:  # a bug in a runner must not kill the worker
            log.exception("video job %s crashed", job.id)
            job.state, job.error = "failed", {"code": "internal_error", "message": f"{type(exc).__name__}: {exc}"}
        finally:
            job.finished_at = _now()
            if job.path is not None:
                job.path.unlink(missing_ok=True)
            with self._lock:
                erased = job.id not in self._jobs  # its collection was deleted while it ran
            if erased or job.state != "done":
                _drop_video(job)
            if erased:
                job.result, job.thumbnails = None, []
            log.info("video job %s %s in %.1f s", job.id, job.state, time.perf_counter() - t0)


def new_job(collection: str, owner: str, filename: str, fps: float, stamp: str = "", kind: str = "video",
            options: dict[str, Any] | None = None) -> Job:
    return Job(id=uuid.uuid4().hex[:16], collection=collection, owner=owner, filename=filename, fps=fps,
               stamp=stamp, kind=kind, options=dict(options or {}))


def _drop_video(job: Job) -> None:
    video, job.video = job.video, None
    if video is not None:
        video.unlink(missing_ok=True)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


ERASED_TRACK = {"person": "unknown", "person_id": None, "score": None, "far": None, "candidate": None,
                "thumbnail": None, "erased": True}


def _scrub(job: Job, erased: Callable[[dict[str, Any]], bool]) -> int:
    """De-identify the tracks for which ``erased(track)`` holds: no name, id, score or candidate, and their
    thumbnail's bytes dropped; events of those tracks lose the name and score too. Returns tracks changed."""
    result = job.result
    if not result:
        return 0
    hit: set[Any] = set()
    tracks = result.get("tracks") or []
    for i, track in enumerate(tracks):  # new dicts in place: a reader serialising the result never sees one grow
        if track.get("erased") or not erased(track):
            continue
        index = track.get("thumbnail")
        if isinstance(index, int) and 0 <= index < len(job.thumbnails):
            job.thumbnails[index] = b""
        tracks[i] = {**track, **ERASED_TRACK}
        hit.add(track.get("track"))
    events = result.get("events") or []
    for i, event in enumerate(events):
        if event.get("track") in hit:
            events[i] = {**event, "person": "unknown", "score": None}
    if hit:  # the annotated video shows the erased person's face and name on its frames: it goes too
        _drop_video(job)
    return len(hit)


# -- the default runner: facewise.video ----------------------------------------------------------------
def _timeline(result: VideoResult, task: VideoTask, out_dir: Path) -> dict[str, Any]:
    """A :class:`~facewise.video.VideoResult` as JSON, each track's thumbnail moved into the job."""
    d = result.to_dict()
    d.pop("outputs", None)
    d["source"] = task.name
    if d.get("video"):
        d["video"]["source"] = task.name
    for track in d["tracks"]:
        rel = track.pop("best_frame", None)
        track["thumbnail"] = None
        if rel and (out_dir / rel).is_file():  # None once the job holds its most thumbnails
            track["thumbnail"] = task.add_thumbnail((out_dir / rel).read_bytes())
    return d


MAX_ANNOTATED_BYTES = 64 * 1024 * 1024


def _keep_video(task: VideoTask, mp4: Path) -> None:
    """Hand the annotated video's file to the job (for the web page's player), unless it is too big to keep."""
    if task.set_video is None or not mp4.is_file():
        return
    size = mp4.stat().st_size
    if size > MAX_ANNOTATED_BYTES:
        log.warning("%s: annotated video of %d bytes not kept (limit %d)", task.name, size, MAX_ANNOTATED_BYTES)
        return
    task.set_video(mp4)


def video_runner(task: VideoTask) -> dict[str, Any]:
    """Track and name every person with :class:`facewise.video.VideoProcessor`; thumbnails per track."""
    from facewise.video import DecodeOptions, OutputOptions, RunHooks, VideoError, VideoOptions, VideoProcessor

    out_dir = task.path.with_name(task.path.name + ".out")
    outputs = OutputOptions(out_dir, annotated_video=True, thumbnails=True, timeline=False)
    from facewise.video.decode import DEFAULT_MAX_FRAME_PIXELS

    decode = DecodeOptions(fps=task.fps, max_duration_s=task.max_seconds,
                           max_pixels=task.max_pixels or DEFAULT_MAX_FRAME_PIXELS)
    processor = VideoProcessor(task.fw, VideoOptions(decode=decode))
    duration = {"ms": 0.0}

    def on_open(reader: VideoReader) -> None:
        duration["ms"] = reader.info.duration_ms or 0.0

    def on_frame(frame: Frame) -> None:
        task.report(frame.t_ms / duration["ms"] if duration["ms"] else 0.0)

    try:
        hooks = RunHooks(on_open=on_open, on_frame=on_frame, on_decoded=task.check)
        result = processor.run(task.path, outputs=outputs, hooks=hooks)
        _keep_video(task, out_dir / outputs.video_name)
        return _timeline(result, task, out_dir)
    except VideoError as exc:  # ended early: keep the timeline of what was decoded
        partial = _timeline(exc.partial, task, out_dir) if exc.partial is not None else None
        raise type(exc)(str(exc), partial=partial) from None
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
