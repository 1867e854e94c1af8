"""Hostile input, round two, against a real ``facewise serve`` on loopback: the key and the route's own body budget
are checked before any byte of the body is read; JSON is parsed off the event loop with a depth limit; half-sent
requests, stalled bodies and idle connections are closed; one server per gallery file.

Raw sockets send the attacks exactly (a declared length with a fraction of the body behind it): an answer that
arrives while most of the body was never sent shows the server did not wait for it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from service_helpers import Server, free_port, httpx, start_server, stop_process

HEADER_TIMEOUT, BODY_TIMEOUT, MAX_CONNECTIONS = 3, 3, 40


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("gate"), "--rate", "1000", "--burst", "1000", "--workers", "2",
                       "--header-timeout", str(HEADER_TIMEOUT), "--body-timeout", str(BODY_TIMEOUT),
                       "--max-connections", str(MAX_CONNECTIONS))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def admin(server: Server) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c


def _port(server: Server) -> int:
    return int(server.url.rsplit(":", 1)[1])


def _send_head(server: Server, method: str, path: str, headers: dict[str, str], body: bytes = b"",
               timeout: float = 60) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", _port(server)), timeout=timeout)
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    s.sendall(head.encode() + b"\r\n" + body)
    return s


def _answer(s: socket.socket) -> tuple[int, dict]:
    """The status and JSON body of the answer on ``s`` (read until the server closes or the body is complete)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        assert chunk, f"closed without an answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    while len(body) < int(headers.get("content-length", "0")):
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), json.loads(body) if body else {}


MULTIPART = {"Content-Type": "multipart/form-data; boundary=gate"}
PART = b'--gate\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n\r\n' + b"\xff" * 1000


@pytest.mark.parametrize(("method", "path"), [("POST", "/v1/detect"), ("POST", "/v1/collections/default/identify"),
                                              ("POST", "/v1/collections/default/videos"),
                                              ("POST", "/v1/collections/default/persons/1/faces"),
                                              ("PATCH", "/v1/collections/identify")])
def test_no_key_is_refused_before_the_body_is_read(server: Server, method: str, path: str) -> None:
    # 50 MB declared, 1 KB sent: the 401 comes back without the server waiting for (or spooling) the rest
    s = _send_head(server, method, path, {**MULTIPART, "Content-Length": "50000000"}, PART)
    with s:
        status, body = _answer(s)
    assert status == 401 and body["error"]["code"] == "unauthorized", body


def test_a_wrong_key_is_refused_before_the_body_is_read(server: Server) -> None:
    s = _send_head(server, "POST", "/v1/collections/default/identify",
                   {**MULTIPART, "Content-Length": "50000000", "X-API-Key": "fw_0000_nope"}, PART)
    with s:
        status, body = _answer(s)
    assert status == 401 and body["error"]["code"] == "unauthorized", body


def test_body_budgets_belong_to_the_route_not_to_the_end_of_its_path(server: Server) -> None:
    # PATCH /v1/collections/identify is the collection settings route (JSON, 64 KiB), whatever its name ends
    # with: a 24 MiB [[],[],...] body is refused from its declared length, before a byte of it is read
    for path in ("/v1/collections/identify", "/v1/collections/videos", "/v1/collections/frames"):
        s = _send_head(server, "PATCH", path, {"Content-Type": "application/json", "Content-Length": str(24 << 20),
                                               "Authorization": f"Bearer {server.key}"}, b"[[],")
        with s:
            status, body = _answer(s)
        assert status == 413 and body["error"]["code"] == "payload_too_large", (path, body)
        assert "65536-byte" in body["error"]["message"]


