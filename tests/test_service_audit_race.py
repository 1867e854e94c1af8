"""Issue 25 finding 7: an audit row that names a person, written just after a racing delete of that person, must
not keep their name. The interleaving is forced (the delete lands between the store's commit and the audit row)
and also left to chance (enrolment and delete from two threads), with the gallery beside the service's tables
(erasure triggers) and in a file of its own (the erasure hook)."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from reliability_helpers import service_app

pytestmark = pytest.mark.shared("data")


def _photo(lfw: Path) -> bytes:
    return (lfw / "images" / "George_W_Bush" / "George_W_Bush_0007.jpg").read_bytes()


def _named_rows(db: Path, names: list[str]) -> list[tuple[str, str]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT action, detail FROM service_audit").fetchall()
    return [(a, d) for a, d in rows if any(n in d for n in names)]


@pytest.fixture(params=["beside", "elsewhere"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Any, str, Path]:
    extra = {"gallery": str(tmp_path / "elsewhere.db")} if request.param == "elsewhere" else {}
    app, token = service_app(tmp_path, thumbnails=False, **extra)
    return app, token, tmp_path / "gallery.db"


def test_a_delete_between_the_commit_and_the_audit_row_erases_the_row(served: tuple[Any, str, Path],
                                                                        lfw: Path) -> None:
    app, token, db = served
    ctx = app.state.ctx
    real_audit = ctx.keys.audit
    victims: list[str] = []

    def audit_after_a_delete(event: Any) -> int:  # another client's delete lands first
        if event.action in ("person.create", "face.enroll", "person.rename") and event.collection == "default":
            ctx.engines.face_wise("default").delete_person(int(event.target))
        return real_audit(event)

    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        ctx.keys.audit = audit_after_a_delete
        victims.append("Created Then Erased")
        r = client.post("/v1/collections/default/persons", json={"name": victims[-1]})
        assert r.status_code == 201, r.text
        ctx.keys.audit = real_audit
        for what in ("enrol", "rename"):
            victims.append(f"Erased During {what}")
            pid = client.post("/v1/collections/default/persons", json={"name": victims[-1]}).json()["id"]
            ctx.keys.audit = audit_after_a_delete
            if what == "enrol":
                r = client.post(f"/v1/collections/default/persons/{pid}/faces",
                                files=[("files", ("a.jpg", _photo(lfw), "image/jpeg"))])
            else:
                victims.append("Renamed Then Erased")
                r = client.patch(f"/v1/collections/default/persons/{pid}", json={"name": victims[-1]})
            ctx.keys.audit = real_audit
            assert r.status_code in (200, 404), r.text
            assert client.get(f"/v1/collections/default/persons/{pid}").status_code == 404
        # a person who stays keeps their audit trail
        kept = client.post("/v1/collections/default/persons", json={"name": "Still Here"}).json()
        log = client.get("/v1/audit").json()
    assert _named_rows(db, victims) == []
    assert any(e["action"] == "person.create" and e["detail"] == {"name": "Still Here"} for e in log), log
    assert any(e["target"] == str(kept["id"]) for e in log)


def test_enrolments_racing_deletes_leave_no_name_in_the_audit(served: tuple[Any, str, Path], lfw: Path) -> None:
    app, token, db = served
    photo = _photo(lfw)
    names = [f"Racer {i}" for i in range(12)]
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        for i, name in enumerate(names):
            pid = client.post("/v1/collections/default/persons", json={"name": name}).json()["id"]
            enrolled: list[int] = []

            def enrol(pid: int = pid, i: int = i, enrolled: list[int] = enrolled) -> None:
                r = client.post(f"/v1/collections/default/persons/{pid}/faces",
                                files=[("files", (f"{i}.jpg", photo + bytes(i), "image/jpeg"))])
                enrolled.append(r.status_code)

            t = threading.Thread(target=enrol)
            t.start()
            assert client.delete(f"/v1/collections/default/persons/{pid}").status_code in (200, 404)
            t.join(60)
            assert enrolled and enrolled[0] in (200, 404), enrolled
    assert _named_rows(db, names) == []
    with sqlite3.connect(db) as conn:  # every round left its rows, blanked
        rows = conn.execute("SELECT detail FROM service_audit WHERE action LIKE 'person.%'").fetchall()
    details = [json.loads(d) for (d,) in rows]
    assert sum(d == {"erased": True} for d in details) >= len(names)
