"""The service under hostile load: small versions of the attacks against a real ``facewise serve``.

Every refusal is checked for its status, its stable error code and that what was stored is still there.
The full-size replay (memory growth, the other tenant's latency) is ``bench/hostile.py``.
"""

from __future__ import annotations

import io
import json
import os
import random
import string
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from conftest import DATA, need
from service_helpers import Server, httpx, start_server

GROUP = "detection/examples/faces/bald_guys.jpg"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("hostile"), "--rate", "1000", "--burst", "1000", "--workers", "2",
                       "--max-upload-mb", "3",  # whole image requests: 20 x 3 MiB + 1 MiB
                       "--job-timeout", "3", "--busy-waiting", "1")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def admin(server: Server) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c


@pytest.fixture(scope="module")
def enrolled(admin: httpx.Client, lfw: Path) -> dict:
    """One person with one face, enrolled before any attack; :func:`intact` checks it is still there."""
    r = admin.post("/v1/collections/default/persons", json={"name": "Before The Attacks"})
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    img = next((lfw / "images" / "Aaron_Peirsol").glob("*.jpg"))
    r = admin.post(f"/v1/collections/default/persons/{pid}/faces", files=[("files", (img.name, img.read_bytes()))])
    assert r.status_code == 200 and r.json()["added"] == 1, r.text
    return {"id": pid, "persons": admin.get("/v1/collections/default/persons").json()["total"]}


def intact(admin: httpx.Client, enrolled: dict) -> None:
    assert admin.get("/v1/collections/default/persons").json()["total"] == enrolled["persons"]
    person = admin.get(f"/v1/collections/default/persons/{enrolled['id']}").json()
    assert person["name"] == "Before The Attacks" and len(person["faces"]) == 1, person


def code_of(resp: httpx.Response) -> str:
    body = resp.json()
    assert set(body) == {"error"}, body
    return body["error"]["code"]


# -- 1. metrics cannot be inflated ------------------------------------------------------------------------
def test_random_methods_and_paths_do_not_grow_metrics(server: Server, admin: httpx.Client, enrolled: dict) -> None:
    rng = random.Random(13)
    methods, paths, sizes = set(), set(), []
    with httpx.Client(base_url=server.url, timeout=30) as anon:
        anon.get("/metrics")  # the scrape itself is a series
        for _ in range(2):  # 2 x 100 requests; the second round may add no series at all
            for i in range(100):
                method = "".join(rng.choices(string.ascii_uppercase, k=12))
                path = "/" + "".join(rng.choices(string.ascii_lowercase, k=16))
                methods.add(method)
                paths.add(path)
                r = anon.request(method if i % 2 else "GET", path if i % 4 < 2 else "/v1/collections")
                assert r.status_code in (401, 404, 405), (method, path, r.status_code)
            text = anon.get("/metrics").text
            sizes.append(len(text.encode()))
    assert sizes[0] < 100_000 and sizes[1] - sizes[0] < 300, sizes  # only counter digits grew
    assert not any(m in text for m in methods) and not any(p in text for p in paths)
    assert 'method="other",route="unmatched"' in text
    intact(admin, enrolled)


# -- 2. body limits per route family, chunked too; metadata size -------------------------------------------
def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        yield b" " * min(size, total - sent)
        sent += size


