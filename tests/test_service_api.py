"""The REST service end to end: a real ``facewise serve`` process on a loopback port, the default profile."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from service_helpers import Server, httpx, start_server

MAX_UPLOAD_MB = 2
MAX_PIXELS = 5_000_000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, knn: Path) -> Server:
    srv = start_server(tmp_path_factory.mktemp("service"), "--max-upload-mb", str(MAX_UPLOAD_MB),
                       "--max-pixels", str(MAX_PIXELS), "--rate", "1000", "--burst", "1000")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def admin(server: Server) -> httpx.Client:
    with server.client() as c:
        yield c


def error_code(resp: httpx.Response) -> str:
    body = resp.json()
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"]), body
    return body["error"]["code"]


def make_key(admin: httpx.Client, name: str, scopes: list[str], collections: list[str] | None = None,
             **extra: float) -> str:
    r = admin.post("/v1/keys", json={"name": name, "scopes": scopes, "collections": collections or ["*"], **extra})
    assert r.status_code == 201, r.text
    assert r.json()["token"].startswith("fw_")
    return r.json()["token"]


def person_with_faces(client: httpx.Client, name: str, files: list[Path], collection: str = "default") -> dict:
    r = client.post(f"/v1/collections/{collection}/persons", json={"name": name})
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    uploads = [("files", (f.name, f.read_bytes(), "image/jpeg")) for f in files]
    r = client.post(f"/v1/collections/{collection}/persons/{pid}/faces", files=uploads, data={"face": "largest"})
    assert r.status_code == 200, r.text
    return r.json()


# -- service basics -----------------------------------------------------------------------------------
def test_health_docs_and_openapi(server: Server) -> None:
    assert httpx.get(server.url + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(server.url + "/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"models": True, "gallery": True}
    spec = httpx.get(server.url + "/openapi.json").json()
    paths = spec["paths"]
    for path in ("/v1/collections", "/v1/collections/{collection}/persons", "/v1/collections/{collection}/identify",
                 "/v1/collections/{collection}/verify", "/v1/detect", "/v1/analyze", "/v1/keys", "/v1/jobs/{job_id}",
                 "/v1/collections/{collection}/persons/{person_id}/faces", "/metrics", "/healthz", "/readyz"):
        assert path in paths, path
    assert {"HTTPBearer", "APIKeyHeader"} <= set(spec["components"]["securitySchemes"])
    docs = httpx.get(server.url + "/docs")
    assert docs.status_code == 200 and "/static/docs/swagger-ui-bundle.js" in docs.text  # packaged, not a CDN
    js = httpx.get(server.url + "/static/docs/swagger-ui-bundle.js")
    assert js.status_code == 200 and len(js.content) > 100_000
    page = httpx.get(server.url + "/")
    assert page.status_code == 200 and "<title>facewise</title>" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]


def test_cors_is_closed_by_default(server: Server) -> None:
    r = httpx.options(server.url + "/v1/me", headers={"Origin": "https://evil.example",
                                                      "Access-Control-Request-Method": "GET"})
    assert "access-control-allow-origin" not in r.headers


def test_metrics_count_requests_per_route(server: Server, admin: httpx.Client) -> None:
    admin.get("/v1/me")
    httpx.get(server.url + "/v1/me")  # 401
    text = httpx.get(server.url + "/metrics").text
    assert '# TYPE facewise_http_requests_total counter' in text
    assert 'facewise_http_requests_total{method="GET",route="/v1/me",status="200"}' in text
    assert 'facewise_http_requests_total{method="GET",route="/v1/me",status="401"}' in text
    assert 'facewise_http_request_duration_seconds_bucket{method="GET",route="/v1/me",le="+Inf"}' in text


# -- keys, scopes, collections ------------------------------------------------------------------------
def test_no_key_or_bad_key_is_401(server: Server) -> None:
    with server.client(key=None) as anon:
        r = anon.get("/v1/collections")
        assert r.status_code == 401 and error_code(r) == "unauthorized"
        assert r.headers["www-authenticate"].startswith("Bearer")
    with server.client(key="fw_000000000000_not-a-real-secret") as bad:
        r = bad.get("/v1/collections")
        assert r.status_code == 401 and error_code(r) == "unauthorized"
    with server.client(key=server.key[:-2] + "xx") as tampered:
        assert tampered.get("/v1/collections").status_code == 401


def test_scopes_and_collections_are_enforced(server: Server, admin: httpx.Client) -> None:
    r = admin.post("/v1/collections", json={"name": "lobby", "profile": "default"})
    assert r.status_code == 201, r.text
    assert r.json()["profile"] == "default"
    assert admin.post("/v1/collections", json={"name": "lobby"}).status_code == 409

    reader = make_key(admin, "reader", ["read"], ["lobby"])
    with server.client(reader) as c:
        assert c.get("/v1/collections/lobby/persons").status_code == 200
        assert [x["name"] for x in c.get("/v1/collections").json()] == ["lobby"]  # only what it may see
        r = c.post("/v1/collections/lobby/persons", json={"name": "x"})  # read-only
        assert r.status_code == 403 and error_code(r) == "forbidden"
        r = c.get("/v1/collections/default/persons")  # another collection
        assert r.status_code == 403 and error_code(r) == "forbidden"
        assert c.get("/v1/keys").status_code == 403  # key management is for admins of *
        assert c.get("/v1/me").json()["key"]["scopes"] == ["read"]

    enroller = make_key(admin, "enroller", ["enroll"], ["lobby"])
    with server.client(enroller) as c:
        assert c.post("/v1/collections/lobby/persons", json={"name": "x"}).status_code == 201
        assert c.get("/v1/collections/lobby/persons").json()["total"] == 1  # enroll implies read
        assert c.delete("/v1/collections/lobby").status_code == 403  # deleting collections is admin's

    lobby_admin = make_key(admin, "lobby-admin", ["admin"], ["lobby"])
    with server.client(lobby_admin) as c:
        assert c.post("/v1/keys", json={"name": "y", "scopes": ["admin"]}).status_code == 403  # no escalation
        assert c.post("/v1/collections", json={"name": "elsewhere"}).status_code == 403

    keys = {k["name"]: k for k in admin.get("/v1/keys").json()}
    assert {"bootstrap-admin", "reader", "enroller", "lobby-admin"} <= set(keys)
    assert all("hash" not in k and "token" not in k for k in keys.values())
    assert admin.delete(f"/v1/keys/{keys['reader']['id']}").json()["revoked_at"]
    with server.client(reader) as c:
        assert c.get("/v1/collections/lobby/persons").status_code == 401  # revoked at once

    assert admin.delete("/v1/collections/lobby").status_code == 204
    r = admin.get("/v1/collections/lobby")
    assert r.status_code == 404 and error_code(r) == "not_found"
    actions = [e["action"] for e in admin.get("/v1/audit", params={"limit": 50}).json()]
    assert {"key.create", "key.revoke", "collection.create", "collection.delete", "person.create"} <= set(actions)


def test_rate_limit_per_key(server: Server, admin: httpx.Client) -> None:
    slow = make_key(admin, "slow", ["read"], rate=0.05, burst=2)
    with server.client(slow) as c:
        codes = [c.get("/v1/collections").status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        r = c.get("/v1/collections")
        assert error_code(r) == "rate_limited" and int(r.headers["retry-after"]) >= 1
    assert admin.get("/v1/collections").status_code == 200  # other keys are not affected


def test_keys_cli(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from facewise.cli import app

    db = str(tmp_path / "keys.db")
    runner = CliRunner()
    r = runner.invoke(app, ["keys", "create", "--db", db, "--name", "kiosk", "--scope", "recognize",
                            "--collection", "lobby", "--json"])
    assert r.exit_code == 0, r.output
    created = json.loads(r.stdout.strip().splitlines()[-1])
    assert created["token"].startswith("fw_") and created["key"]["collections"] == ["lobby"]
    r = runner.invoke(app, ["keys", "list", "--db", db, "--json"])
    listed = [json.loads(line) for line in r.stdout.strip().splitlines()]  # JSON Lines: one key per line
    assert [k["name"] for k in listed] == ["kiosk"] and created["token"] not in r.stdout
    assert runner.invoke(app, ["keys", "revoke", created["key"]["id"], "--db", db]).exit_code == 0
    assert runner.invoke(app, ["keys", "create", "--db", db, "--name", "x", "--scope", "root"]).exit_code != 0


# -- the gallery and recognition ---------------------------------------------------------------------
def test_enroll_identify_verify_delete(server: Server, admin: httpx.Client, knn: Path) -> None:
    train = knn / "train"
    people = {}
    for d in sorted(p for p in train.iterdir() if p.is_dir()):
        out = person_with_faces(admin, d.name, sorted(d.iterdir()))
        assert out["added"] == len(list(d.iterdir())), out
        assert all(r["status"] == "added" for r in out["results"])
        people[d.name] = out["person"]
    assert set(people) == {"alex_lacamoire", "biden", "kit_harington", "obama", "rose_leslie"}

    listing = admin.get("/v1/collections/default/persons", params={"limit": 2, "offset": 0}).json()
    assert listing["total"] >= 5 and len(listing["items"]) == 2
    page2 = admin.get("/v1/collections/default/persons", params={"limit": 2, "offset": 2}).json()
    assert not {p["id"] for p in listing["items"]} & {p["id"] for p in page2["items"]}
    for path in ("/v1/collections/default/persons", "/v1/audit"):  # past the database's integers: 422, not 500
        huge = admin.get(path, params={"offset": 2**63})
        assert huge.status_code == 422 and "offset" in huge.json()["error"]["message"], huge.text

    # the same photo again is a duplicate, not a second sample
    obama = people["obama"]
    dup = admin.post(f"/v1/collections/default/persons/{obama['id']}/faces",
                     files=[("files", ("again.jpg", (train / "obama" / "obama.jpg").read_bytes(), "image/jpeg"))])
    assert dup.json()["results"][0]["status"] == "duplicate"

    group = (knn / "test" / "obama_and_biden.jpg").read_bytes()
    r = admin.post("/v1/collections/default/identify", files={"image": ("group.jpg", group, "image/jpeg")})
    assert r.status_code == 200, r.text
    body = r.json()
    names = [f["person"] for f in body["faces"]]
    assert {"obama", "biden"} <= set(names), names
    for f in body["faces"]:
        assert len(f["box"]) == 4 and "score" in f and "far" in f and "quality_reasons" in f
    assert body["image"] == {"width": 2000, "height": 1428}

    probe = (knn / "test" / "obama1.jpg").read_bytes()
    r = admin.post("/v1/collections/default/verify", files={"image": ("probe.jpg", probe, "image/jpeg")},
                   data={"person_id": str(obama["id"])})
    assert r.status_code == 200 and r.json()["same"] is True, r.text
    biden = (train / "biden" / "biden.jpg").read_bytes()
    r = admin.post("/v1/collections/default/verify", files={"image": ("a.jpg", probe, "image/jpeg"),
                                                            "other": ("b.jpg", biden, "image/jpeg")})
    assert r.status_code == 200 and r.json()["same"] is False, r.text
    r = admin.post("/v1/collections/default/verify", files={"image": ("a.jpg", probe, "image/jpeg")})
    assert r.status_code == 422 and error_code(r) == "invalid_request"
    # the group photo's faces, chosen by index (the order of identify/detect): each is the same as itself and
    # only the one named obama is obama
    for i, name in enumerate(names):
        r = admin.post("/v1/collections/default/verify", files={"image": ("g.jpg", group, "image/jpeg")},
                       data={"person_id": str(obama["id"]), "face": str(i)})
        assert r.status_code == 200 and r.json()["same"] is (name == "obama"), (i, name, r.text)
        assert r.json()["faces"][0]["box"] == body["faces"][i]["box"]
    r = admin.post("/v1/collections/default/verify", data={"face": "0", "other_face": "1"},
                   files={"image": ("g.jpg", group, "image/jpeg"), "other": ("g.jpg", group, "image/jpeg")})
    assert r.status_code == 200 and r.json()["same"] is False, r.text
    for bad in ("²", "-1", "first"):
        r = admin.post("/v1/collections/default/verify", files={"image": ("g.jpg", group, "image/jpeg")},
                       data={"person_id": str(obama["id"]), "face": bad})
        assert r.status_code == 422 and error_code(r) == "invalid_request" and "face must be" in r.text
    r = admin.post("/v1/collections/default/verify", files={"image": ("g.jpg", group, "image/jpeg")},
                   data={"person_id": str(obama["id"]), "face": "9"})
    assert r.status_code == 422, r.text  # no face 9 on the photo: the library's answer, not a 500

    r = admin.post("/v1/detect", files={"image": ("group.jpg", group, "image/jpeg")})
    assert r.status_code == 200 and len(r.json()["faces"]) == len(names)
    assert {"yaw", "quality", "quality_reasons", "box"} <= set(r.json()["faces"][0])
    r = admin.post("/v1/analyze", files={"image": ("probe.jpg", probe, "image/jpeg")})
    assert r.status_code == 200 and "modules" in r.json()

    # samples: list, thumbnail, delete one; then delete the person
    faces = admin.get(f"/v1/collections/default/persons/{obama['id']}/faces").json()
    assert len(faces) == 2 and {"quality", "yaw", "box"} <= set(faces[0])
    thumb = admin.get(f"/v1/collections/default/persons/{obama['id']}/faces/{faces[0]['id']}/thumbnail")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(thumb.content)).size[0] <= 112
    assert admin.delete(f"/v1/collections/default/faces/{faces[0]['id']}").status_code == 204
    assert admin.get(f"/v1/collections/default/persons/{obama['id']}").json()["samples"] == 1
    assert admin.delete(f"/v1/collections/default/faces/{faces[0]['id']}").status_code == 404

    renamed = admin.patch(f"/v1/collections/default/persons/{obama['id']}", json={"name": "Barack Obama"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "Barack Obama"
    r = admin.patch(f"/v1/collections/default/persons/{obama['id']}", json={"name": "biden"})
    assert r.status_code == 409 and error_code(r) == "conflict"
    r = admin.delete(f"/v1/collections/default/persons/{obama['id']}")
    assert r.status_code == 200 and r.json()["faces_deleted"] == 1
    r = admin.get(f"/v1/collections/default/persons/{obama['id']}")
    assert r.status_code == 404 and error_code(r) == "not_found"
    r = admin.post("/v1/collections/default/identify", files={"image": ("probe.jpg", probe, "image/jpeg")})
    assert [f["person"] for f in r.json()["faces"]] == ["unknown"]

    actions = {e["action"] for e in admin.get("/v1/audit", params={"collection": "default"}).json()}
    assert {"person.create", "face.enroll", "face.delete", "person.rename", "person.delete"} <= actions


def test_one_rule_per_question_as_the_library_and_cli(admin: httpx.Client, knn: Path) -> None:
    """Issue 24 part A: an enrolment that stores nothing is 422 with each file's reason; several faces without a
    choice is 422 multiple_faces in verify (the library's and the CLI's default); an unknown profile is 422
    invalid_value; the hint names the request's own fields, never a CLI option."""
    two = (knn.parent / "two_people.jpg").read_bytes()
    obama = (knn / "test" / "obama1.jpg").read_bytes()
    buf = io.BytesIO()
    Image.new("RGB", (200, 200), (120, 120, 120)).save(buf, "JPEG")
    blank = buf.getvalue()
    pid = admin.post("/v1/collections/default/persons", json={"name": "Nobody Stored"}).json()["id"]
    r = admin.post(f"/v1/collections/default/persons/{pid}/faces",
                   files=[("files", ("two.jpg", two, "image/jpeg")), ("files", ("wall.jpg", blank, "image/jpeg"))])
    assert r.status_code == 422 and error_code(r) == "nothing_enrolled", r.text
    results = r.json()["error"]["results"]
    assert [(x["source"], x["status"]) for x in results] == [("two.jpg", "rejected"), ("wall.jpg", "rejected")]
    assert results[0]["code"] == "multiple_faces" and "faces" in results[0]["reason"]
    assert results[1]["code"] == "no_face"
    assert "face=largest" in r.json()["error"]["message"] and "--face" not in r.text
    assert admin.get(f"/v1/collections/default/persons/{pid}/faces").json() == []
    r = admin.post("/v1/collections/default/verify", files={"image": ("two.jpg", two, "image/jpeg"),
                                                            "other": ("o.jpg", obama, "image/jpeg")})
    assert r.status_code == 422 and error_code(r) == "multiple_faces", r.text
    assert r.json()["error"]["details"] == {"what": "face", "value": "only", "valid": "largest or 0..1"}
    assert "--" not in r.json()["error"]["message"]
    r = admin.post("/v1/collections", json={"name": "nope-profile", "profile": "nope"})
    assert r.status_code == 422 and error_code(r) == "invalid_value", r.text
    assert r.json()["error"]["details"]["what"] == "profile" and "default" in r.json()["error"]["details"]["valid"]


