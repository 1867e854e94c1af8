"""Service security: a bounded schemathesis run (no 5xx for any request the OpenAPI schema allows), API keys stored
hashed and compared in constant time, CORS closed by default, no path traversal through upload file names."""

from __future__ import annotations

import hashlib
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("facewise.service.app", reason="facewise.service is not part of this build")
pytest.importorskip("fastapi", reason="the service extra is not installed")
pytest.importorskip("multipart", reason="the service extra is not installed")
schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is in the fuzz extra")
from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

from reliability_helpers import raw_bytes, service_app  # noqa: E402

EXAMPLES_PER_OPERATION = 8


@pytest.fixture()
def served(tmp_path: Path) -> tuple[object, str, Path]:
    """A fresh app per test: leaving a TestClient context runs the app's shutdown, which closes its stores."""
    app, token = service_app(tmp_path)
    return app, token, tmp_path


def test_no_request_the_schema_allows_gets_a_5xx(served: tuple[object, str, Path]) -> None:
    """Every operation of the OpenAPI schema, a bounded number of generated requests each, with an admin key.

    (Driven by hand rather than with ``schemathesis.pytest.from_fixture``, which does not work with pytest 9.)
    """
    from hypothesis import given

    app, token, _ = served
    # /readyz answers 503 on purpose until the models are loaded (no lifespan here): not a server error
    schema = schemathesis.openapi.from_asgi("/openapi.json", app).exclude(path="/readyz")
    headers = {"Authorization": f"Bearer {token}"}
    failures: list[str] = []
    operations = 0
    calls = [0]
    statuses: Counter[int] = Counter()
    for result in schema.get_all_operations():
        op = result.ok()
        operations += 1

        @given(case=op.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck),
                  database=None)
        def run(case) -> None:  # type: ignore[no-untyped-def]
            calls[0] += 1
            response = case.call(headers=headers)
            statuses[response.status_code] += 1
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:200]}")

        run()
    assert operations >= 20 and calls[0] >= operations
    assert sum(n for code, n in statuses.items() if code < 300) >= operations, statuses  # got past the key check
    assert not failures, failures[:5]
    print(f"schemathesis: {operations} operations, {calls[0]} requests, 0 server errors; {dict(statuses)}")


def test_keys_are_stored_hashed(served: tuple[object, str, Path]) -> None:
    app, token, tmp = served
    with TestClient(app) as client:
        r = client.post("/v1/keys", json={"name": "hashed?", "scopes": ["read"], "collections": ["*"]},
                        headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 201, r.text
        new = r.json()["token"]
    def secret_of(tok: str) -> str:  # fw_<key id>_<secret>; the secret itself may contain "_" (urlsafe base64)
        return tok.split("_", 2)[2]

    data = raw_bytes(tmp / "gallery.db")
    assert len(secret_of(new)) >= 40 and secret_of(new).encode() not in data and secret_of(token).encode() not in data
    conn = sqlite3.connect(tmp / "gallery.db")
    stored = {h for (h,) in conn.execute("SELECT hash FROM service_keys")}
    conn.close()
    assert hashlib.sha256(new.encode()).hexdigest() in stored


def test_key_comparison_is_constant_time(served: tuple[object, str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Every presented token, known id or not, right secret or not, goes through hmac.compare_digest."""
    from facewise.service import auth
    from facewise.service.auth import KeyStore

    calls: list[int] = []
    real = auth.hmac.compare_digest

    def counting(a: str, b: str) -> bool:
        calls.append(1)
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", counting)
    keys = KeyStore(served[2] / "gallery.db")
    token = served[1]
    prefix, _, secret = token.rpartition("_")
    for presented, ok in ((token, True), (f"{prefix}_{'x' * len(secret)}", False), ("fw_000000000000_nope", False)):
        before = len(calls)
        assert (keys.authenticate(presented) is not None) == ok
        assert len(calls) > before, presented
    keys.close()


def test_cors_is_closed_by_default(served: tuple[object, str, Path]) -> None:
    with TestClient(served[0]) as client:
        r = client.options("/v1/me", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
        assert "access-control-allow-origin" not in {k.lower() for k in r.headers}
        r = client.get("/healthz", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in {k.lower() for k in r.headers}


def test_upload_file_names_cannot_traverse(served: tuple[object, str, Path], lfw: Path) -> None:
    app, token, tmp = served
    photo = sorted(sorted((lfw / "images").iterdir())[1].glob("*.jpg"))[0].read_bytes()
    names = ["../../../../../tmp/evil-traversal.jpg", "..\\..\\evil-traversal2.jpg", "/etc/evil-traversal3.jpg"]
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(app, headers=headers) as client:
        pid = client.post("/v1/collections/default/persons", json={"name": "traversal"}).json()["id"]
        for i, name in enumerate(names):
            # the same photo three times is a duplicate after the first: the names are what is tested
            r = client.post(f"/v1/collections/default/persons/{pid}/faces", files=[("files", (name, photo + bytes(i),
                                                                                              "image/jpeg"))])
            assert r.status_code == 200, r.text
            assert "/" not in r.json()["results"][0]["source"] and "\\" not in r.json()["results"][0]["source"]
        r = client.post("/v1/collections/default/videos", files={"video": ("../../evil-video.mp4",
                                                                          b"\0\0\0\x18ftypmp42" + b"\0" * 64,
                                                                          "video/mp4")})
        assert r.status_code in (202, 415, 422), r.text
        if r.status_code == 202:
            assert r.json()["filename"] == "evil-video.mp4"
        sources = {s["source"] for s in client.get(f"/v1/collections/default/persons/{pid}/faces").json()}
    assert {"evil-traversal.jpg", "evil-traversal3.jpg"} <= sources
    everywhere = [p.name for p in tmp.parent.rglob("*evil*")] + [p.name for p in Path("/tmp").glob("evil*")]
    assert not everywhere, everywhere
