"""What a video run leaves on disk: ``timeline.json``, ``timeline.csv``, ``thumbs/track-NNNN.jpg`` and an
annotated video; and the reverse look-up used by ``facewise enroll --from-track TIMELINE_JSON:TRACK_ID``.
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facewise.core.outfiles import InputFiles, Inputs, abandon, begin, commit, csv_row, open_output, write_bytes
from facewise.errors import BadInputError, FacewiseError, NotFoundError, ValidationError, install_hint
from facewise.video.records import VideoResult

log = logging.getLogger(__name__)

TIMELINE_JSON = "timeline.json"
TIMELINE_CSV = "timeline.csv"
THUMBS = "thumbs"
CSV_COLUMNS = ("track", "person", "score", "first_ms", "last_ms", "frames", "best_frame", "expression")

GREEN = (40, 200, 40)  # BGR for cv2 drawing
RED = (40, 40, 220)
GREY = (160, 160, 160)


@dataclass(frozen=True)
class OutputOptions:
    """Where and what to write. Paths in ``timeline.json`` are relative to ``out_dir``."""

    out_dir: Path
    annotated_video: bool = True
    thumbnails: bool = True
    timeline: bool = True
    video_name: str = "annotated.mp4"


def thumbnail_name(track_id: int) -> str:
    return f"{THUMBS}/track-{track_id:04d}.jpg"


def save_thumbnail(out_dir: Path, track_id: int, crop_rgb: np.ndarray, inputs: Inputs = ()) -> str:
    rel = thumbnail_name(track_id)
    path = out_dir / rel
    ok, jpeg = cv2.imencode(".jpg", np.ascontiguousarray(crop_rgb[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 92])
    if not ok:
        raise FacewiseError(f"{path}: could not encode the thumbnail")
    write_bytes(path, jpeg.tobytes(), inputs)
    return rel


def write_timeline(result: VideoResult, out_dir: Path, inputs: Inputs = ()) -> tuple[Path, Path]:
    """``timeline.json`` (everything) and ``timeline.csv`` (one row per track, cells a spreadsheet would run as a
    formula escaped); each written atomically, never through a link (core/outfiles.py)."""
    jpath, cpath = out_dir / TIMELINE_JSON, out_dir / TIMELINE_CSV
    with open_output(jpath, inputs, text=True) as fh:
        fh.write(json.dumps(result.to_dict(), ensure_ascii=False, indent=1))
    with open_output(cpath, inputs, text=True, newline="") as fh:
        w = csv.writer(fh)
        w.writerow(CSV_COLUMNS)
        for t in result.tracks:
            w.writerow(csv_row([t.track, t.person or "unknown", f"{t.score:.4f}", f"{t.first_ms:.1f}",
                                f"{t.last_ms:.1f}", t.frames, t.best_frame or "",
                                (t.expression or {}).get("dominant") or ""]))
    return jpath, cpath


def track_thumbnail(spec: str) -> Path:
    """``TIMELINE_JSON:TRACK_ID`` -> the track's best-frame thumbnail (for ``facewise enroll --from-track``)."""
    path_s, sep, tid = spec.rpartition(":")
    if not sep or not tid.strip().isdigit():
        raise ValidationError(f"--from-track {spec!r}: expected TIMELINE_JSON:TRACK_ID, e.g. out/timeline.json:3")
    path = Path(path_s)
    if path.is_dir():
        path = path / TIMELINE_JSON
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise NotFoundError(f"{path}: no such timeline (written by `facewise video --out DIR`)") from None
    except (OSError, ValueError) as exc:
        raise BadInputError(f"{path}: not a readable facewise timeline ({exc})") from None
    tracks = doc.get("tracks") if isinstance(doc, dict) else None
    if not isinstance(tracks, list) or not all(isinstance(t, dict) for t in tracks):
        raise BadInputError(f"{path}: not a facewise timeline (no tracks)")
    track = next((t for t in tracks if t.get("track") == int(tid)), None)
    if track is None:
        raise NotFoundError(f"{path}: no track {tid} (tracks: {', '.join(str(t.get('track')) for t in tracks)})")
    if not track.get("best_frame"):
        raise NotFoundError(f"{path}: track {tid} has no thumbnail (the run was made without thumbnails)")
    thumb = path.parent / str(track["best_frame"])
    if not thumb.is_file():
        raise NotFoundError(f"{thumb}: thumbnail of track {tid} is missing")
    return thumb


@dataclass(frozen=True)
class DrawItem:
    track: int
    box: tuple[float, float, float, float]
    label: str
    known: bool
    confirmed: bool = True


