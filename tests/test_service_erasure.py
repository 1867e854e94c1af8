"""Erasure reaches every copy, through a real ``facewise serve``: deleting a person de-identifies the video-job
results and thumbnails that named them (whether the REST service or another process deleted them), deleting a
collection leaves no job, thumbnail or job file readable, and a re-created collection starts empty for every key."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from reliability_helpers import run_cli, text
from service_helpers import Server, httpx, start_server

COLL = "erase-video"
FPS = "2"  # 22 of the clip's 275 frames: enough to track both people, short on two shared cores


@pytest.fixture(scope="module")
def examples(knn: Path) -> Path:
    clip = knn.parent / "short_hamilton_clip.mp4"
    if not clip.exists():
        pytest.skip(f"{clip} is not available")
    return knn.parent


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Server:
    srv = start_server(tmp_path_factory.mktemp("erase"), "--rate", "1000", "--burst", "1000")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def admin(server: Server) -> httpx.Client:
    with server.client() as c:
        r = c.post("/v1/collections", json={"name": COLL})
        assert r.status_code == 201, r.text
        yield c


def enrol(client: httpx.Client, name: str, photo: Path) -> dict[str, Any]:
    r = client.post(f"/v1/collections/{COLL}/persons", json={"name": name})
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    r = client.post(f"/v1/collections/{COLL}/persons/{pid}/faces", data={"face": "largest"},
                    files=[("files", (photo.name, photo.read_bytes(), "image/png"))])
    assert r.status_code == 200 and r.json()["added"] == 1, r.text
    return r.json()


def submit(client: httpx.Client, clip: Path) -> str:
    r = client.post(f"/v1/collections/{COLL}/videos", data={"fps": FPS},
                    files={"video": ("clip.mp4", clip.read_bytes(), "video/mp4")})
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def finished(client: httpx.Client, job_id: str, timeout: float = 240) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["state"] in ("done", "failed", "cancelled"):
            assert job["state"] == "done", job
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s")


def thumbs_of(client: httpx.Client, job: dict[str, Any], who: str) -> list[int]:
    return [t["thumbnail"] for t in job["result"]["tracks"] if t["person"] == who and t["thumbnail"] is not None]


def assert_erased(client: httpx.Client, job_id: str, name: str, pid: int, thumbs: list[int]) -> dict[str, Any]:
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert name not in json.dumps(job), job  # neither as the person nor as a candidate nor in an event
    assert all(t["person_id"] != pid for t in job["result"]["tracks"])
    assert job["annotated_video"] is False  # its frames showed them, boxed and named
    assert client.get(f"/v1/jobs/{job_id}/video").status_code == 404
    for index in thumbs:  # the crops that showed them
        r = client.get(f"/v1/jobs/{job_id}/thumbnails/{index}")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    return job


def test_person_deletion_reaches_job_results_and_thumbnails(server: Server, admin: httpx.Client,
                                                           examples: Path) -> None:
    lin = enrol(admin, "Lin-Manuel Miranda", examples / "lin-manuel-miranda.png")["person"]
    enrol(admin, "Alex Lacamoire", examples / "alex-lacamoire.png")
    job_id = submit(admin, examples / "short_hamilton_clip.mp4")
    job = finished(admin, job_id)
    lin_thumbs = thumbs_of(admin, job, lin["name"])
    assert lin_thumbs, job["result"]["tracks"]
    assert admin.get(f"/v1/jobs/{job_id}/thumbnails/{lin_thumbs[0]}").status_code == 200
    assert job["annotated_video"] is True and admin.get(f"/v1/jobs/{job_id}/video").status_code == 200
    timing = [(t["track"], t["first_ms"], t["last_ms"], t["frames"]) for t in job["result"]["tracks"]]
    faces = admin.get(f"/v1/collections/{COLL}/persons/{lin['id']}/faces").json()
    face_thumb = f"/v1/collections/{COLL}/persons/{lin['id']}/faces/{faces[0]['id']}/thumbnail"
    assert admin.get(face_thumb).status_code == 200

    r = admin.delete(f"/v1/collections/{COLL}/persons/{lin['id']}")
    assert r.status_code == 200, r.text
    after = assert_erased(admin, job_id, lin["name"], lin["id"], lin_thumbs)
    # the tracks stay (someone was on screen then), de-identified
    assert [(t["track"], t["first_ms"], t["last_ms"], t["frames"]) for t in after["result"]["tracks"]] == timing
    assert sum(bool(t.get("erased")) for t in after["result"]["tracks"]) >= len(lin_thumbs)
    assert admin.get(face_thumb).status_code == 404
    audit = admin.get("/v1/audit", params={"collection": COLL, "limit": 500})
    assert audit.status_code == 200 and lin["name"] not in audit.text  # the audit keeps no name of them


def test_deletion_by_another_process_reaches_job_results(server: Server, admin: httpx.Client,
                                                         examples: Path) -> None:
    """``facewise people delete`` on the same gallery while the service runs: the job forgets them on read."""
    again = enrol(admin, "Lin Again", examples / "lin-manuel-miranda.png")["person"]
    job_id = submit(admin, examples / "short_hamilton_clip.mp4")
    job = finished(admin, job_id)
    lin_thumbs = thumbs_of(admin, job, again["name"])
    assert lin_thumbs, job["result"]["tracks"]
    r = run_cli("people", "delete", again["name"], "--db", str(server.db), "--collection", COLL)
    assert r.returncode == 0, text(r.stderr)
    assert_erased(admin, job_id, again["name"], again["id"], lin_thumbs)


def test_collection_deletion_leaves_no_job_and_a_new_one_starts_empty(server: Server, admin: httpx.Client,
                                                                      examples: Path) -> None:
    jobs_dir = server.db.with_name(server.db.name + ".jobs")
    old = [j["id"] for j in admin.get("/v1/jobs").json() if j["collection"] == COLL]
    assert old
    thumbs = {j: admin.get(f"/v1/jobs/{j}").json()["thumbnails"] for j in old}
    assert any(thumbs.values())
    pending = submit(admin, examples / "short_hamilton_clip.mp4")  # queued or running when the collection goes
    assert list(jobs_dir.iterdir())

    assert admin.delete(f"/v1/collections/{COLL}").status_code == 204
    for job_id in [*old, pending]:
        r = admin.get(f"/v1/jobs/{job_id}")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", r.text
        for index in range(max(1, thumbs.get(job_id, 0))):
            assert admin.get(f"/v1/jobs/{job_id}/thumbnails/{index}").status_code == 404
    assert not any(j["collection"] == COLL for j in admin.get("/v1/jobs").json())
    deadline = time.monotonic() + 60  # a running job stops at its next frame; its upload and outputs go
    while list(jobs_dir.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not list(jobs_dir.iterdir())

    assert admin.post("/v1/collections", json={"name": COLL}).status_code == 201
    r = admin.post("/v1/keys", json={"name": "next-tenant", "scopes": ["read", "recognize"], "collections": [COLL]})
    assert r.status_code == 201, r.text
    for client in (admin, server.client(r.json()["token"])):
        persons = client.get(f"/v1/collections/{COLL}/persons")
        assert persons.status_code == 200 and persons.json()["items"] == [] and persons.json()["total"] == 0
        assert not any(j["collection"] == COLL for j in client.get("/v1/jobs").json())
        for job_id in [*old, pending]:
            assert client.get(f"/v1/jobs/{job_id}").status_code == 404
    time.sleep(2)  # the cancelled job's worker has long finished: nothing came back
    assert not list(jobs_dir.iterdir())
    assert not any(j["collection"] == COLL for j in admin.get("/v1/jobs").json())


# -- the service over a server store: PostgreSQL + pgvector, Milvus ------------------------------------------
@pytest.fixture(scope="module", params=["pgvector", "milvus"])
def store_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Server:
    """``facewise serve --db postgresql://…?schema=…|milvus://… --state gallery.db``: the gallery in a database
    server, the service's keys, audit log and thumbnails in its own file."""
    from _servers import MilvusLiteServer, postgres_dsn

    tmp = tmp_path_factory.mktemp(f"erase-{request.param}")
    from facewise.service.auth import KeyStore

    KeyStore(tmp / "gallery.db").close()  # the key tables exist before the service starts (thumbnails still kept)
    cleanup: list[Any] = []
    if request.param == "pgvector":
        dsn = postgres_dsn()
        schema = f"erase_srv_{uuid.uuid4().hex[:8]}"
        address = f"{dsn}{'&' if '?' in dsn else '?'}schema={schema}"

        def drop_schema() -> None:
            import psycopg

            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")

        cleanup.append(drop_schema)
    else:
        milvus = MilvusLiteServer(tmp / "milvus-data")
        cleanup.append(milvus.stop)
        address = f"milvus://127.0.0.1:{milvus.port}?meta={tmp / 'milvus-meta.db'}&prefix=erase"
    # start_server passes --db <tmp>/gallery.db first: the later --db wins; the key file follows --state
    srv = start_server(tmp, "--db", address, "--state", str(tmp / "gallery.db"), "--rate", "1000", "--burst", "1000")
    yield srv
    srv.stop()
    for step in cleanup:
        step()