def test_identification_states_its_fpir_and_a_target_fpir_is_set_by_patch(admin: httpx.Client, knn: Path) -> None:
    """Issue 24 part C: the collection says which threshold is in force and why (FPIR 0.01 over its persons by
    default; verification at a FAR); PATCH target_fpir sets it or answers 422 with the reachable range, storing
    nothing; every identified face carries fpir and searched."""
    r = admin.post("/v1/collections", json={"name": "fpir-room", "profile": "default"})
    assert r.status_code == 201, r.text
    for name in ("obama", "biden"):
        pid = admin.post("/v1/collections/fpir-room/persons", json={"name": name}).json()["id"]
        photo = (knn / "train" / name / f"{name}.jpg").read_bytes()
        r = admin.post(f"/v1/collections/fpir-room/persons/{pid}/faces", files={"files": ("a.jpg", photo)})
        assert r.status_code == 200, r.text
    d = admin.get("/v1/collections/fpir-room").json()["decision"]
    assert d["source"] == "fpir=1e-02 at 2 persons (default)" and d["persons"] == 2
    assert 0.005 < d["fpir"] < 0.02 and d["far"] < d["fpir"] and d["verify"]["source"] == "far=1e-03 (profile)"
    assert "FPIR" in d["explanation"]
    index = admin.get("/v1/collections/fpir-room").json()["index"]
    assert index["index"] == "exact" and index["setting"] == "auto" and "2 faces" in index["reason"]
    for bad in (0, 1, 1e-12):
        r = admin.patch("/v1/collections/fpir-room", json={"target_fpir": bad})
        assert r.status_code == 422 and error_code(r) == "invalid_value", r.text
        assert r.json()["error"]["details"]["what"] == "target_fpir" and "--fpir" not in r.text
    assert admin.get("/v1/collections/fpir-room").json()["decision"] == d  # nothing stored
    r = admin.patch("/v1/collections/fpir-room", json={"target_fpir": 0.05})
    assert r.status_code == 200 and r.json()["decision"]["source"].startswith("fpir=5e-02 at 2 persons"), r.text
    probe = (knn / "test" / "obama1.jpg").read_bytes()
    r = admin.post("/v1/collections/fpir-room/identify", files={"image": ("p.jpg", probe, "image/jpeg")})
    face = r.json()["faces"][0]
    assert r.status_code == 200 and face["person"] == "obama" and face["searched"] == 2
    assert face["far"] <= face["fpir"] <= 2 * face["far"] + 1e-12