def draw_tracks(bgr: np.ndarray, items: list[DrawItem]) -> np.ndarray:
    """Boxes with "#id name score" labels, drawn in place on a BGR frame."""
    scale = max(0.4, min(bgr.shape[:2]) / 800)
    thick = max(1, round(2 * scale))
    for it in items:
        color = (GREEN if it.known else RED) if it.confirmed else GREY
        p1 = (int(it.box[0]), int(it.box[1]))
        p2 = (int(it.box[2]), int(it.box[3]))
        cv2.rectangle(bgr, p1, p2, color, thick)
        (tw, th), base = cv2.getTextSize(it.label, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        y = max(th + base, p1[1])
        cv2.rectangle(bgr, (p1[0], y - th - base), (p1[0] + tw, y), color, -1)
        cv2.putText(bgr, it.label, (p1[0], y - base), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick,
                    cv2.LINE_AA)
    return bgr


class AnnotatedWriter:
    """An MP4 of the processed frames with the tracks drawn on them.

    H.264 (yuv420p, ``+faststart``: browsers play it, also while it downloads) through PyAV, whose wheels bundle
    libx264 (``pip install facewise[video]``). Without PyAV, OpenCV's 'mp4v' (MPEG-4 part 2), which desktop
    players read but browsers do not; :attr:`codec` says which one was written.
    """

    def __init__(self, path: Path, fps: float, size: tuple[int, int], inputs: Inputs = ()) -> None:
        # written to a fresh temporary file beside ``path`` (never through a planted link), moved there on close
        self.inputs = inputs if isinstance(inputs, InputFiles) else InputFiles(inputs)
        self.target = path
        self.path = begin(path, self.inputs, suffix=path.suffix)
        self.frames = 0
        self.codec: str | None = None
        self._av: Any = None
        self._cv: Any = None
        # yuv420p needs even sides: an odd last row/column is dropped.
        self._size = (size[0] - size[0] % 2, size[1] - size[1] % 2)
        rate = Fraction(max(1.0, fps)).limit_denominator(1001)
        try:
            self._open_h264(rate)
        except ImportError:
            log.info("PyAV is not installed (%s): the annotated video is mp4v, "
                     "which browsers do not play", install_hint("video"))
        except Exception as exc:  # an FFmpeg build without libx264, a path it cannot write...
            log.warning("%s: no H.264 encoder (%s); writing mp4v, which browsers do not play", path, exc)
            self._av = None
        if self._av is None:
            self._cv = cv2.VideoWriter(str(self.path), cv2.VideoWriter.fourcc(*"mp4v"), float(rate), size)
            if self._cv.isOpened():
                self.codec = "mp4v"
            else:
                log.warning("%s: cannot open a video writer; no annotated video", path)
        self.ok = self.codec is not None

    def _open_h264(self, rate: Fraction) -> None:
        import av

        container = av.open(str(self.path), mode="w", format="mp4", options={"movflags": "+faststart"})
        try:
            stream = container.add_stream("libx264", rate=rate)
            stream.width, stream.height = self._size
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": "23", "preset": "veryfast"}
            stream.codec_context.time_base = 1 / rate
        except Exception:
            container.close()
            raise
        self._av, self._stream, self.codec = container, stream, "h264"

    def write(self, rgb: np.ndarray, items: list[DrawItem]) -> None:
        if not self.ok:
            return
        bgr = draw_tracks(np.ascontiguousarray(rgb[:, :, ::-1]), items)
        if self._av is not None:
            import av

            w, h = self._size
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(bgr[:h, :w]), format="bgr24")
            frame.pts = self.frames
            for packet in self._stream.encode(frame):
                self._av.mux(packet)
        else:
            self._cv.write(bgr)
        self.frames += 1

    def close(self) -> None:
        try:
            if self._av is not None:
                for packet in self._stream.encode(None):
                    self._av.mux(packet)
                self._av.close()
                self._av = None
            elif self._cv is not None:
                self._cv.release()
                self._cv = None
        except BaseException:
            abandon(self.path)
            raise
        if self.ok and self.path.exists():
            commit(self.path, self.target, self.inputs)
            self.path = self.target
        else:
            abandon(self.path)


def result_paths(out_dir: Path, opts: OutputOptions) -> dict[str, Any]:
    return {"timeline_json": str(out_dir / TIMELINE_JSON), "timeline_csv": str(out_dir / TIMELINE_CSV),
            "annotated_video": str(out_dir / opts.video_name) if opts.annotated_video else None,
            "thumbnails": str(out_dir / THUMBS) if opts.thumbnails else None}
