"""Video jobs against hostile files: cancel and the job's deadline hold however sparse the sampling, the length
limit holds when the container hides the length, the sampling has a floor, and a job's outputs stay bounded
(annotated video on disk, thumbnails capped).

The files are made here with PyAV: one encoded frame muxed again and again, so a 1080p video of thousands of
frames takes a fraction of a second to make and as long as any to decode.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

av = pytest.importorskip("av")
pytest.importorskip("facewise.video", reason="facewise.video is not part of this build")

from facewise.api import FaceWise  # noqa: E402
from facewise.errors import ValidationError  # noqa: E402
from facewise.service.jobs import MAX_THUMBNAILS, Job, JobManager, VideoTask, new_job, video_runner  # noqa: E402
from facewise.video import DecodeOptions, VideoLimitError, VideoReader  # noqa: E402
from hostile_files import repeated_frames  # noqa: E402


def test_sampling_has_a_floor() -> None:
    with pytest.raises(ValidationError, match=r"at least 0\.01"):
        DecodeOptions(fps=0.0001)
    assert DecodeOptions(fps=0.01).fps == 0.01


def test_length_limit_holds_when_the_container_hides_the_length(tmp_path: Path) -> None:
    clip = repeated_frames(tmp_path / "long.mkv", 900)  # 30 s at 30 fps, declared as 1000 fps
    with VideoReader(clip, DecodeOptions(fps=0.01, max_duration_s=5)) as reader:
        assert reader.info.duration_ms is None  # nothing to check when it opens
        with pytest.raises(VideoLimitError, match="decodes past 5 s"):
            list(reader)
        assert reader.stats.decoded <= 5 * 30 + 10  # stopped at the limit, not at the end


def test_on_decoded_sees_every_decoded_frame_and_stops_the_decoder(tmp_path: Path) -> None:
    # 3000 frames 0.3 ms apart: at the floor of 0.01 fps only the first is kept, so a check per kept frame never
    # runs again; the check per decoded frame does
    clip = repeated_frames(tmp_path / "dense.mp4", 3000, step=3, den=10_000, rate=30)
    calls = []

    class StopError(Exception):
        pass

    def on_decoded() -> None:
        calls.append(1)
        if len(calls) >= 100:
            raise StopError

    with VideoReader(clip, DecodeOptions(fps=0.01), on_decoded=on_decoded) as reader:
        with pytest.raises(StopError):
            list(reader)
        assert reader.stats.yielded == 1 and 100 <= reader.stats.decoded <= 101


@pytest.fixture(scope="module")
def fw() -> Iterator[FaceWise]:
    from facewise.video.process import tracking_detector

    face_wise = FaceWise(db=None, profile="fast")
    face_wise.pipeline.load()  # loaded before a job starts: the job's clock measures its video only
    tracking_detector(face_wise, 0.1)
    yield face_wise


@pytest.fixture(scope="module")
def dense_1080p(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 000 1080p frames 0.3 ms apart (6 s, under any length limit): the fps sampling keeps the first only,
    and decoding them all takes tens of seconds."""
    return repeated_frames(tmp_path_factory.mktemp("dense") / "dense.mp4", 20_000, (1920, 1080), step=3,
                           den=10_000, rate=30)


def _submit(jobs: JobManager, folder: Path, clip: Path) -> Job:
    job = new_job("default", "k1", clip.name, 0.01)
    upload = folder / f"{job.id}.video"
    upload.write_bytes(clip.read_bytes())
    return jobs.submit(job, upload)


def _ended(job: Job, timeout: float = 300) -> Job:
    deadline = time.monotonic() + timeout
    while job.finished_at is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert job.finished_at is not None, f"job still {job.state}"
    return job


@pytest.mark.shared
def test_a_job_past_its_deadline_stops_while_decoding(tmp_path: Path, fw: FaceWise, dense_1080p: Path) -> None:
    jobs = JobManager(video_runner, lambda _: fw, video_dir=tmp_path, max_seconds=2)
    jobs.start()
    try:
        job = _ended(_submit(jobs, tmp_path, dense_1080p))
        assert job.state == "failed" and job.error is not None and job.error["code"] == "job_timeout", job.error
    finally:
        jobs.stop()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.shared
def test_a_cancelled_job_stops_while_decoding(tmp_path: Path, fw: FaceWise, dense_1080p: Path) -> None:
    jobs = JobManager(video_runner, lambda _: fw, video_dir=tmp_path, max_seconds=600)
    jobs.start()
    try:
        job = _submit(jobs, tmp_path, dense_1080p)
        while job.state == "queued":
            time.sleep(0.05)
        time.sleep(3)  # its one kept frame is behind it: only the decoder's check can see the cancel now
        jobs.cancel(job.id)
        assert _ended(job).state == "cancelled", (job.state, job.error)
    finally:
        jobs.stop()
    assert list(tmp_path.iterdir()) == []


def test_job_thumbnails_are_capped_and_the_annotated_video_lives_on_disk(tmp_path: Path) -> None:
    seen: dict[str, object] = {}

    def runner(task: VideoTask) -> dict:
        seen["indices"] = [task.add_thumbnail(b"\xff\xd8" + bytes(1000)) for _ in range(MAX_THUMBNAILS + 50)]
        out = task.path.with_name(task.path.name + ".out")
        out.mkdir()
        (out / "annotated.mp4").write_bytes(b"\0\0\0\x18ftypmp42" + bytes(100_000))
        assert task.set_video is not None
        task.set_video(out / "annotated.mp4")
        out.rmdir()
        return {"tracks": []}

    jobs = JobManager(runner, lambda _: None, video_dir=tmp_path, keep=1)  # type: ignore[arg-type,return-value]
    jobs.start()
    try:
        first = _ended(_submit(jobs, tmp_path, _tiny(tmp_path)))
        assert first.state == "done", first.error
        indices = seen["indices"]
        assert isinstance(indices, list) and indices[MAX_THUMBNAILS:] == [None] * 50
        assert len(first.thumbnails) == MAX_THUMBNAILS
        assert first.video is not None and first.video.parent == tmp_path and first.video.stat().st_size > 100_000
        assert first.to_dict()["annotated_video"] is True
        second = _ended(_submit(jobs, tmp_path, _tiny(tmp_path)))  # keep=1: the first is evicted, its file too
        assert second.video is not None and second.video.exists()
        assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".mp4") == [second.video.name]
    finally:
        jobs.stop()
    assert [p for p in tmp_path.iterdir() if p.suffix == ".mp4"] == []  # jobs die with the process, files too


def _tiny(folder: Path) -> Path:
    path = folder / "tiny.bin"
    path.write_bytes(b"x")
    return path


def test_decoding_thread_is_released_after_a_stop(tmp_path: Path) -> None:
    clip = repeated_frames(tmp_path / "short.mkv", 300)
    before = {t.ident for t in threading.enumerate()}

    def stop() -> None:
        raise KeyError("stop")

    with VideoReader(clip, DecodeOptions(), on_decoded=stop) as reader, pytest.raises(KeyError):
        list(reader)
    left = [t for t in threading.enumerate() if t.ident not in before and t.name == "facewise-decode"]
    assert left == []
