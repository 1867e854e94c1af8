"""Redaction on real photos and the shared clips: every face covered, enrolled people spared, no flash, audio kept,
the input never overwritten, symlinks refused, and the REST job end to end.

Coverage is checked against SCRFD 2.5g (a stronger detector than the profile's) run on every original frame: with
the solid ``box`` style a face is covered when the middle of its box is black in the output.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from facewise import FaceWise
from facewise.errors import ValidationError
from facewise.video import DecodeOptions
from facewise.video.masks import MaskStyle
from facewise.video.redact import RedactOptions, Redactor, report_path

DATA = Path(os.environ.get("FACEWISE_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data")))
EXAMPLES = DATA / "video" / "face_recognition_examples" / "examples"
HAMILTON = EXAMPLES / "short_hamilton_clip.mp4"
LIN = "Lin-Manuel Miranda"
BLACK = MaskStyle(style="box", shape="ellipse")


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is not available (set FACEWISE_DATA)")
    return path


@pytest.fixture(scope="module")
def gallery(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Path:
    need(HAMILTON)
    db = tmp_path_factory.mktemp("redact") / "gallery.db"
    with FaceWise(db=db, profile="fast") as fw:
        assert fw.enroll(LIN, [EXAMPLES / "lin-manuel-miranda.png"])[0].status == "added"
        fw.set_threshold(0.30)
    return db


@pytest.fixture(scope="module")
def reference():
    from facewise.models.registry import load_detector

    try:
        return load_detector("scrfd-2.5g", score_threshold=0.5)
    except Exception as exc:
        pytest.skip(f"SCRFD 2.5g is not available: {exc}")


def covered(original: np.ndarray, redacted: np.ndarray, box: tuple[float, float, float, float]) -> bool:
    """The middle half of the face box is black in the output (and was not black before)."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    a = (max(0, int(x1 + w / 4)), max(0, int(y1 + h / 4)))
    b = (min(original.shape[1], int(x2 - w / 4)), min(original.shape[0], int(y2 - h / 4)))
    if b[0] <= a[0] or b[1] <= a[1]:
        return True
    dark = redacted[a[1]:b[1], a[0]:b[0]].max(axis=2) < 48
    return bool(dark.mean() >= 0.9)