def test_each_upload_route_declares_its_budget_and_a_new_one_without_cannot_be_built() -> None:
    from fastapi import APIRouter, Depends, File, UploadFile

    from facewise.service.config import Limits
    from facewise.service.deps import require
    from facewise.service.gate import UndeclaredRouteError, body_budget, route_rules
    from facewise.service.routes_gallery import router as gallery
    from facewise.service.routes_jobs import router as jobs
    from facewise.service.routes_live import router as live
    from facewise.service.routes_recognize import router as recognize
    from facewise.service.schemas import ContractRoute

    limits = Limits()
    budgets = {(sorted(getattr(r.matcher, "methods", None) or [""])[0], r.matcher.path): r.budget
               for router in (gallery, jobs, live, recognize) for r in route_rules(router.routes, limits)}
    assert budgets[("POST", "/v1/collections/{collection}/identify")] == limits.max_image_bytes + (1 << 20)
    assert budgets[("POST", "/v1/collections/{collection}/videos")] == limits.max_video_bytes + (1 << 20)
    assert budgets[("POST", "/v1/collections/{collection}/persons/{person_id}/faces")] == limits.max_request_bytes
    assert budgets[("POST", "/v1/collections/{collection}/persons")] == limits.max_json_bytes

    new = APIRouter(prefix="/v1", route_class=ContractRoute)
    with pytest.raises(UndeclaredRouteError, match="takes a file but declares no body budget"):
        @new.post("/collections/{collection}/faces")
        def undeclared(_: object = Depends(require("recognize")), image: UploadFile = File(...)) -> None:
            return None

    with pytest.raises(UndeclaredRouteError, match="declares no key check"):
        @new.post("/collections/{collection}/open", openapi_extra=body_budget("image"))
        def no_key(image: UploadFile = File(...)) -> None:
            return None

    bare = APIRouter(prefix="/v1")  # a plain FastAPI route is refused by the gate, when the app starts

    @bare.post("/collections/{collection}/faces")
    def plain(_: object = Depends(require("recognize")), image: UploadFile = File(...)) -> None:
        return None

    with pytest.raises(UndeclaredRouteError, match="takes a file"):
        route_rules(bare.routes, limits)


def test_every_route_of_the_app_declares_its_budget_and_its_key(tmp_path: Path) -> None:
    """Walk every route the app serves: each has its metadata (a body budget the gate knows, a key check or
    public), the gate's rule is that metadata, and the OpenAPI operation publishes both."""
    from fastapi.routing import APIRoute

    from facewise.service.gate import AUTH_KEY, BUDGET_KEY, BUDGETS, FRAMEWORK, PUBLIC, flat_routes, meta_of
    from reliability_helpers import service_app

    app, _ = service_app(tmp_path)
    ops = app.openapi()["paths"]
    seen = 0
    for route in flat_routes(app.router.routes):
        meta = meta_of(route)
        assert meta.budget in BUDGETS
        if meta is FRAMEWORK:  # the framework's pages and the static files: GET only
            assert set(getattr(route, "methods", None) or {"GET"}) <= {"GET", "HEAD"}, route
            continue
        assert isinstance(route, APIRoute)
        seen += 1
        assert (meta.check is None) == (meta.auth == PUBLIC), route.path
        public = {"/", "/healthz", "/readyz", "/metrics"}
        assert (route.path in public) == (meta.check is None), f"{route.path}: auth {meta.auth}"
        if route.path.startswith("/v1/"):
            assert meta.auth in ("admin", "admin on *", "enroll", "recognize", "read", "any"), route.path
        takes_files = route.body_field is not None and "multipart" in str(route.body_field.field_info.media_type)
        assert takes_files == (meta.budget in ("image", "image_pair", "images", "video")), route.path
        if route.include_in_schema:
            for method in route.methods:
                op = ops[route.path][method.lower()]
                assert (op[BUDGET_KEY], op[AUTH_KEY]) == (meta.budget, meta.auth), (method, route.path)
    assert seen >= 38


def test_json_is_parsed_with_a_depth_limit(admin: httpx.Client) -> None:
    deep = "[" * 5000 + "]" * 5000
    r = admin.patch("/v1/collections/default", content=deep, headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "json_too_deep", r.text
    r = admin.post("/v1/collections/default/persons", content=json.dumps({"name": "x", "metadata": {"a": deep}}),
                   headers={"Content-Type": "application/json"})  # brackets inside a string are text
    assert r.status_code != 422 or r.json()["error"]["code"] != "json_too_deep", r.text
    if r.status_code == 201:
        admin.delete(f"/v1/collections/default/persons/{r.json()['id']}")
    r = admin.patch("/v1/collections/default", content="{bad", headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request", r.text
    assert admin.get("/v1/collections/default").status_code == 200


# -- connections: half-sent heads, stalled bodies, idle sockets ------------------------------------------
def _closed_within(s: socket.socket, seconds: float) -> bytes:
    """What the server sent before closing ``s``; fails if it is still open after ``seconds``."""
    s.settimeout(seconds)
    data = b""
    try:
        while chunk := s.recv(65536):
            data += chunk
    except TimeoutError:
        pytest.fail(f"the server kept the connection open for {seconds:.0f} s (sent {data[:80]!r})")
    except ConnectionResetError:
        pass
    return data


def test_half_sent_requests_and_stalled_bodies_are_closed(server: Server) -> None:
    heads = []
    for _ in range(20):  # slowloris: a request head that never ends
        s = socket.create_connection(("127.0.0.1", _port(server)), timeout=60)
        s.sendall(b"POST /v1/detect HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        heads.append(s)
    bodies = [_send_head(server, "POST", "/v1/collections", {
        "Content-Type": "application/json", "Content-Length": "1000", "Authorization": f"Bearer {server.key}"},
        b'{"name": ') for _ in range(5)]  # a whole head, then a body that stalls
    for s in heads:
        with s:
            _closed_within(s, 20 * HEADER_TIMEOUT)
    for s in bodies:
        with s:
            data = _closed_within(s, 20 * BODY_TIMEOUT)
        assert data.startswith(b"HTTP/1.1 408 "), data[:200]
        assert b'"request_timeout"' in data
    assert httpx.get(server.url + "/healthz", timeout=30).status_code == 200


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="counts the server's descriptors in /proc")
def test_idle_connections_are_capped_and_closed(server: Server) -> None:
    before = _fds(server.proc.pid)
    idle = [socket.create_connection(("127.0.0.1", _port(server)), timeout=60) for _ in range(3 * MAX_CONNECTIONS)]
    try:
        time.sleep(1)
        assert _fds(server.proc.pid) - before <= MAX_CONNECTIONS + 5  # beyond the cap: closed at once
        for s in idle:
            _closed_within(s, 20 * HEADER_TIMEOUT)  # the rest: when no request head came in time
    finally:
        for s in idle:
            s.close()
    assert httpx.get(server.url + "/healthz", timeout=30).status_code == 200


# -- one server per gallery file ------------------------------------------------------------------------
def test_a_second_server_on_the_same_gallery_refuses_to_start(server: Server) -> None:
    jobs_dir = server.db.with_name(server.db.name + ".jobs")
    jobs_dir.mkdir(exist_ok=True)
    running = jobs_dir / "0123456789abcdef.video"  # stands for the first server's running job
    running.write_bytes(b"an upload being processed")
    proc = subprocess.Popen([sys.executable, "-m", "facewise", "serve", "--db", str(server.db), "--host", "127.0.0.1",
                             "--port", str(free_port())], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, env={**os.environ, "COLUMNS": "200"})
    try:
        out, _ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        stop_process(proc)
        pytest.fail("a second server on the same gallery started")
    finally:
        stop_process(proc)
    text = out.decode(errors="replace")
    assert proc.returncode == 2, text
    assert "another facewise server is serving this gallery" in text, text
    assert running.read_bytes() == b"an upload being processed"  # the first server's files are untouched
    running.unlink()
    assert httpx.get(server.url + "/healthz", timeout=30).status_code == 200
