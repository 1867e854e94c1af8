"""Video decoding in a background thread: files, webcams and network streams through OpenCV's FFmpeg backend.

``VideoReader(source, DecodeOptions(...))`` yields :class:`Frame` records (RGB uint8 pixels, the frame's
presentation time in milliseconds, its index in the source). Decoding runs in its own thread and hands
frames over through a bounded queue, so decoding overlaps with detection and memory stays bounded.

Sources: a file path (mp4, avi, webm, mkv, mov... whatever FFmpeg reads), a webcam index (``0`` or ``"0"``)
or a URL (``rtsp://``, ``rtmp://``, ``http(s)://``, ``udp://``...).

Sampling: ``stride=N`` keeps every N-th decoded frame; ``fps=F`` keeps frames so that kept timestamps are at
least ``1000/F`` ms apart (works with variable frame rate; ``F`` >= :data:`MIN_FPS`). Skipped frames are only
grabbed, never converted.

Limits: ``max_pixels`` and ``max_duration_s`` are checked from the container when the source opens, and the
length again from the timestamps of what is decoded (a container may declare no length, or a frame rate that
hides it): a file that decodes past ``max_duration_s`` raises :class:`VideoLimitError` there. ``on_decoded`` (a
callable given to :class:`VideoReader`) runs in the decoding thread for *every* decoded frame, kept or skipped;
whatever it raises (a cancelled job, a deadline) stops decoding and is raised to the consumer as it is.

Errors: :class:`VideoError`. A source that cannot be opened (missing, empty, not a video, an MP4 cut before
its index) raises when the reader is opened. A file that *ends early* -- fewer frames or less time than its
container declares, the signature of a truncated or corrupt file -- raises after every decodable frame has
been yielded, so callers keep what was processed before the fault (the video pipeline attaches its partial
result to the error as ``VideoError.partial``). Live sources (webcams, streams without a length) simply end.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facewise.errors import EXIT_INPUT, FacewiseError, ValidationError

log = logging.getLogger(__name__)

URL_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_SENTINEL = object()


class VideoError(FacewiseError):
    """A video could not be opened, or ended before its declared length (truncated / corrupt).

    ``partial`` holds what was computed before the fault when the caller had started processing
    (for the video pipeline: a :class:`~facewise.video.process.VideoResult` with ``error`` set), else ``None``.
    """

    code = "bad_video"
    exit_code = EXIT_INPUT
    http_status = 422

    def __init__(self, message: str, partial: Any = None) -> None:
        super().__init__(message)
        self.partial = partial


class VideoLimitError(VideoError):
    """A video is larger (frame size) or longer than the reader was allowed to open."""

    code = "video_too_large"
    http_status = 413


DEFAULT_MAX_FRAME_PIXELS = 7680 * 4320  # 8K
MIN_FPS = 0.01  # the sparsest sampling: one frame per 100 s of video


@dataclass(frozen=True)
class DecodeOptions:
    """Which frames to decode and hand over.

    ``stride`` and ``fps`` are exclusive ways to sample; ``start_s`` seeks (files only); ``duration_s`` stops
    after that much video time. ``queue_size`` bounds the frames waiting between the decoder and the consumer.
    ``drop_when_behind`` (default: only for live sources) drops the oldest queued frame instead of blocking,
    so a slow consumer stays close to real time on a webcam or stream. ``max_pixels`` (width x height of a frame)
    and ``max_duration_s`` (the container's length) are checked when the source is opened
    (:class:`VideoLimitError`), before any frame is handed over.
    """

    stride: int = 1
    fps: float | None = None
    start_s: float = 0.0
    duration_s: float | None = None
    queue_size: int = 8
    drop_when_behind: bool | None = None
    max_pixels: int | None = DEFAULT_MAX_FRAME_PIXELS
    max_duration_s: float | None = None

    def __post_init__(self) -> None:
        if self.stride < 1:
            raise FacewiseError(f"stride must be >= 1, got {self.stride}")
        if self.fps is not None and not self.fps >= MIN_FPS:
            raise ValidationError(f"fps must be at least {MIN_FPS:g} (one frame per {1 / MIN_FPS:.0f} s of video), "
                                  f"got {self.fps:g}")
        if self.fps is not None and self.stride != 1:
            raise FacewiseError("give stride or fps, not both")
        if self.start_s < 0:
            raise FacewiseError(f"start must be >= 0 s, got {self.start_s}")
        if self.duration_s is not None and self.duration_s <= 0:
            raise FacewiseError(f"duration must be > 0 s, got {self.duration_s}")
        if self.queue_size < 1:
            raise FacewiseError(f"queue_size must be >= 1, got {self.queue_size}")


@dataclass(frozen=True)
class VideoInfo:
    """What the container says (``frame_count``/``duration_ms`` are ``None`` for live sources)."""

    source: str
    width: int
    height: int
    fps: float
    frame_count: int | None
    duration_ms: float | None
    live: bool

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "width": self.width, "height": self.height, "fps": round(self.fps, 3),
                "frame_count": self.frame_count,
                "duration_s": round(self.duration_ms / 1000, 3) if self.duration_ms is not None else None,
                "live": self.live}


@dataclass
class Frame:
    """One decoded frame: ``pixels`` (H, W, 3) RGB uint8, ``t_ms`` its timestamp, ``index`` its frame number."""

    index: int
    t_ms: float
    pixels: np.ndarray


@dataclass
class DecodeStats:
    decoded: int = 0  # frames read from the source (kept or skipped)
    yielded: int = 0  # frames handed to the consumer
    dropped: int = 0  # frames dropped because the consumer was behind (live sources)
    last_t_ms: float | None = None


VideoSource = str | int | os.PathLike[str]


def parse_source(source: VideoSource) -> str | int:
    """A webcam index (``0``, ``"0"``) becomes an int; URLs and paths stay strings."""
    if isinstance(source, bool):
        raise FacewiseError(f"not a video source: {source!r}")
    if isinstance(source, int):
        return source
    text = os.fspath(source)
    if text.strip().isdigit() and not Path(text).exists():
        return int(text)
    return text


def is_url(source: str | int) -> bool:
    return isinstance(source, str) and bool(URL_RE.match(source))


STREAM_TIMEOUT_MS = 10_000  # give up on a network stream that does not open / deliver for this long


def _open_capture(src: str | int) -> cv2.VideoCapture:
    if isinstance(src, int):
        return cv2.VideoCapture(src)
    if is_url(src) and hasattr(cv2, "CAP_PROP_READ_TIMEOUT_MSEC"):
        return cv2.VideoCapture(src, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, STREAM_TIMEOUT_MS,
                                                      cv2.CAP_PROP_READ_TIMEOUT_MSEC, STREAM_TIMEOUT_MS])
    return cv2.VideoCapture(src, cv2.CAP_FFMPEG)


def _check_openable(src: str | int) -> None:
    if isinstance(src, int) or is_url(src):
        return
    path = Path(src)
    if not path.exists():
        raise VideoError(f"{src}: no such file")
    if path.is_dir():
        raise VideoError(f"{src}: is a folder, not a video")
    if path.stat().st_size == 0:
        raise VideoError(f"{src}: empty file (0 bytes), not a video")


class VideoReader:
    """Iterate the sampled frames of a video; decoding runs in a background thread (bounded queue).

    Use as a context manager (or call :meth:`close`) so the thread and the capture are released::

        with VideoReader("clip.mp4", DecodeOptions(fps=10)) as reader:
            for frame in reader:
                ...
    """

    def __init__(self, source: VideoSource, options: DecodeOptions | None = None,
                 on_decoded: Callable[[], None] | None = None) -> None:
        self.options = options or DecodeOptions()
        self.on_decoded = on_decoded
        self.source = parse_source(source)
        self.name = f"camera {self.source}" if isinstance(self.source, int) else str(self.source)
        _check_openable(self.source)
        self._cap = _open_capture(self.source)
        if not self._cap.isOpened():
            self._cap.release()
            if isinstance(self.source, int):
                why = "no such camera, or it is in use"
            elif is_url(self.source):
                why = "the stream is unreachable, refused the connection, or is not a video stream"
            else:
                why = ("not a video, an unsupported codec, or a truncated or corrupt file (an MP4/MOV cut short "
                       "loses its index, the moov atom, and cannot be opened at all)")
            raise VideoError(f"{self.name}: cannot open: {why}")
        self.info = self._read_info()
        try:
            self._check_limits()
        except VideoLimitError:
            self._cap.release()
            raise
        self.stats = DecodeStats()
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=self.options.queue_size)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._consumed = False

    def _read_info(self) -> VideoInfo:
        cap = self._cap
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        live = isinstance(self.source, int) or (is_url(self.source) and count <= 0)
        fps_ok = 0 < fps < 1000
        duration = count / fps * 1000 if (count > 0 and fps_ok and not live) else None
        return VideoInfo(source=self.name, width=int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                         height=int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), fps=fps if fps_ok else 0.0,
                         frame_count=count if (count > 0 and not live) else None, duration_ms=duration, live=live)

    def _check_limits(self) -> None:
        info, opts = self.info, self.options
        if opts.max_pixels is not None and info.width * info.height > opts.max_pixels:
            raise VideoLimitError(f"{self.name}: frames of {info.width}x{info.height} = {info.width * info.height} "
                                  f"pixels exceed the limit of {opts.max_pixels}")
        if opts.max_duration_s is not None and info.duration_ms is not None \
                and info.duration_ms > opts.max_duration_s * 1000:
            raise VideoLimitError(f"{self.name}: {info.duration_ms / 1000:.0f} s long, more than the limit of "
                                  f"{opts.max_duration_s:.0f} s")

    # -- lifecycle --------------------------------------------------------------------------------
    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        while self._thread is not None and self._thread.is_alive():
            try:  # unblock a producer waiting on a full queue
                self._queue.get_nowait()
            except queue.Empty:
                pass
            self._thread.join(timeout=0.05)
        self._cap.release()

    @property
    def frame_interval_ms(self) -> float:
        return 1000.0 / self.info.fps if self.info.fps > 0 else 1000.0 / 30

    @property
    def expected_frames(self) -> int | None:
        """How many frames the sampling will yield, when the container says how long it is."""
        if self.info.duration_ms is None or self.info.frame_count is None:
            return None
        start = self.options.start_s * 1000
        end = self.info.duration_ms
        if self.options.duration_s is not None:
            end = min(end, start + self.options.duration_s * 1000)
        span = max(0.0, end - start)
        if self.options.fps is not None:
            return max(1, int(span / 1000 * min(self.options.fps, self.info.fps or self.options.fps)))
        return max(1, -(-int(round(span / self.frame_interval_ms)) // self.options.stride))

    # -- iteration --------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Frame]:
        if self._consumed:
            raise FacewiseError("a VideoReader can be iterated once")
        self._consumed = True
        self._thread = threading.Thread(target=self._produce, name="facewise-decode", daemon=True)
        self._thread.start()
        while True:
            item = self._queue.get()
            if item is _SENTINEL:
                break
            if isinstance(item, BaseException):
                raise item
            self.stats.yielded += 1
            yield item

    def _put(self, item: Any, droppable: bool) -> bool:
        """Queue an item; False when the reader was closed. Droppable frames evict the oldest when full."""
        while not self._stop.is_set():
            try:
                if droppable:
                    self._queue.put_nowait(item)
                else:
                    self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                if droppable:
                    try:
                        self._queue.get_nowait()
                        self.stats.dropped += 1
                    except queue.Empty:
                        pass
        return False

    def _produce(self) -> None:
        error: BaseException | None
        try:
            error = self._decode_loop()
        except _StoppedError as stop:  # what on_decoded raised, as it is
            error = stop.cause
        except Exception as exc:  # handed to the consumer thread, raised there
            error = exc if isinstance(exc, FacewiseError) else VideoError(f"{self.name}: decoding failed: {exc}")
        if error is not None:
            self._put(error, droppable=False)
        self._put(_SENTINEL, droppable=False)

    def _decoded(self) -> None:
        """Count a decoded frame and let ``on_decoded`` stop the decoding."""
        self.stats.decoded += 1
        if self.on_decoded is not None:
            try:
                self.on_decoded()
            except BaseException as exc:  # the consumer gets it
                raise _StoppedError(exc) from exc

    def _check_decoded_length(self, t: float) -> None:
        """The length limit, from what is decoded: the container may declare no length or hide it."""
        limit = self.options.max_duration_s
        if limit is None or self.info.live or t <= limit * 1000 + self.frame_interval_ms:
            return
        raise VideoLimitError(f"{self.name}: decodes past {limit:.0f} s (at {t / 1000:.1f} s after "
                              f"{self.stats.decoded} frames), more than the limit of {limit:.0f} s; its container "
                              "declared no usable length")

    def _seek(self, start_ms: float) -> tuple[bool, float, int]:
        """Position on the first frame at or after ``start_ms``; returns (grabbed, t_ms, index) of that frame."""
        cap = self._cap
        interval = self.frame_interval_ms
        if start_ms > 0:
            # seek a little before the target (decoders land on a key frame), then grab forward
            cap.set(cv2.CAP_PROP_POS_MSEC, max(0.0, start_ms - 1000.0))
        grabbed = cap.grab()
        t = float(cap.get(cv2.CAP_PROP_POS_MSEC))
        if start_ms > 0 and (not grabbed or t > start_ms + 2000 or (t <= 0 and start_ms > 1500)):
            log.info("%s: container seek unreliable (landed at %.0f ms): decoding from the start", self.name, t)
            cap.release()
            self._cap = cap = _open_capture(self.source)
            grabbed = cap.grab()
            t = float(cap.get(cv2.CAP_PROP_POS_MSEC))
        while grabbed and t < start_ms - interval / 2 and not self._stop.is_set():
            self._decoded()
            self._check_decoded_length(t)
            grabbed = cap.grab()
            t = float(cap.get(cv2.CAP_PROP_POS_MSEC))
        index = max(0, int(cap.get(cv2.CAP_PROP_POS_FRAMES)) - 1) if grabbed else 0
        return grabbed, t, index

    def _decode_loop(self) -> VideoError | None:
        opts, info = self.options, self.info
        live = info.live
        if opts.start_s > 0 and live:
            raise VideoError(f"{self.name}: cannot seek in a live source (start_s {opts.start_s:g})")
        droppable = opts.drop_when_behind if opts.drop_when_behind is not None else live
        start_ms = opts.start_s * 1000
        end_ms = start_ms + opts.duration_s * 1000 if opts.duration_s is not None else None
        interval = self.frame_interval_ms
        wall0 = time.monotonic()
        grabbed, t_src, index = self._seek(start_ms)
        cap = self._cap
        next_due, n_seen = start_ms, 0
        last_t: float | None = None
        while grabbed and not self._stop.is_set():
            t = self._timestamp(t_src, last_t, index, wall0, interval)
            if end_ms is not None and t >= end_ms:
                return None
            self._decoded()
            self._check_decoded_length(t)
            keep = (n_seen % opts.stride == 0) if opts.fps is None else t >= next_due - interval / 2
            n_seen += 1
            if keep:
                ok, bgr = cap.retrieve()
                if not ok or bgr is None:
                    break
                if opts.fps is not None:
                    next_due = max(next_due + 1000.0 / opts.fps, t + interval / 2)
                rgb = np.ascontiguousarray(bgr[:, :, ::-1])
                if not self._put(Frame(index=index, t_ms=t, pixels=rgb), droppable):
                    return None
            last_t = self.stats.last_t_ms = t
            grabbed = cap.grab()
            index += 1
            t_src = float(cap.get(cv2.CAP_PROP_POS_MSEC)) if grabbed else t_src
        if self._stop.is_set() or live:
            return None
        return self._check_complete(last_t, start_ms)

    def _timestamp(self, t_src: float, last_t: float | None, index: int, wall0: float, interval: float) -> float:
        """The container's presentation time; wall-clock for live sources without one; else index/fps."""
        if self.info.live:
            if t_src > 0 and (last_t is None or t_src > last_t):
                return t_src
            return (time.monotonic() - wall0) * 1000
        if last_t is not None and t_src <= last_t:  # missing or non-monotonic timestamps
            return last_t + interval
        return t_src if t_src >= 0 else index * interval

    def _check_complete(self, last_t: float | None, start_ms: float) -> VideoError | None:
        """A file that stops well before its declared length is truncated or corrupt."""
        info = self.info
        if last_t is None:
            where = f" after {start_ms / 1000:.2f} s" if start_ms > 0 else ""
            return VideoError(f"{self.name}: no frame could be decoded{where}: truncated or corrupt video")
        if info.duration_ms is None:
            return None
        interval = self.frame_interval_ms
        end = last_t + interval
        expected = info.duration_ms
        if self.options.duration_s is not None:
            expected = min(expected, start_ms + self.options.duration_s * 1000)
        if end < expected - max(3 * interval, 0.02 * expected):
            return VideoError(
                f"{self.name}: video ends early at {end / 1000:.2f} s of the {expected / 1000:.2f} s its container "
                f"declares ({self.stats.decoded} frames decoded): the file is truncated or corrupt")
        return None


class _StoppedError(Exception):
    """Carries what ``on_decoded`` raised out of the decoding loop."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause
