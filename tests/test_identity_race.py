"""Upload of faces racing a DELETE of the same person, from two separate client processes, against a real server
over the SQLite gallery and over PostgreSQL + pgvector (``--db postgresql://…`` with the service's own ``--state``).

The upload route stores faces by person id inside the transaction that checks the person exists, so a delete
wins cleanly: the person stays deleted, no person (under that name or a new id) holds the faces, and the upload
is answered 2xx (it finished first; the delete then erased its faces) or 404/409 (nothing stored).
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from service_helpers import start_server, stop_process

ROUNDS = 24
NAME = "race subject"


class Client:
    """One ``race_client.py`` process (upload or delete), fed a command a line."""

    def __init__(self, role: str, url: str, key: str, images: list[Path]) -> None:
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("race_client.py")), role, url, key,
                                      *map(str, images)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)

    def send(self, pid: int, delay: float) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"pid": pid, "delay": delay}) + "\n")
        self.proc.stdin.flush()

    def answer(self) -> dict:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            pytest.fail(f"race client exited: {self.proc.stderr.read() if self.proc.stderr else ''}")
        return json.loads(line)

    def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        stop_process(self.proc)


@pytest.fixture(scope="module", params=["sqlite", "pgvector"])
def server(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"race-{request.param}")
    if request.param == "sqlite":
        srv = start_server(tmp, "--rate", "10000", "--burst", "10000")
        srv.gallery = None  # the gallery is srv.db
        yield srv
        srv.stop()
        return
    from _servers import postgres_dsn
    from facewise.gallery.pgvector import PgVectorStore

    dsn, schema = postgres_dsn(), f"gallery_race_{uuid.uuid4().hex[:8]}"
    address = f"{dsn}{'&' if '?' in dsn else '?'}schema={schema}"
    from facewise.gallery import SQLiteStore
    from facewise.service.auth import KeyStore

    SQLiteStore(tmp / "gallery.db").close()  # the state file exists before the service starts
    KeyStore(tmp / "gallery.db").close()
    srv = start_server(tmp, "--db", address, "--state", str(tmp / "gallery.db"), "--rate", "10000", "--burst", "10000")
    srv.gallery = PgVectorStore(dsn, schema=schema)
    yield srv
    srv.stop()
    srv.gallery.drop_schema()
    srv.gallery.close()


def test_a_deleted_person_stays_deleted_when_an_upload_races_the_delete(server, lfw):
    images = sorted((lfw / "images" / "Abdullah_Gul").glob("*.jpg"))[:4]
    assert len(images) == 4
    admin = server.client()
    uploader = Client("upload", server.url, server.key, images)
    deleter = Client("delete", server.url, server.key, [])
    try:
        # how long an upload of these faces takes here: the deletes are spread over it
        pid = admin.post("/v1/collections/default/persons", json={"name": "timing"}).json()["id"]
        uploader.send(pid, 0.0)
        timing = uploader.answer()
        assert timing["status"] == 200 and timing["body"]["added"] == 4, timing
        upload_s = timing["end"] - timing["start"]
        assert admin.delete(f"/v1/collections/default/persons/{pid}").status_code == 200

        rng = np.random.default_rng(12)
        fractions = np.linspace(-0.3, 1.6, ROUNDS) + rng.uniform(-0.05, 0.05, ROUNDS)  # of the upload's duration
        outcomes: list[tuple[float, int]] = []
        ids: set[int] = set()
        for frac in fractions:
            r = admin.post("/v1/collections/default/persons", json={"name": NAME})
            assert r.status_code == 201, r.text
            pid = r.json()["id"]
            assert pid not in ids  # (ids are never reused)
            ids.add(pid)
            delay = abs(float(frac)) * upload_s
            uploader.send(pid, 0.0 if frac >= 0 else delay)  # frac < 0: the delete goes first
            deleter.send(pid, delay if frac >= 0 else 0.0)
            up, down = uploader.answer(), deleter.answer()
            assert down["status"] == 200, down
            assert up["status"] in (200, 404, 409), up
            if up["status"] != 200:
                assert up["body"]["error"]["code"] in ("not_found", "conflict"), up
            outcomes.append((float(frac), up["status"]))
            # the person stays deleted: not under its id, not under its name, no face left anywhere
            assert admin.get(f"/v1/collections/default/persons/{pid}").status_code == 404
            persons = admin.get("/v1/collections/default/persons", params={"limit": 500}).json()
            assert persons["items"] == [] and persons["total"] == 0, (frac, up, persons)
            assert admin.get("/v1/collections/default").json()["samples"] == 0
        statuses = [s for _, s in outcomes]
        print(f"upload {upload_s:.2f} s; outcomes (fraction of it, status):",
              [(round(f, 2), s) for f, s in outcomes])
        assert 404 in statuses and 200 in statuses, outcomes  # both orders happened
    finally:
        uploader.stop()
        deleter.stop()
        admin.close()
    time.sleep(0.2)
    with sqlite3.connect(server.db) as db:  # nothing derived from the faces survived either
        if server.gallery is None:
            assert db.execute("SELECT COUNT(*) FROM persons").fetchone()[0] == 0
            assert db.execute("SELECT COUNT(*) FROM samples").fetchone()[0] == 0
            assert db.execute("SELECT COUNT(*) FROM templates").fetchone()[0] == 0
        else:
            assert server.gallery.list_persons("default") == [] and server.gallery.list_samples("default") == []
        assert db.execute("SELECT COUNT(*) FROM service_thumbnails").fetchone()[0] == 0


def test_ids_outside_the_database_range_are_404_not_500(server):
    with server.client() as admin:
        for pid in (0, -1, 2**63, 10**30):
            for method, path in (("GET", f"/persons/{pid}"), ("DELETE", f"/persons/{pid}"),
                                 ("GET", f"/persons/{pid}/faces"), ("PATCH", f"/persons/{pid}"),
                                 ("DELETE", f"/faces/{pid}")):
                r = admin.request(method, f"/v1/collections/default{path}",
                                  json={"name": "eve"} if method == "PATCH" else None)
                assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", (method, path, r.text)
