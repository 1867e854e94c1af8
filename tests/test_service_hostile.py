"""The service under hostile load: small versions of the attacks against a real ``facewise serve``.

Every refusal is checked for its status, its stable error code and that what was stored is still there.
The full-size replay (memory growth, the other tenant's latency) is ``bench/hostile.py``.
"""

from __future__ import annotations

import json
import random
import string
from collections.abc import Iterator
from pathlib import Path

import pytest

from service_helpers import Server, httpx, start_server

GROUP = "detection/examples/faces/bald_guys.jpg"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("hostile"), "--rate", "1000", "--burst", "1000", "--workers", "2",
                       "--max-upload-mb", "1")  # whole image requests: 20 x 1 MiB + 1 MiB
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
        yield from _chunks(30 * 1024 * 1024, 1024 * 1024)  # past the whole-request limit (21 MiB here)

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
