"""The fast tier, REST: the whole service in-process (`TestClient` over `create_app`) with `facewise.testing`'s fake
profile registered by name: persons, enrolment uploads, identify, verify, delete, unknown faces and errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from facewise.models import profiles
from facewise.testing import encode, face_image, fake_profile
from reliability_helpers import service_app

pytestmark = pytest.mark.fast
TestClient = pytest.importorskip("fastapi.testclient").TestClient


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    profiles.register(fake_profile())  # the service names profiles: "fake" resolves while registered
    try:
        app, token = service_app(tmp_path_factory.mktemp("fast-service"), profile="fake")
        with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as c:
            yield c
    finally:
        profiles.unregister("fake")


def png(seeds: int | list[int], **kw: Any) -> bytes:
    return encode(face_image(seeds, **kw))


def person(client: Any, name: str, *images: bytes) -> dict[str, Any]:
    r = client.post("/v1/collections/default/persons", json={"name": name})
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    files = [("files", (f"{name}{i}.png", b, "image/png")) for i, b in enumerate(images)]
    r = client.post(f"/v1/collections/default/persons/{pid}/faces", files=files)
    assert r.status_code == 200, r.text
    return dict(r.json())


def identify(client: Any, image: bytes) -> dict[str, Any]:
    r = client.post("/v1/collections/default/identify", files={"image": ("probe.png", image, "image/png")})
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_service_runs_the_fake_profile(client: Any) -> None:
    assert client.get("/readyz").status_code == 200
    info = client.get("/v1/collections/default").json()
    assert info["profile"] == "fake"
    assert "fake" in {p["name"] for p in client.get("/v1/profiles").json()}


def test_enrol_identify_unknown_over_rest(client: Any) -> None:
    ada = person(client, "ada", png(1), png(1, face_px=130))
    assert ada["added"] == 2, ada
    person(client, "bob", encode(face_image(2, face_px=80), ".jpg"))
    body = identify(client, png([2, 1, 7], face_px=72))
    assert body["profile"] == "fake" and "fpir" in body["threshold_source"]
    assert [f["person"] for f in body["faces"]] == ["bob", "ada", "unknown"]
    assert body["faces"][0]["score"] > 0.95 > body["threshold"] > body["faces"][2]["score"]


def test_verify_over_rest(client: Any) -> None:
    files = {"image": ("a.png", png(3), "image/png"), "other": ("b.png", png(3, face_px=60), "image/png")}
    same = client.post("/v1/collections/default/verify", files=files)
    assert same.status_code == 200 and same.json()["same"] is True, same.text
    files["other"] = ("c.png", png(4), "image/png")
    assert client.post("/v1/collections/default/verify", files=files).json()["same"] is False


def test_delete_person_makes_them_unknown(client: Any) -> None:
    person(client, "cy", png(5))
    assert identify(client, png(5))["faces"][0]["person"] == "cy"
    persons = client.get("/v1/collections/default/persons").json()["items"]
    pid = next(p["id"] for p in persons if p["name"] == "cy")
    assert client.delete(f"/v1/collections/default/persons/{pid}").status_code == 200
    assert identify(client, png(5))["faces"][0]["person"] == "unknown"
    assert client.get(f"/v1/collections/default/persons/{pid}").status_code == 404


def test_errors_over_rest(client: Any) -> None:
    blank = encode(np.full((100, 100, 3), 120, np.uint8))
    assert identify(client, blank)["faces"] == []
    r = client.post("/v1/collections/default/identify", files={"image": ("x.png", b"not an image", "image/png")})
    assert r.status_code in (400, 415) and set(r.json()) == {"error"}, r.text
    r = client.post("/v1/collections/default/persons", json={"name": "dee"})
    pid = r.json()["id"]
    r = client.post(f"/v1/collections/default/persons/{pid}/faces", files=[("files", ("b.png", blank, "image/png"))])
    assert r.status_code == 422 and r.json()["error"]["code"] == "nothing_enrolled", r.text
    r = client.post("/v1/collections/nope/identify", files={"image": ("p.png", png(1), "image/png")})
    assert r.status_code == 404, r.text


def test_detect_route_uses_the_fake_detector(client: Any) -> None:
    r = client.post("/v1/detect", files={"image": ("p.png", png([1, 2], face_px=64), "image/png")})
    assert r.status_code == 200, r.text
    faces = r.json()["faces"]
    assert [f["box"][0] for f in faces] == [32.0, 128.0] and all(not f["quality_reasons"] for f in faces)
