"""Live camera sessions over REST: frames named like identify, the tracked face's liveness with its reasons, an
active challenge on the server's clock, and the session budgets (per key, overall, idle, frames, one at a time)."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from conftest import DATA, MODELS
from facewise.core.imageio import load_image
from facewise.eval.challenge import photo_attack_frames, video_frames
from reliability_helpers import service_app

fastapi_testclient = pytest.importorskip("fastapi.testclient")
TURNS = DATA / "liveness" / "apfol" / "videos" / "real2.webm"
NUAA_FAKE = DATA / "liveness" / "nuaa" / "fake"
pytestmark = pytest.mark.skipif(
    not (TURNS.is_file() and (MODELS / "headpose").is_dir() and (MODELS / "antispoof").is_dir()),
    reason="challenge video, head-pose or anti-spoofing model not found")


def jpeg(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


class Api:
    def __init__(self, client: Any, token: str) -> None:
        self.c, self.token = client, token

    def h(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}"}

    def open(self, token: str | None = None, **body: Any) -> Any:
        return self.c.post("/v1/collections/default/live", json=body, headers=self.h(token))

    def frame(self, sid: str, data: bytes, token: str | None = None, **form: Any) -> Any:
        return self.c.post(f"/v1/collections/default/live/{sid}/frames", headers=self.h(token),
                           files={"image": ("frame.jpg", data, "image/jpeg")}, data=form)

    def key(self, name: str, *scopes: str) -> str:
        r = self.c.post("/v1/keys", json={"name": name, "scopes": list(scopes), "collections": ["*"]},
                        headers=self.h())
        assert r.status_code == 201, r.text
        return str(r.json()["token"])


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, knn: Path) -> Iterator[Api]:
    from facewise.service.config import LiveLimits

    app, token = service_app(tmp_path_factory.mktemp("live"), profile="fast",
                             live=LiveLimits(per_key=2, total=3, idle_seconds=30, max_frames=400))
    with fastapi_testclient.TestClient(app) as client:
        a = Api(client, token)
        p = client.post("/v1/collections/default/persons", json={"name": "biden"}, headers=a.h()).json()
        r = client.post(f"/v1/collections/default/persons/{p['id']}/faces", headers=a.h(),
                        files={"files": ("b.jpg", (knn / "train" / "biden" / "biden.jpg").read_bytes(), "image/jpeg")})
        assert r.json()["added"] == 1, r.text
        yield a


def test_frames_are_named_and_the_tracked_face_says_why_it_is_live_or_not(api: Api, knn: Path) -> None:
    r = api.open()
    assert r.status_code == 201, r.text
    s = r.json()
    assert s["challenge"] is None and s["frames"] == 0
    photo = knn / "test" / "obama_and_biden.jpg"
    f = api.frame(s["session_id"], photo.read_bytes(), live_map="true")
    assert f.status_code == 200, f.text
    body = f.json()
    assert body["frame"] == 1 and "biden" in [x["person"] for x in body["faces"]]
    tracked = body["faces"][body["tracked"]]
    live = tracked["live"]
    assert {"score", "is_live", "threshold", "cues", "fired", "map"} <= set(live)
    assert live["map"]["grid"] == len(live["map"]["delta"]) and all(c["fired"] == (n in live["fired"])
                                                                    for n, c in live["cues"].items())
    assert all("live" not in x for i, x in enumerate(body["faces"]) if i != body["tracked"])
    # a printed photo (NUAA attack frame) is not live, and the answer names the cues that fired
    fake = sorted(NUAA_FAKE.rglob("*.jpg"))[0]
    g = api.frame(s["session_id"], fake.read_bytes()).json()
    assert g["frame"] == 2 and g["tracked"] is not None
    lv = g["faces"][g["tracked"]]["live"]
    assert lv["is_live"] is False and lv["score"] < lv["threshold"] and "map" not in lv
    assert lv["fired"] and all(lv["cues"][n]["fired"] and lv["cues"][n]["pull"] < 0 for n in lv["fired"])
    assert any(r.startswith("not live") for r in g["faces"][g["tracked"]]["quality_reasons"])
    assert api.c.delete(f"/v1/collections/default/live/{s['session_id']}", headers=api.h()).json()["frames"] == 2
    assert api.frame(s["session_id"], photo.read_bytes()).status_code == 404  # ended


def test_a_recorded_turn_passes_the_matching_challenge_on_the_servers_clock(api: Api) -> None:
    s = api.open(challenge=True, steps=["left", "right"], time_limit_s=60).json()
    assert s["challenge"]["current"] == "left" and "left" in s["challenge"]["prompt"]
    last: dict[str, Any] = {}
    for _, rgb in video_frames(TURNS, 3):
        last = api.frame(s["session_id"], jpeg(rgb)).json()
        if last["challenge"]["finished"]:
            break
    ch = last["challenge"]
    assert ch["finished"] and ch["passed"] is True, ch
    assert [d["step"] for d in ch["done"]] == ["left", "right"] and ch["passive_live"] >= ch["passive_threshold"]
    state = api.c.get(f"/v1/collections/default/live/{s['session_id']}", headers=api.h()).json()
    assert state["challenge"]["passed"] is True
    api.c.delete(f"/v1/collections/default/live/{s['session_id']}", headers=api.h())


def test_a_moved_warped_photo_fails_and_time_runs_out(api: Api, knn: Path) -> None:
    s = api.open(challenge=True, steps=["left", "right"], time_limit_s=60).json()
    photo = load_image(knn / "train" / "biden" / "biden.jpg").pixels
    last: dict[str, Any] = {}
    for _, rgb in photo_attack_frames(photo, seconds=4, fps=6):
        last = api.frame(s["session_id"], jpeg(rgb)).json()
    ch = last["challenge"]  # the photo was tracked and judged: a refusal with its reason, not "no face yet"
    assert ch["frames"] > 0 and ch["finished"] and ch["passed"] is False and ch["reason"], ch
    assert len(ch["done"]) < 2, ch
    api.c.delete(f"/v1/collections/default/live/{s['session_id']}", headers=api.h())
    # random steps, a one-second limit: nothing sent in time ends the challenge with the reason
    r = api.open(challenge=True, time_limit_s=1).json()
    assert len(r["challenge"]["steps"]) == 2 and {"left", "right"} & set(r["challenge"]["steps"])
    api.frame(r["session_id"], jpeg(photo))
    time.sleep(1.3)
    st = api.c.get(f"/v1/collections/default/live/{r['session_id']}", headers=api.h()).json()["challenge"]
    assert st["finished"] and st["passed"] is False and "time limit" in st["reason"]
    api.c.delete(f"/v1/collections/default/live/{r['session_id']}", headers=api.h())


def test_sessions_are_budgeted_and_private_to_their_key(api: Api, knn: Path) -> None:
    photo = (knn / "train" / "biden" / "biden.jpg").read_bytes()
    mine = [api.open().json()["session_id"] for _ in range(2)]
    third = api.open()
    assert third.status_code == 429 and third.json()["error"]["code"] == "live_sessions_full"
    assert int(third.headers["Retry-After"]) >= 1
    other = api.key("door", "recognize")
    theirs = api.open(token=other)
    assert theirs.status_code == 201  # another key still gets one
    assert api.open(token=api.key("door2", "recognize")).status_code == 429  # the server's total (3) is reached
    # another key cannot use, read or end my session: 404 as if it did not exist
    assert api.frame(mine[0], photo, token=other).status_code == 404
    assert api.c.get(f"/v1/collections/default/live/{mine[0]}", headers=api.h(other)).status_code == 404
    assert api.c.delete(f"/v1/collections/default/live/{mine[0]}", headers=api.h(other)).status_code == 404
    reader = api.key("reader", "read")
    assert api.open(token=reader).status_code == 403
    # bad input is refused with the usual codes and the session goes on
    bad = api.frame(mine[0], b"not an image")
    assert bad.status_code == 415
    huge = api.c.post(f"/v1/collections/default/live/{mine[0]}/frames", headers=api.h(),
                      files={"image": ("f.jpg", b"\xff" * (17 * 1024 * 1024), "image/jpeg")})
    assert huge.status_code == 413
    assert api.frame(mine[0], photo).json()["frame"] == 1
    # one frame of a session at a time: while one is being worked on (its lock held), the next is refused
    session = api.c.app.state.ctx.live._sessions[mine[0]]
    with session.lock:
        busy = api.frame(mine[0], photo)
    assert busy.status_code == 429 and busy.json()["error"]["code"] == "session_busy", busy.text
    assert busy.headers["Retry-After"] == "1"
    assert api.frame(mine[0], photo).json()["frame"] == 2  # the refused frame was not counted
    assert api.open(steps=["jump"]).status_code == 422
    assert api.c.post("/v1/collections/nope/live", json={}, headers=api.h()).status_code == 404
    metrics = api.c.get("/metrics").text
    assert "facewise_live_sessions 3" in metrics
    for sid in mine:
        api.c.delete(f"/v1/collections/default/live/{sid}", headers=api.h())
    api.c.delete(f"/v1/collections/default/live/{theirs.json()['session_id']}", headers=api.h(other))
    assert "facewise_live_sessions 0" in api.c.get("/metrics").text


def test_deleting_the_collection_ends_its_sessions(api: Api, knn: Path) -> None:
    h = api.h()
    assert api.c.post("/v1/collections", json={"name": "tmp-live", "profile": "fast"}, headers=h).status_code == 201
    sid = api.c.post("/v1/collections/tmp-live/live", json={}, headers=h).json()["session_id"]
    assert api.c.delete("/v1/collections/tmp-live", headers=h).status_code == 204
    assert api.c.get(f"/v1/collections/tmp-live/live/{sid}", headers=h).status_code == 404
    assert "facewise_live_sessions 0" in api.c.get("/metrics").text


def test_idle_sessions_end(tmp_path: Path) -> None:
    from facewise.service.config import LiveLimits
    from facewise.service.live import LiveSessions

    sessions = LiveSessions(LiveLimits(per_key=1, idle_seconds=0.2))
    s = sessions.open("k1", "default", None)
    assert sessions.get(s.id, "k1", "default") is s
    time.sleep(0.3)
    assert sessions.count() == 0
    sessions.open("k1", "default", None)  # the idle one no longer counts against the key


def test_a_session_ends_when_its_frames_are_used(tmp_path: Path, knn: Path) -> None:
    from facewise.service.config import LiveLimits

    app, token = service_app(tmp_path, profile="fast", live=LiveLimits(max_frames=2))
    photo = (knn / "train" / "biden" / "biden.jpg").read_bytes()
    with fastapi_testclient.TestClient(app) as client:
        a = Api(client, token)
        sid = a.open().json()["session_id"]
        assert [a.frame(sid, photo).json()["frames_left"] for _ in range(2)] == [1, 0]
        over = a.frame(sid, photo)
        assert over.status_code == 404 and "used its 2 frames" in over.json()["error"]["message"]
        assert client.get(f"/v1/collections/default/live/{sid}", headers=a.h()).status_code == 404