def test_json_routes_take_small_bodies_declared_or_chunked(admin: httpx.Client, enrolled: dict) -> None:
    big = json.dumps({"name": "x", "metadata": {"blob": "a" * 200_000}}).encode()
    r = admin.post("/v1/collections/default/persons", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and code_of(r) == "payload_too_large", r.text
    # the same without Content-Length (chunked transfer encoding): refused while it streams
    r = admin.post("/v1/collections/default/persons", content=_chunks(2_000_000),
                   headers={"Content-Type": "application/json"})
    assert "content-length" not in r.request.headers and r.request.headers["transfer-encoding"] == "chunked"
    assert r.status_code == 413 and code_of(r) == "payload_too_large", r.text
    r = admin.post("/v1/keys", content=_chunks(1_000_000), headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and code_of(r) == "payload_too_large", r.text
    intact(admin, enrolled)


def test_uploads_take_large_bodies_but_not_unbounded_chunked_ones(admin: httpx.Client, enrolled: dict,
                                                                  lfw: Path) -> None:
    img = next((lfw / "images" / "Aaron_Peirsol").glob("*.jpg")).read_bytes()
    padded = img + b"\0" * 200_000  # more than a JSON route takes, far less than an upload may be
    r = admin.post("/v1/detect", files=[("image", ("a.jpg", padded))])
    assert r.status_code == 200, r.text
    boundary = "hostileboundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode()

    def body() -> Iterator[bytes]:
        yield head
        yield from _chunks(70 * 1024 * 1024, 1024 * 1024)  # past the whole-request limit (61 MiB here)

    r = admin.post("/v1/detect", content=body(), headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 413 and code_of(r) in ("payload_too_large",), r.text
    intact(admin, enrolled)


def test_person_metadata_has_a_size_limit(admin: httpx.Client, enrolled: dict) -> None:
    r = admin.post("/v1/collections/default/persons", json={"name": "Too Much", "metadata": {"b": "x" * 20_000}})
    assert r.status_code == 413 and code_of(r) == "metadata_too_large", r.text
    r = admin.post("/v1/collections/default/persons", json={"name": "Fine Meta", "metadata": {"b": "x" * 1000}})
    assert r.status_code == 201, r.text
    assert admin.delete(f"/v1/collections/default/persons/{r.json()['id']}").status_code == 200
    intact(admin, enrolled)


# -- 3. pixel budget per request, faces per image -----------------------------------------------------------
def _webp(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 120, 90)).save(buf, "WEBP", lossless=True)
    return buf.getvalue()


def test_webp_bomb_is_refused_from_the_headers(admin: httpx.Client, enrolled: dict) -> None:
    bomb = _webp(4000, 4000)  # 16 Mpx each in ~1 KB; six pass the per-image limits, not the request's 80 Mpx
    assert len(bomb) < 10_000
    files = [("files", (f"bomb{i}.webp", bomb)) for i in range(6)]
    r = admin.post(f"/v1/collections/default/persons/{enrolled['id']}/faces", files=files)
    assert r.status_code == 413 and code_of(r) == "pixel_budget", r.text
    assert "bomb5.webp" in r.json()["error"]["message"] and "/tmp" not in r.text
    # one WebP of 25 Mpx: under the pixel limit (40 Mpx) but its decoding would take ~450 MiB (> 400)
    r = admin.post("/v1/detect", files={"image": ("big.webp", _webp(5000, 5000))})
    assert r.status_code == 413 and code_of(r) == "too_many_pixels" and "MiB" in r.text, r.text
    intact(admin, enrolled)


def test_enrolling_several_images_decodes_them_one_by_one_and_keeps_names(admin: httpx.Client, lfw: Path) -> None:
    r = admin.post("/v1/collections/default/persons", json={"name": "Several Images"})
    pid = r.json()["id"]
    imgs = sorted((lfw / "images" / "Abdullah_Gul").glob("*.jpg"))[:3]
    files = [("files", (p.name, p.read_bytes())) for p in imgs] + [("files", ("blank.webp", _webp(300, 300)))]
    # face=largest: the default profile's detector also finds the small faces in the background of news photos
    r = admin.post(f"/v1/collections/default/persons/{pid}/faces", files=files, data={"face": "largest"})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["source"] for x in results] == [p.name for p in imgs] + ["blank.webp"]
    assert [x["status"] for x in results] == ["added"] * 3 + ["rejected"], results
    faces = admin.get(f"/v1/collections/default/persons/{pid}/faces").json()
    assert sorted(f["source"] for f in faces) == sorted(p.name for p in imgs)
    for f in faces:  # a thumbnail was cut from each added face
        t = admin.get(f"/v1/collections/default/persons/{pid}/faces/{f['id']}/thumbnail")
        assert t.status_code == 200 and t.content[:2] == b"\xff\xd8"
    assert admin.delete(f"/v1/collections/default/persons/{pid}").status_code == 200


def _collage() -> bytes:
    """The 24-face group photo tiled 2 x 2: about 96 faces."""
    im = Image.open(need(DATA / GROUP))
    collage = Image.new("RGB", (im.width * 2, im.height * 2))
    for x in (0, im.width):
        for y in (0, im.height):
            collage.paste(im, (x, y))
    buf = io.BytesIO()
    collage.save(buf, "JPEG", quality=60)
    return buf.getvalue()


def test_group_photo_works_and_faces_per_image_are_capped(admin: httpx.Client, enrolled: dict) -> None:
    group = need(DATA / GROUP)
    r = admin.post("/v1/collections/default/identify", files={"image": (group.name, group.read_bytes())})
    assert r.status_code == 200, r.text
    assert len(r.json()["faces"]) >= 20  # 24 people: the defaults keep a group photo whole
    r = admin.post("/v1/detect", files={"image": ("collage.jpg", _collage())})
    assert r.status_code == 200, r.text
    assert len(r.json()["faces"]) == 40  # ~96 faces; the 40 largest are analysed
    intact(admin, enrolled)


# -- video limits when the file is opened; job queue, time limit, uploads deleted ------------------------
CLIP_1080P = "video/facenet_pytorch_data/examples/video.mp4"
CLIP_SHORT = "video/face_recognition_examples/examples/short_hamilton_clip.mp4"


def _huge_avi(tmp: Path, side: int = 5000) -> bytes:
    import cv2
    import numpy as np

    path = tmp / "huge.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (side, side))
    assert writer.isOpened()
    for _ in range(2):
        writer.write(np.zeros((side, side, 3), np.uint8))
    writer.release()
    return path.read_bytes()


def test_video_frame_size_and_length_are_checked_on_open(tmp_path: Path) -> None:
    from facewise.video import DecodeOptions, VideoLimitError, VideoReader

    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "huge.avi").write_bytes(_huge_avi(tmp_path))
    with pytest.raises(VideoLimitError, match="5000x5000 = 25000000 pixels exceed the limit"):
        VideoReader(tmp_path / "x" / "huge.avi", DecodeOptions(max_pixels=3840 * 2160))
    clip = need(DATA / CLIP_SHORT)
    with pytest.raises(VideoLimitError, match="s long, more than the limit of 2 s"):
        VideoReader(clip, DecodeOptions(max_duration_s=2))
    with VideoReader(clip, DecodeOptions(max_duration_s=60)) as reader:
        assert reader.info.width == 640