def test_service_over_a_server_store_erases_every_copy(store_server: Server, examples: Path) -> None:
    import sqlite3

    with store_server.client() as admin:
        assert admin.post("/v1/collections", json={"name": COLL}).status_code == 201
        lin = enrol(admin, "Lin-Manuel Miranda", examples / "lin-manuel-miranda.png")["person"]
        face = admin.get(f"/v1/collections/{COLL}/persons/{lin['id']}/faces").json()[0]
        thumb_url = f"/v1/collections/{COLL}/persons/{lin['id']}/faces/{face['id']}/thumbnail"
        assert admin.get(thumb_url).status_code == 200
        photo = (examples / "lin-manuel-miranda.png").read_bytes()
        r = admin.post(f"/v1/collections/{COLL}/identify", files={"image": ("q.png", photo, "image/png")})
        assert r.status_code == 200 and r.json()["faces"][0]["person"] == lin["name"], r.text
        job_id = submit(admin, examples / "short_hamilton_clip.mp4")
        lin_thumbs = thumbs_of(admin, finished(admin, job_id), lin["name"])
        assert lin_thumbs

        assert admin.delete(f"/v1/collections/{COLL}/persons/{lin['id']}").status_code == 200
        assert_erased(admin, job_id, lin["name"], lin["id"], lin_thumbs)
        assert admin.get(thumb_url).status_code == 404
        with sqlite3.connect(store_server.db) as conn:  # the service's own file kept no crop of them
            assert conn.execute("SELECT COUNT(*) FROM service_thumbnails").fetchone()[0] == 0
            # nor their name in the audit log (the gallery is elsewhere: no trigger, the erasure hook)
            assert not [d for (d,) in conn.execute("SELECT detail FROM service_audit") if lin["name"] in d]

        enrol(admin, "Lin Again", examples / "lin-manuel-miranda.png")
        assert admin.delete(f"/v1/collections/{COLL}").status_code == 204
        assert admin.get(f"/v1/jobs/{job_id}").status_code == 404
        assert admin.post("/v1/collections", json={"name": COLL}).status_code == 201
        assert admin.get(f"/v1/collections/{COLL}/persons").json()["total"] == 0
        with sqlite3.connect(store_server.db) as conn:
            assert conn.execute("SELECT COUNT(*) FROM service_thumbnails").fetchone()[0] == 0


def test_a_restarted_service_removes_a_killed_ones_uploads(tmp_path: Path) -> None:
    """Uploads and outputs left in <db>.jobs/ by a killed process belong to no job: the next start removes them
    (and nothing else in that folder)."""
    from facewise.service.jobs import JobManager

    left = tmp_path / "0123456789abcdef.video"
    left.write_bytes(b"\x00\x00\x00\x18ftypmp42")
    out = tmp_path / "0123456789abcdef.video.out"
    out.mkdir()
    (out / "track-1.jpg").write_bytes(b"\xff\xd8\xff")
    (tmp_path / "README").write_text("not ours")
    jobs = JobManager(lambda task: {}, lambda name: None, video_dir=tmp_path)  # type: ignore[arg-type,return-value]
    jobs.start()
    try:
        assert sorted(p.name for p in tmp_path.iterdir()) == ["README"]
    finally:
        jobs.stop()