def frames(path: Path, n: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    out = []
    while len(out) < n:
        ok, bgr = cap.read()
        if not ok:
            break
        out.append(bgr[:, :, ::-1])
    cap.release()
    return out


def coverage(reference, src: Path, dst: Path, n: int) -> tuple[int, int, int]:
    """(face frames, covered face frames, flashes): reference faces are linked over frames by IoU; a flash is a
    face uncovered between two frames where it was covered."""
    orig, red = frames(src, n), frames(dst, n)
    assert len(orig) == len(red) == n
    total = ok = 0
    done: list[str] = []
    tracks: list[dict] = []  # {"b": box, "h": "1" covered / "0" not, one per frame}
    for o, r in zip(orig, red, strict=True):
        new_tracks = []
        for d in reference.detect(np.ascontiguousarray(o)):
            if d.box.height < 12:
                continue
            hit = covered(o, r, (d.box.x1, d.box.y1, d.box.x2, d.box.y2))
            total += 1
            ok += hit
            prev = max(tracks, key=lambda t: t["b"].iou(d.box), default=None)
            if prev is not None and prev["b"].iou(d.box) > 0.3:
                tracks.remove(prev)
                hist = prev["h"]
            else:
                hist = ""
            new_tracks.append({"b": d.box, "h": hist + ("1" if hit else "0")})
        done += [t["h"] for t in tracks]
        tracks = new_tracks
    done += [t["h"] for t in tracks]
    return total, ok, sum(len(re.findall(r"1(0+)(?=1)", h)) for h in done)


def test_all_mode_covers_every_face_without_a_flash_and_keeps_audio(tmp_path: Path, reference,
                                                                    models_dir: Path) -> None:
    av = pytest.importorskip("av")
    need(HAMILTON)
    fw = FaceWise(db=None, profile="fast")
    opts = RedactOptions(mode="all", mask=BLACK, decode=DecodeOptions(duration_s=4.0))
    out = tmp_path / "all.mp4"
    report = Redactor(fw, opts).redact_video(HAMILTON, out)
    n = report.stats.frames
    assert n >= 90
    total, ok, flashes = coverage(reference, HAMILTON, out, n)
    assert total > 100 and ok / total >= 0.99, (ok, total)
    assert flashes == 0
    def start(path: Path, kind: str) -> float:
        with av.open(str(path)) as c:
            s = c.streams.video[0] if kind == "video" else c.streams.audio[0]
            return float(s.start_time * s.time_base)

    with av.open(str(out)) as c:
        assert [s.codec_context.name for s in c.streams.audio] == ["aac"]
        assert c.streams.video[0].codec_context.name == "h264"
    # in sync: the picture starts where the source's does on the audio's clock (within a frame)
    assert abs(start(out, "video") - start(HAMILTON, "video")) < 0.034
    assert start(out, "audio") == pytest.approx(start(HAMILTON, "audio"), abs=0.001)
    d = report.to_dict()
    assert d["audio"] == "copied" and d["complete"] and all(t["action"] == "blurred" for t in d["tracks"])
    assert d["stats"]["cuts"] >= 1 and d["stats"]["lookahead_masks"] > 0


def test_unknown_mode_spares_the_enrolled_person_per_track(tmp_path: Path, gallery: Path) -> None:
    need(HAMILTON)
    with FaceWise(db=gallery, profile="fast", create=False) as fw:
        opts = RedactOptions(mode="unknown", mask=BLACK, decode=DecodeOptions(duration_s=1.0))
        report = Redactor(fw, opts).redact_video(HAMILTON, tmp_path / "u.mp4")
    d = report.to_dict()
    spared = [t for t in d["tracks"] if t["frames_shown"]]
    assert spared and {t["person"] for t in spared} == {LIN}, d["tracks"]
    assert all(t["frames_hidden"] == 0 and t["score"] >= 0.30 for t in spared)  # spared from its first frame
    hidden = [t for t in d["tracks"] if t["person"] != LIN]
    assert hidden and all(t["frames_shown"] == 0 for t in hidden)  # nobody else is ever shown


def test_photo_modes(tmp_path: Path, gallery: Path, knn: Path) -> None:
    photo = knn / "test" / "obama_and_biden.jpg"
    with FaceWise(db=gallery, profile="fast", create=False) as fw:
        rep = Redactor(fw, RedactOptions(mask=BLACK)).redact_image(photo, tmp_path / "a.png")
        assert len(rep.faces) >= 2 and all(f["action"] == "blurred" for f in rep.faces)
        img = cv2.imread(str(tmp_path / "a.png"))[:, :, ::-1]
        orig = cv2.imread(str(photo))[:, :, ::-1]
        for f in rep.faces:
            assert covered(orig, img, tuple(f["box"]))
        lin = EXAMPLES / "lin-manuel-miranda.png"
        rep = Redactor(fw, RedactOptions(mode="unknown")).redact_image(lin, tmp_path / "lin.jpg")
        assert [f["action"] for f in rep.faces] == ["spared"] and rep.faces[0]["person"] == LIN
        rep = Redactor(fw, RedactOptions(mode="only", names=(LIN,))).redact_image(lin, tmp_path / "lin2.jpg")
        assert [f["action"] for f in rep.faces] == ["blurred"]


def test_output_never_overwrites_the_input_nor_follows_a_symlink(tmp_path: Path, knn: Path) -> None:
    photo = tmp_path / "in.jpg"
    photo.write_bytes((knn / "test" / "obama1.jpg").read_bytes())
    before = photo.read_bytes()
    fw = FaceWise(db=None, profile="fast")
    red = Redactor(fw)
    with pytest.raises(ValidationError, match="is the input"):
        red.redact_image(photo, photo)
    hard = tmp_path / "hard.jpg"
    os.link(photo, hard)
    with pytest.raises(ValidationError, match="is the input"):
        red.redact_image(photo, hard)
    target = tmp_path / "elsewhere.jpg"
    link = tmp_path / "link.jpg"
    link.symlink_to(target)
    with pytest.raises(ValidationError, match="symbolic link"):
        red.redact_image(photo, link)
    assert not target.exists() and photo.read_bytes() == before
    red.redact_image(photo, tmp_path / "ok.jpg")  # atomic: no temporary file is left beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hard.jpg", "in.jpg", "link.jpg", "ok.jpg"]
    with pytest.raises(ValidationError, match="is the input"):
        red.redact_video(HAMILTON, HAMILTON)
    assert not report_path(HAMILTON).exists()


def test_redaction_rest_job_end_to_end(tmp_path: Path, gallery: Path) -> None:
    pytest.importorskip("multipart", reason="the service extra is not installed")
    from fastapi.testclient import TestClient

    from reliability_helpers import service_app

    need(HAMILTON)
    shutil.copyfile(gallery, tmp_path / "gallery.db")
    app, token = service_app(tmp_path, profile="fast")
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        r = client.post("/v1/collections/default/redactions", data={"mode": "swirl"},
                        files={"video": ("clip.mp4", b"x", "video/mp4")})
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_value", r.text
        r = client.post("/v1/collections/default/redactions", data={"mode": "only", "names": ["nobody"]},
                        files={"video": ("clip.mp4", b"x", "video/mp4")})
        assert r.status_code == 404, r.text
        r = client.post("/v1/collections/default/redactions", files={"video": ("clip.mp4", HAMILTON.read_bytes(),
                                                                               "video/mp4")},
                        data={"mode": "unknown", "style": "pixelate", "duration": "1"})
        assert r.status_code == 202, r.text
        job = r.json()
        assert job["kind"] == "redact"
        deadline = time.time() + 120
        while job["state"] in ("queued", "running") and time.time() < deadline:
            time.sleep(0.5)
            job = client.get(f"/v1/jobs/{job['id']}").json()
        assert job["state"] == "done", job
        res = job["result"]
        assert res["format"] == "facewise-redaction" and res["source"] == "clip.mp4" and res["output"] is None
        assert {t["person"] for t in res["tracks"] if t["frames_shown"]} == {LIN}
        v = client.get(f"/v1/jobs/{job['id']}/video")
        assert v.status_code == 200 and v.content[4:8] == b"ftyp"
        # erasing the spared person de-identifies the report and drops the video, which shows the face
        pid = next(t["person_id"] for t in res["tracks"] if t["person"] == LIN)
        assert client.delete(f"/v1/collections/default/persons/{pid}").status_code in (200, 204)
        job = client.get(f"/v1/jobs/{job['id']}").json()
        assert LIN not in str(job["result"]) and client.get(f"/v1/jobs/{job['id']}/video").status_code == 404


def test_a_face_the_detector_misses_keeps_its_predicted_mask(tmp_path: Path, reference, models_dir: Path) -> None:
    """Every 4th frame the detector finds nothing: the tracks' predicted masks cover those frames (no flash),
    and the report lists them as predicted."""
    need(HAMILTON)
    fw = FaceWise(db=None, profile="fast")
    red = Redactor(fw, RedactOptions(mask=BLACK, decode=DecodeOptions(start_s=4.0, duration_s=2.0)))
    inner, calls = red.detector, {"n": 0}

    class Blinking:
        model_id = inner.model_id

        def detect(self, image: np.ndarray) -> list:
            calls["n"] += 1
            return [] if calls["n"] % 4 == 0 else inner.detect(image)

    red.detector = Blinking()  # type: ignore[assignment]
    out = tmp_path / "blink.mp4"
    report = red.redact_video(HAMILTON, out)
    d = report.to_dict()
    assert d["stats"]["predicted_masks"] >= calls["n"] // 4
    assert any(t["predicted_frames"] for t in d["tracks"])
    cap = cv2.VideoCapture(str(HAMILTON))
    cap.set(cv2.CAP_PROP_POS_MSEC, 4000)
    src = tmp_path / "src.mp4"  # the same 2 s of the original, frame for frame, for the reference
    w = cv2.VideoWriter(str(src), cv2.VideoWriter.fourcc(*"MJPG"), 30, (640, 360))
    for _ in range(report.stats.frames):
        ok, bgr = cap.read()
        assert ok
        w.write(bgr)
    w.release()
    cap.release()
    total, ok, flashes = coverage(reference, src, out, report.stats.frames)
    assert total > 30 and ok / total >= 0.99 and flashes == 0, (ok, total, flashes)