def test_uploads_are_checked(server: Server, admin: httpx.Client, knn: Path) -> None:
    url = "/v1/collections/default/identify"
    r = admin.post(url, files={"image": ("photo.jpg", b"hello, I am text\n" * 10, "image/jpeg")})
    assert r.status_code == 415 and error_code(r) == "unsupported_media_type", r.text
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'
    assert admin.post(url, files={"image": ("x.png", svg, "image/png")}).status_code == 415

    big = b"\xff\xd8\xff\xe0" + b"\0" * (MAX_UPLOAD_MB * 1024 * 1024 + 10)
    r = admin.post(url, files={"image": ("big.jpg", big, "image/jpeg")})
    assert r.status_code == 413 and error_code(r) == "payload_too_large"

    buf = io.BytesIO()
    Image.new("L", (2500, 2500)).save(buf, format="PNG")  # tiny file, too many pixels
    r = admin.post(url, files={"image": ("huge.png", buf.getvalue(), "image/png")})
    assert r.status_code == 413 and error_code(r) == "too_many_pixels"

    jpeg = (knn / "test" / "obama1.jpg").read_bytes()
    r = admin.post(url, files={"image": ("cut.jpg", jpeg[: len(jpeg) // 3], "image/jpeg")})
    assert r.status_code == 422 and error_code(r) == "bad_image"
    r = admin.post(url, files={"image": ("empty.jpg", b"", "image/jpeg")})
    assert r.status_code == 422

    # a PNG named .jpg is fine: the type comes from the content
    buf = io.BytesIO()
    Image.open(knn / "test" / "obama1.jpg").save(buf, format="PNG")
    r = admin.post(url, files={"image": ("really-a-png.jpg", buf.getvalue(), "application/octet-stream")})
    assert r.status_code == 200 and len(r.json()["faces"]) == 1

    r = admin.post("/v1/collections/default/persons", content=b"{not json",
                   headers={"content-type": "application/json"})
    assert r.status_code == 422 and error_code(r) == "invalid_request"
    r = admin.post("/v1/collections/nope/identify", files={"image": ("a.jpg", jpeg, "image/jpeg")})
    assert r.status_code == 404 and error_code(r) == "not_found"
    r = admin.get("/v1/no/such/route")
    assert r.status_code == 404 and error_code(r) == "not_found"
    r = admin.post("/v1/collections/default/persons", json={"name": "  "})
    assert r.status_code == 422 and error_code(r) == "invalid_name"


def test_concurrent_enrolments_are_not_lost(server: Server, admin: httpx.Client, lfw: Path) -> None:
    names = sorted(p.name for p in (lfw / "images").iterdir())[:24]
    images = {n: sorted((lfw / "images" / n).glob("*.jpg"))[0].read_bytes() for n in names}
    enroller = make_key(admin, "burst", ["enroll"], ["default"])
    errors: list[str] = []

    def worker(chunk: list[str]) -> None:
        with server.client(enroller) as c:
            for name in chunk:
                r = c.post("/v1/collections/default/persons", json={"name": f"burst {name}"})
                if r.status_code != 201:
                    errors.append(r.text)
                    continue
                r = c.post(f"/v1/collections/default/persons/{r.json()['id']}/faces", data={"face": "largest"},
                           files=[("files", (f"{name}.jpg", images[name], "image/jpeg"))])
                if r.status_code != 200 or r.json()["added"] != 1:
                    errors.append(r.text)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(names[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:3]
    listing = admin.get("/v1/collections/default/persons", params={"limit": 500}).json()["items"]
    burst = {p["name"]: p["samples"] for p in listing if p["name"].startswith("burst ")}
    assert burst == {f"burst {n}": 1 for n in names}
    assert time.perf_counter() - t0 < 90


def test_video_job(server: Server, admin: httpx.Client, knn: Path) -> None:
    examples = knn.parent
    clip = examples / "short_hamilton_clip.mp4"
    if not clip.exists():
        pytest.skip(f"{clip} is not available")
    person_with_faces(admin, "lin-manuel", [examples / "lin-manuel-miranda.png"])

    r = admin.post("/v1/collections/default/videos", files={"video": ("clip.mp4", b"not a video at all", "video/mp4")})
    assert r.status_code == 415 and error_code(r) == "unsupported_media_type"

    r = admin.post("/v1/collections/default/videos", files={"video": ("clip.mp4", clip.read_bytes(), "video/mp4")},
                   data={"fps": "2"})
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    deadline = time.monotonic() + 90
    seen_progress = []
    while time.monotonic() < deadline:
        job = admin.get(f"/v1/jobs/{job_id}").json()
        seen_progress.append(job["progress"])
        if job["state"] in ("done", "failed", "cancelled"):
            break
        time.sleep(0.5)
    assert job["state"] == "done", job
    assert seen_progress == sorted(seen_progress) and job["progress"] == 1.0
    tracks = job["result"]["tracks"]
    assert "lin-manuel" in {t["person"] for t in tracks}, tracks
    assert any(j["id"] == job_id for j in admin.get("/v1/jobs").json())
    with_thumb = [t for t in tracks if t["thumbnail"] is not None]
    assert with_thumb
    thumb = admin.get(f"/v1/jobs/{job_id}/thumbnails/{with_thumb[0]['thumbnail']}")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert admin.get(f"/v1/jobs/{job_id}/thumbnails/999").status_code == 404
    assert job["annotated_video"] is True
    mp4 = admin.get(f"/v1/jobs/{job_id}/video")
    assert mp4.status_code == 200 and mp4.headers["content-type"] == "video/mp4"
    assert mp4.content[4:8] == b"ftyp" and b"avc1" in mp4.content[:4096]  # H.264: browsers play it
    left = [p.name for p in server.db.with_name(server.db.name + ".jobs").iterdir()]
    assert len(left) == 1 and left[0].endswith(".mp4"), left  # the upload is gone; the annotated video is on disk

    other = make_key(admin, "other-place", ["recognize"], ["elsewhere"])
    with server.client(other) as c:
        assert c.get(f"/v1/jobs/{job_id}").status_code == 404  # jobs of other collections are invisible
        assert c.get(f"/v1/jobs/{job_id}/video").status_code == 404
