"""Where redaction writes: output paths that never overwrite the input or follow a symlink, files written
atomically (a temporary file in the target folder, then ``os.replace``), and the redacted video's writer, which
copies the source's audio stream unchanged (PyAV remux)."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facewise.errors import FacewiseError, ValidationError

log = logging.getLogger(__name__)

VIDEO_FORMATS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}
IMAGE_FORMATS = {".jpg": ".jpg", ".jpeg": ".jpg", ".png": ".png", ".webp": ".webp", ".bmp": ".bmp",
                 ".tif": ".tiff", ".tiff": ".tiff"}


def check_output(source: Path | None, out: Path) -> None:
    """Refuse an output that is a symlink, a folder, or the input itself (by path or by inode)."""
    if os.path.islink(out):
        raise ValidationError(f"{out}: is a symbolic link; redaction never writes through one")
    if out.is_dir():
        raise ValidationError(f"{out}: is a folder; give a file name for the redacted output")
    if source is None:
        return
    same = out.resolve() == source.resolve()
    if not same and out.exists():
        with contextlib.suppress(OSError):
            same = os.path.samefile(out, source)
    if same:
        raise ValidationError(f"{out}: is the input; redaction never overwrites its input")


@contextlib.contextmanager
def atomic_path(out: Path) -> Iterator[Path]:
    """A temporary path in ``out``'s folder that replaces ``out`` when the block ends without an error."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part" + out.suffix, dir=out.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if os.path.islink(out):  # appeared meanwhile: os.replace would replace the link, still refuse
            raise ValidationError(f"{out}: is a symbolic link; redaction never writes through one")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(out: Path, data: bytes) -> None:
    with atomic_path(out) as tmp:
        tmp.write_bytes(data)


def encode_image(rgb: np.ndarray, suffix: str) -> bytes:
    """The redacted pixels in the output's format (no metadata is carried over: EXIF, GPS and the like go)."""
    ext = IMAGE_FORMATS.get(suffix.lower())
    if ext is None:
        raise ValidationError(f"output type {suffix or '(none)'}: expected one of {', '.join(sorted(IMAGE_FORMATS))}")
    params = [cv2.IMWRITE_JPEG_QUALITY, 92] if ext == ".jpg" else []
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(rgb[:, :, ::-1]), params)
    if not ok:
        raise FacewiseError(f"could not encode the redacted image as {ext}")
    return bytes(buf.tobytes())


def video_format(out: Path) -> str:
    fmt = VIDEO_FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise ValidationError(f"{out}: a redacted video is written as {', '.join(VIDEO_FORMATS)}")
    return fmt


class RedactedVideoWriter:
    """H.264 (yuv420p) video of the redacted frames plus the source's first audio stream copied as it is.

    Frames are stamped with their source time, so audio stays in sync. ``audio`` says what happened to the
    sound: ``"copied"``, ``"none"`` (the source has none) or why it was dropped."""

    def __init__(self, path: Path, source: Path | None, fps: float, size: tuple[int, int], fmt: str,
                 crf: int = 20) -> None:
        import av

        self.frames = 0
        self.audio = "none"
        self._size = (size[0] - size[0] % 2, size[1] - size[1] % 2)
        self._rate = Fraction(max(1.0, fps)).limit_denominator(1001)
        options = {"movflags": "+faststart"} if fmt in ("mp4", "mov") else {}
        self._out: Any = av.open(str(path), mode="w", format=fmt, options=options)
        self._in: Any = None
        self._a_out: Any = None
        self._packets: Iterator[Any] | None = None
        self._pending: Any = None
        self._last_pts = -1
        self._offset_s = 0.0  # the source's video start on its container's clock (audio packets use that clock)
        try:
            self._v = self._out.add_stream("libx264", rate=self._rate)
            self._v.width, self._v.height = self._size
            self._v.pix_fmt = "yuv420p"
            self._v.options = {"crf": str(crf), "preset": "veryfast"}
            self._v.codec_context.time_base = 1 / self._rate
            if source is not None:
                self._open_audio(source)
        except Exception:
            self.close(abort=True)
            raise

    def _open_audio(self, source: Path) -> None:
        import av

        try:
            self._in = av.open(str(source))
            streams = list(self._in.streams.audio)
            if not streams:
                self._in.close()
                self._in = None
                return
            a_in = streams[0]
            video = list(self._in.streams.video)
            if video and video[0].start_time is not None and video[0].time_base is not None:
                self._offset_s = max(0.0, float(video[0].start_time * video[0].time_base))
            self._a_out = self._out.add_stream_from_template(a_in)
            self._a_in = a_in
            self._packets = iter(self._in.demux(a_in))
            self.audio = "copied"
        except Exception as exc:  # a codec the container cannot hold, an unreadable stream...
            log.warning("%s: audio not copied (%s)", source, exc)
            self.audio = f"dropped: {exc}"
            if self._in is not None:
                self._in.close()
                self._in = None
            self._packets = None

    def _mux_audio_until(self, t_s: float | None) -> None:
        """Copy audio packets up to ``t_s`` seconds (None: all that are left)."""
        if self._packets is None:
            return
        while True:
            pkt = self._pending
            if pkt is None:
                try:
                    pkt = next(self._packets)
                except StopIteration:
                    self._packets = None
                    return
                except Exception as exc:  # damaged audio after some point: keep what was copied
                    log.warning("audio stream ends early (%s)", exc)
                    self.audio = f"partly copied: {exc}"
                    self._packets = None
                    return
                if pkt.dts is None:
                    continue
            if t_s is not None and pkt.pts is not None and float(pkt.pts * pkt.time_base) > t_s:
                self._pending = pkt
                return
            self._pending = None
            pkt.stream = self._a_out
            self._out.mux(pkt)

    def write(self, rgb: np.ndarray, t_ms: float) -> None:
        import av

        w, h = self._size
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[:h, :w]), format="rgb24")
        t_s = t_ms / 1000 + self._offset_s  # frame times start at 0: back on the container's clock, as the audio
        pts = max(self._last_pts + 1, round(t_s * float(self._rate)))
        self._last_pts = frame.pts = pts
        self._mux_audio_until(t_s)
        for packet in self._v.encode(frame):
            self._out.mux(packet)
        self.frames += 1

    def close(self, abort: bool = False, audio_until_s: float | None = None) -> None:
        """Finish the file; the audio that is left is copied up to ``audio_until_s`` (None: all of it)."""
        if self._out is None:
            return
        try:
            if not abort:
                for packet in self._v.encode(None):
                    self._out.mux(packet)
                self._mux_audio_until(None if audio_until_s is None else audio_until_s + self._offset_s)
        finally:
            self._out.close()
            self._out = None
            if self._in is not None:
                self._in.close()
                self._in = None
