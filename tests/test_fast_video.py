"""The fast tier, video: tracking and naming over a synthetic clip of painted faces (`facewise.testing`), written as
MJPEG (lossy, like a real file) and read back by the video pipeline itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facewise import FaceWise
from facewise.testing import face_image, fake_profile, paint_face

pytestmark = pytest.mark.fast
cv2 = pytest.importorskip("cv2")

FPS = 10.0


def write_clip(path: Path, frames: list[np.ndarray]) -> Path:
    h, w = frames[0].shape[:2]
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (w, h))
    assert out.isOpened()
    for f in frames:
        out.write(np.ascontiguousarray(f[:, :, ::-1]))
    out.release()
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 s: ada (seed 1) walks left to right the whole time; a stranger (seed 8) stands still from 1.0 s to 2.5 s."""
    frames = []
    for i in range(30):
        img = np.full((200, 320, 3), 70, np.uint8)
        paint_face(img, 1, 10 + 5 * i, 40, 72)
        if 10 <= i < 25:
            paint_face(img, 8, 230, 100, 64)
        frames.append(img)
    return write_clip(tmp_path_factory.mktemp("clip") / "walk.avi", frames)


@pytest.fixture(scope="module")
def fw() -> FaceWise:
    face_wise = FaceWise(None, profile=fake_profile())
    face_wise.enroll("ada", [face_image(1), face_image(1, face_px=60)])
    face_wise.enroll("bob", face_image(2))
    return face_wise


def test_video_tracks_and_names_painted_faces(fw: FaceWise, clip: Path, tmp_path: Path) -> None:
    from facewise.video import OutputOptions, RunHooks, VideoEvent, VideoOptions, VideoProcessor

    events: list[tuple[str, str | None]] = []

    def on_event(e: VideoEvent) -> None:
        events.append((e.kind, e.person))

    result = VideoProcessor(fw, VideoOptions()).run(
        clip, outputs=OutputOptions(tmp_path / "out", annotated_video=False), hooks=RunHooks(on_event=on_event))
    assert result.complete and result.stats.frames_processed == 30
    assert result.profile == "fake" and "fpir" in result.threshold_source
    by_person = {t.person: t for t in result.tracks}
    assert set(by_person) == {"ada", None}, result.tracks  # one track each: never split, never swapped
    ada, stranger = by_person["ada"], by_person[None]
    assert ada.frames == 30 and ada.first_ms == 0.0 and ada.last_ms == pytest.approx(2900, abs=1)
    assert stranger.frames == 15 and stranger.first_ms == pytest.approx(1000, abs=1)
    assert ada.score > 0.9 and ada.vectors < 30  # embedded when the track needs it, not every frame
    kinds = [k for k, _ in events]  # a track enters before it is named: "entered" carries no name yet
    assert kinds.count("entered") == 2 and kinds.count("left") == 2 and events.count(("identified", "ada")) == 1
    assert kinds.index("entered") < events.index(("identified", "ada")) < events.index(("left", "ada"))
    assert (tmp_path / "out" / "timeline.json").is_file() and ada.best_frame is not None


def test_video_with_an_empty_gallery_names_nobody(clip: Path) -> None:
    from facewise.video import VideoProcessor

    result = VideoProcessor(FaceWise(None, profile=fake_profile())).run(clip)
    assert len(result.tracks) == 2 and all(t.person is None for t in result.tracks)