def _wait(admin: httpx.Client, job: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = admin.get(f"/v1/jobs/{job}").json()
        if state["state"] in ("done", "failed", "cancelled"):
            return state
        time.sleep(0.3)
    raise AssertionError(f"job {job} did not end: {state}")


def test_video_jobs_have_a_queue_limit_a_time_limit_and_leave_no_files(server: Server, admin: httpx.Client,
                                                                        enrolled: dict, tmp_path: Path) -> None:
    jobs_dir = server.db.with_name(server.db.name + ".jobs")
    r = admin.post("/v1/collections/default/videos", files={"video": ("huge.avi", _huge_avi(tmp_path))})
    assert r.status_code == 413 and code_of(r) == "video_too_large", r.text
    assert "huge.avi" in r.text and str(jobs_dir) not in r.text
    clip = need(DATA / CLIP_1080P).read_bytes()  # 1080p: accepted with the default limits
    ids = []
    for _ in range(2):  # every frame: 105 HOG passes at 1280 px take well over the 3 s limit on any CPU
        r = admin.post("/v1/collections/default/videos", files={"video": ("clip.mp4", clip)}, data={"fps": "30"})
        assert r.status_code == 202, r.text
        ids.append(r.json()["id"])
    r = admin.post("/v1/collections/default/videos", files={"video": ("clip.mp4", clip)})
    assert r.status_code == 429 and code_of(r) == "queue_full" and int(r.headers["Retry-After"]) > 0, r.text
    queued = admin.delete(f"/v1/jobs/{ids[1]}").json()
    if queued["state"] == "cancelled":  # cancelled while queued: its upload is gone at once
        assert not (jobs_dir / f"{ids[1]}.video").exists()
    first = _wait(admin, ids[0])
    assert first["state"] == "failed" and first["error"]["code"] == "job_timeout", first
    assert "clip.mp4" in first["error"]["message"]
    _wait(admin, ids[1])
    assert list(jobs_dir.iterdir()) == []
    intact(admin, enrolled)


def test_stale_job_uploads_are_removed_at_start_up(tmp_path: Path) -> None:
    from reliability_helpers import service_app

    jobs_dir = tmp_path / "gallery.db.jobs"
    jobs_dir.mkdir()
    (jobs_dir / "0123456789abcdef.video").write_bytes(b"plaintext video of a dead job")
    (jobs_dir / "0123456789abcdef.video.out").mkdir()
    (jobs_dir / "keep.txt").write_text("not ours")
    service_app(tmp_path)
    assert sorted(p.name for p in jobs_dir.iterdir()) == ["keep.txt"]


# -- 4. one key cannot take every worker ----------------------------------------------------------------
def test_a_key_runs_a_bounded_number_of_image_requests_at_once(server: Server, admin: httpx.Client,
                                                               enrolled: dict, lfw: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    r = admin.post("/v1/keys", json={"name": "storm", "scopes": ["recognize"], "collections": ["*"]})
    storm = r.json()["token"]
    r = admin.post("/v1/keys", json={"name": "other", "scopes": ["recognize"], "collections": ["*"]})
    other = r.json()["token"]
    collage = _collage()
    probe = next((lfw / "images" / "Aaron_Peirsol").glob("*.jpg")).read_bytes()

    def storm_call(_: int) -> httpx.Response:
        with server.client(storm) as c:
            return c.post("/v1/collections/default/identify", files={"image": ("c.jpg", collage)})

    with ThreadPoolExecutor(4) as pool:
        storms = list(pool.map(storm_call, range(4)))
        time.sleep(0.2)
    with server.client(other) as c:  # meanwhile (and after) the other key is served
        r = c.post("/v1/collections/default/identify", files={"image": ("p.jpg", probe)})
        assert r.status_code == 200 and r.json()["faces"][0]["person"] == "Before The Attacks", r.text
    codes = sorted(x.status_code for x in storms)
    # --workers 2: one image request of a key runs at a time, one waits for its turn, the others are refused
    assert codes.count(200) >= 2 and 429 in codes, codes
    busy = next(x for x in storms if x.status_code == 429)
    assert code_of(busy) == "busy" and busy.headers["Retry-After"] == "1"
    intact(admin, enrolled)


def test_live_camera_frames_share_the_keys_image_budget(server: Server, admin: httpx.Client, enrolled: dict,
                                                       lfw: Path) -> None:
    """The web page's webcam view has its own session endpoint; its frames are image requests of the key like
    identify: collage frames to both of a key's sessions (one each, so no session refuses its own second frame)
    while the same key identifies collages are refused beyond the key's slots, and another key is served."""
    from concurrent.futures import ThreadPoolExecutor

    r = admin.post("/v1/keys", json={"name": "cam-storm", "scopes": ["recognize"], "collections": ["*"]})
    storm = r.json()["token"]
    with server.client(storm) as c:
        sids = [c.post("/v1/collections/default/live", json={}).json()["session_id"] for _ in range(2)]
        third = c.post("/v1/collections/default/live", json={})
    assert third.status_code == 429 and code_of(third) == "live_sessions_full"
    collage = _collage()
    probe = next((lfw / "images" / "Aaron_Peirsol").glob("*.jpg")).read_bytes()

    def frame(i: int) -> httpx.Response:
        with server.client(storm) as c:
            if i < 2:
                return c.post(f"/v1/collections/default/live/{sids[i]}/frames", files={"image": ("c.jpg", collage)})
            return c.post("/v1/collections/default/identify", files={"image": ("c.jpg", collage)})

    with ThreadPoolExecutor(4) as pool:
        frames = list(pool.map(frame, range(4)))
        time.sleep(0.2)
    with server.client(other_key(admin)) as c:
        r = c.post("/v1/collections/default/identify", files={"image": ("p.jpg", probe)})
        assert r.status_code == 200 and r.json()["faces"][0]["person"] == "Before The Attacks", r.text
    codes = sorted(x.status_code for x in frames)
    assert codes.count(200) >= 1 and 429 in codes, codes
    assert {code_of(x) for x in frames if x.status_code == 429} == {"busy"}  # the key's budget, not a session's
    with server.client(storm) as c:
        for sid in sids:
            assert c.delete(f"/v1/collections/default/live/{sid}").status_code == 200
    intact(admin, enrolled)


def other_key(admin: httpx.Client) -> str:
    r = admin.post("/v1/keys", json={"name": "bystander", "scopes": ["recognize"], "collections": ["*"]})
    return str(r.json()["token"])


# -- 6. files with biometric data or secrets are owner-only ------------------------------------------------
def _mode(p: Path) -> int:
    return p.stat().st_mode & 0o777


def test_cli_galleries_and_exports_are_private(tmp_path: Path, lfw: Path) -> None:
    from reliability_helpers import run_cli, text

    key = tmp_path / "gallery.key"
    img = next((lfw / "images" / "Aaron_Peirsol").glob("*.jpg"))
    r = run_cli("encrypt", "keygen", str(key))
    assert r.returncode == 0 and _mode(key) == 0o600, text(r.stderr)
    db = tmp_path / "g.db"
    env = {"FACEWISE_KEY_FILE": str(key)}
    r = run_cli("enroll", str(img), "--name", "Aaron", "--db", str(db), env=env)
    assert r.returncode == 0, text(r.stderr)
    # WAL mode: -wal/-shm may be gone after a clean close; whatever exists is owner-only
    files = [p for p in (db, db.with_name("g.db-wal"), db.with_name("g.db-shm")) if p.exists()]
    assert db in files and all(_mode(p) == 0o600 for p in files), {p.name: oct(_mode(p)) for p in files}
    out = tmp_path / "export.json"
    r = run_cli("export", str(out), "--db", str(db), env=env)
    assert r.returncode == 0, text(r.stderr)
    assert _mode(out) == 0o600
    doc = json.loads(out.read_text())
    assert doc["plaintext_vectors"] is True and doc["source_encrypted"] is True
    assert "plaintext" in text(r.stderr + r.stdout)


def test_bootstrap_key_file_cannot_be_planted(tmp_path: Path) -> None:
    from facewise.service.auth import write_secret_file

    target = tmp_path / "admin-key"
    victim = tmp_path / "attacker-readable"
    victim.write_text("")
    victim.chmod(0o644)
    for pid_name in (f"admin-key.{os.getpid()}.tmp", ".admin-key.tmp"):  # the old, guessable names
        (tmp_path / pid_name).symlink_to(victim)
    write_secret_file(target, "fw_secret\n")
    assert target.read_text() == "fw_secret\n" and _mode(target) == 0o600 and not target.is_symlink()
    assert victim.read_text() == ""  # nothing went through a planted link
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp") and not p.is_symlink()) == []


def test_the_served_gallery_and_its_log_files_are_private(server: Server, enrolled: dict) -> None:
    files = [p for p in server.db.parent.iterdir() if p.name.startswith(server.db.name) and p.is_file()]
    assert {server.db.name, server.db.name + "-wal", server.db.name + ".admin-key"} <= {p.name for p in files}
    assert all(_mode(p) == 0o600 for p in files), {p.name: oct(_mode(p)) for p in files}


# -- 7. answers that were 500s ---------------------------------------------------------------------------
def test_ids_beyond_64_bits_and_odd_face_choices_are_4xx(admin: httpx.Client, enrolled: dict, lfw: Path) -> None:
    huge = str(2**64 + 1)
    for method, path in (("GET", f"/persons/{huge}"), ("PATCH", f"/persons/{huge}"), ("DELETE", f"/persons/{huge}"),
                         ("GET", f"/persons/{huge}/faces"), ("DELETE", f"/faces/{huge}"),
                         ("GET", f"/persons/{enrolled['id']}/faces/{huge}/thumbnail")):
        r = admin.request(method, "/v1/collections/default" + path, json={"name": "x"} if method == "PATCH" else None)
        assert r.status_code in (404, 422) and code_of(r) in ("not_found", "invalid_request"), (path, r.text)
    img = next((lfw / "images" / "Aaron_Peirsol").glob("*.jpg")).read_bytes()
    r = admin.post("/v1/collections/default/verify", files={"image": ("a.jpg", img)}, data={"person_id": huge})
    assert r.status_code == 422 and code_of(r) == "invalid_request", r.text
    for face in ("²", "٣", "99999999999999999999"):
        r = admin.post(f"/v1/collections/default/persons/{enrolled['id']}/faces", data={"face": face},
                       files=[("files", ("a.jpg", img))])
        assert r.status_code == 422 and code_of(r) == "invalid_request", (face, r.text)
    intact(admin, enrolled)


def test_forwarded_for_is_not_trusted_by_default(admin: httpx.Client, enrolled: dict) -> None:
    r = admin.post("/v1/collections/default/persons", json={"name": "Forwarded"},
                   headers={"X-Forwarded-For": "203.0.113.9"})
    assert r.status_code == 201, r.text
    entry = next(e for e in admin.get("/v1/audit").json() if e["action"] == "person.create")
    assert entry["target"] == str(r.json()["id"]) and entry["remote"] == "127.0.0.1", entry
    assert admin.delete(f"/v1/collections/default/persons/{r.json()['id']}").status_code == 200


def test_a_full_disk_is_a_507_and_nothing_stored_is_lost(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from reliability_helpers import service_app

    app, token = service_app(tmp_path)
    with TestClient(app, raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        assert client.post("/v1/collections/default/persons", json={"name": "Kept"}).status_code == 201
        store = app.state.ctx.engines.store
        pages = store._db.execute("PRAGMA page_count").fetchone()[0]
        store._db.execute(f"PRAGMA max_page_count={pages}")  # SQLite's own SQLITE_FULL, as on a full disk
        answers = [client.post("/v1/collections/default/persons", json={"name": f"Filler {i}",
                                                                         "metadata": {"x": "y" * 8000}})
                   for i in range(8)]
        full = [r for r in answers if r.status_code != 201]
        assert full and all(r.status_code == 507 and code_of(r) == "storage_full" for r in full), \
            [(r.status_code, r.text[:200]) for r in answers]
        assert str(tmp_path) not in full[0].text
        store._db.execute("PRAGMA max_page_count=1073741823")
        names = [p["name"] for p in client.get("/v1/collections/default/persons").json()["items"]]
        assert "Kept" in names
        assert client.post("/v1/collections/default/persons", json={"name": "After"}).status_code == 201


def test_readyz_is_503_while_the_gallery_key_is_missing(tmp_path: Path, lfw: Path) -> None:
    import subprocess
    import sys

    from reliability_helpers import run_cli, text
    from service_helpers import free_port, stop_process

    key, db = tmp_path / "gallery.key", tmp_path / "gallery.db"
    img = next((lfw / "images" / "Aaron_Peirsol").glob("*.jpg"))
    assert run_cli("encrypt", "keygen", str(key)).returncode == 0
    r = run_cli("enroll", str(img), "--name", "Aaron", "--db", str(db), env={"FACEWISE_KEY_FILE": str(key)})
    assert r.returncode == 0, text(r.stderr)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("FACEWISE_KEY", "FACEWISE_KEY_FILE")}
    with (tmp_path / "server.log").open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "facewise", "serve", "--db", str(db), "--port", str(port),
                                 "--key-file", str(tmp_path / "admin-key")], stdout=log, stderr=subprocess.STDOUT,
                                env=env, stdin=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                ready = httpx.get(url + "/readyz", timeout=2)
                if ready.json()["checks"]["models"]:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        assert ready.status_code == 503 and ready.json()["checks"]["gallery"] is False, ready.text
        assert "no key" in ready.json()["problem"] and str(tmp_path) not in ready.text
        token = (tmp_path / "admin-key").read_text().strip()
        r = httpx.post(url + "/v1/collections/default/identify", headers={"Authorization": f"Bearer {token}"},
                       files={"image": ("a.jpg", img.read_bytes())}, timeout=60)
        assert 400 <= r.status_code < 500 and str(tmp_path) not in r.text, r.text
    finally:
        stop_process(proc)
    r = run_cli("people", "list", "--db", str(db), env={"FACEWISE_KEY_FILE": str(key)})
    assert r.returncode == 0 and "Aaron" in text(r.stdout), text(r.stderr)
