"""The annotated video is H.264 in an MP4 that browsers play (PyAV's bundled libx264), on real frames."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from facewise.video.outputs import AnnotatedWriter, DrawItem

av = pytest.importorskip("av")


def clip_frames(knn: Path, n: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(knn.parent / "short_hamilton_clip.mp4"))
    cap.set(cv2.CAP_PROP_POS_FRAMES, 100)  # Lin-Manuel Miranda on stage
    frames = []
    for _ in range(n):
        ok, bgr = cap.read()
        assert ok
        frames.append(np.ascontiguousarray(bgr[:, :, ::-1]))
    cap.release()
    return frames


def write(path: Path, frames: list[np.ndarray], fps: float) -> AnnotatedWriter:
    h, w = frames[0].shape[:2]
    writer = AnnotatedWriter(path, fps, (w, h))
    for rgb in frames:
        writer.write(rgb, [DrawItem(1, (200.0, 60.0, 300.0, 180.0), "#1 lin 0.95", True)])
    writer.close()
    return writer


def test_annotated_video_is_browser_playable_h264(tmp_path: Path, knn: Path) -> None:
    frames = clip_frames(knn, 20)
    out = tmp_path / "annotated.mp4"
    writer = write(out, frames, 12.5)
    assert writer.codec == "h264" and writer.frames == 20
    data = out.read_bytes()
    assert 0 < data.find(b"moov") < data.find(b"mdat"), "moov first (+faststart): plays while it downloads"
    with av.open(str(out)) as c:
        s = c.streams.video[0]
        assert (s.codec_context.name, s.codec_context.pix_fmt) == ("h264", "yuv420p")
        assert (s.codec_context.width, s.codec_context.height) == (640, 360)
        decoded = [f.to_ndarray(format="rgb24") for f in c.decode(s)]
        rate = float(s.average_rate)  # read while open: PyAV 18 refuses a closed container's streams
    assert len(decoded) == 20
    assert rate == 12.5
    # The box is drawn (green, BGR (40, 200, 40)) on the real frame; elsewhere the frame is the clip's.
    edge = decoded[5][120, 198:203].astype(int)
    assert (edge[:, 1] > 150).any() and (edge[:, 0] < 110).all()
    assert np.abs(decoded[5][300:340, 500:600].astype(int) - frames[5][300:340, 500:600]).mean() < 8


def test_odd_frame_size_loses_one_row_and_column(tmp_path: Path, knn: Path) -> None:
    frames = [f[:359, :639] for f in clip_frames(knn, 3)]
    writer = write(tmp_path / "odd.mp4", frames, 25)
    assert writer.codec == "h264"
    with av.open(str(tmp_path / "odd.mp4")) as c:
        assert (c.streams.video[0].width, c.streams.video[0].height) == (638, 358)


def test_without_pyav_it_falls_back_to_mp4v(tmp_path: Path, knn: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "av", None)  # as if PyAV were not installed: import av raises ImportError
    writer = write(tmp_path / "old.mp4", clip_frames(knn, 3), 10)
    assert writer.codec == "mp4v"
    monkeypatch.undo()
    with av.open(str(tmp_path / "old.mp4")) as c:  # MPEG-4 part 2: what the writer made before PyAV
        assert c.streams.video[0].codec_context.name == "mpeg4"
        assert c.streams.video[0].frames == 3
