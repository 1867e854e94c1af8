"""Hostile load: replay the attacks of issues 13 and 25 against a real ``facewise serve``, a fresh server per attack.

    python bench/hostile.py                     # every attack, a table on stdout
    python bench/hostile.py --only storm --json out.json

Per attack: the server's answer (status codes, error codes), its memory growth (``VmHWM`` after the attack minus
``VmRSS`` after warm-up, from ``/proc/<pid>/status``), the size of ``/metrics``, whether everything stored before
is still there (the persons and their faces through the API, then ``facewise doctor`` on the file) and, for the
collage storm, another key's p95 identify latency (>= 100 calls) against its idle p95 on the same server, and
whether the attack needed a key at all (the key-less column). Goals: growth <= 512 MB, p95 <= 3x idle, /metrics
< 100 KB, nothing lost; for ``slowjob`` also: each job stops within 5 s of its cancel or deadline; for ``conns``:
every held connection is closed by the server and a real request answers afterwards.

Attacks:
* methods:  random HTTP method names and paths, no key;
* webp:     three enrolment requests at once, each 20 lossless WebPs of 6000x6600 px (~40 Mpx each);
* video:    an MJPEG AVI of 16000x16000 px;
* json:     a 200 MiB JSON body sent chunked (no Content-Length), and one declaring 321 MiB;
* queue:    40 video jobs from 4 keys, then every job cancelled (no upload may stay on disk);
* storm:    one key sends a 96-face collage to identify, 6 at a time, while another key identifies a portrait.
* body:     (issue 25) no key, bodies the gate must refuse before reading them: a 24 MiB ``[[],[],...]`` JSON
            body to ``PATCH /v1/collections/identify``, three 32 MiB ones at once, three 100 MiB multipart video
            uploads at once; ``/healthz`` is timed meanwhile;
* slowjob:  1080p videos of 20 000 skip frames (one P-frame muxed again and again) at 0.01 fps: one job cancelled
            while it decodes, one past ``--job-timeout 10``, one MKV hiding its length past ``--max-video-seconds``;
* polyglot: three enrolments at once, each 20 TIFF/FLI polyglots (a 1x1 TIFF that is also a 6000x6000 FLI);
* pages:    a TIFF of 65 536 one-pixel pages, to detect and to an enrolment;
* annotated: 4 video jobs of the Hamilton clip from 2 keys, each writing its annotated video, all downloaded;
* conns:    no key, 100 half-sent request heads and 300 idle connections against the default limits (10 s for a
            head, 200 connections): all closed by the server, a real request answers afterwards;
* deepmeta: person metadata nested 260 levels and 20 levels, then a row stored so by an older version, and
            every listing of the persons;
* metrics:  ~700 key-less requests over every route of the schema and 7 methods, a third with a trailing slash.
* erasure:  60 rounds of a person's enrolment racing their delete from a second client: no audit row may keep the
            deleted person's name (findings 6 and 7's HNSW-snapshot race is forced in tests/test_scale_ann.py).
* limit:    (only with --only limit) two 4600x4800 WebPs in one enrolment, just inside the limits: the cost of
            an image at the per-image decode limit.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import socket
import sqlite3
import string
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

DATA = Path(os.environ.get("FACEWISE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
LFW = DATA / "lfw" / "images"
GROUP = DATA / "detection" / "examples" / "faces" / "bald_guys.jpg"
CLIP = DATA / "video" / "face_recognition_examples" / "examples" / "short_hamilton_clip.mp4"
PEOPLE = ["Aaron_Peirsol", "Abdullah_Gul", "Adrien_Brody", "Alejandro_Toledo", "Alvaro_Uribe"]
GROWTH_MB, SLOWDOWN, METRICS_KB = 512, 3.0, 100
STOP_S = 5.0  # a cancelled or timed-out job must end within this many seconds
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the hostile files are built there


# -- a fresh server ---------------------------------------------------------------------------------------
def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM of a process, in kB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


@dataclass
class Server:
    folder: Path
    url: str = ""
    proc: subprocess.Popen | None = None
    admin: str = ""
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def db(self) -> Path:
        return self.folder / "gallery.db"

    def start(self, *args: str) -> Server:
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        log = (self.folder / "server.log").open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "facewise", "serve", "--db", str(self.db), "--port",
                                      str(port), *args], stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"facewise serve exited: {(self.folder / 'server.log').read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/readyz", timeout=3).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        else:
            raise SystemExit("facewise serve was not ready in 180 s")
        self.admin = (self.folder / "gallery.db.admin-key").read_text().strip()
        return self

    def client(self, key: str | None = None, timeout: float = 300) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key or self.admin}"} if key != "" else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def new_key(self, name: str, scopes: list[str], rate: float | None = None) -> str:
        """A key; ``rate`` replaces the server's per-key rate limit (its burst too) for this key."""
        body: dict[str, Any] = {"name": name, "scopes": scopes, "collections": ["*"]}
        if rate is not None:
            body.update(rate=rate, burst=int(rate))
        with self.client() as c:
            r = c.post("/v1/keys", json=body)
            r.raise_for_status()
            self.keys[name] = r.json()["token"]
            return self.keys[name]

    def memory(self) -> dict[str, int]:
        assert self.proc is not None
        return _status(self.proc.pid)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def _portrait(name: str) -> bytes:
    return sorted((LFW / name).glob("*.jpg"))[0].read_bytes()


def warm_up(server: Server) -> dict[str, Any]:
    """Enrol a few people, identify a few times; returns what must still be there after the attack."""
    with server.client() as c:
        for name in PEOPLE:
            r = c.post("/v1/collections/default/persons", json={"name": name})
            r.raise_for_status()
            # LFW photos may show a bystander too: the largest face is the person's (the default is the only one)
            r = c.post(f"/v1/collections/default/persons/{r.json()['id']}/faces", data={"face": "largest"},
                       files=[("files", (f"{name}.jpg", _portrait(name)))])
            r.raise_for_status()
        for name in PEOPLE:
            c.post("/v1/collections/default/identify", files={"image": ("p.jpg", _portrait(name))}).raise_for_status()
        return _snapshot(c)


def _snapshot(c: httpx.Client) -> dict[str, Any]:
    items = c.get("/v1/collections/default/persons", params={"limit": 500}).json()["items"]
    return {p["name"]: p["samples"] for p in items}


# -- the attacks ------------------------------------------------------------------------------------------
def _codes(responses: list[httpx.Response | str]) -> str:
    def one(r: httpx.Response | str) -> str:
        if isinstance(r, str):
            return r
        try:
            return f"{r.status_code} {r.json()['error']['code']}"
        except (ValueError, KeyError, TypeError):
            return str(r.status_code)

    return ", ".join(f"{n}x {k}" for k, n in Counter(one(r) for r in responses).most_common())


def attack_methods(server: Server, n: int) -> dict[str, Any]:
    rng = random.Random(13)

    requests = [("".join(rng.choices(string.ascii_uppercase, k=10)) if i % 3 else "GET",
                 "/" + "".join(rng.choices(string.ascii_lowercase, k=8)) + "/"
                 + "".join(rng.choices(string.ascii_lowercase, k=12))) for i in range(n)]
    with httpx.Client(base_url=server.url, timeout=60, limits=httpx.Limits(max_connections=8)) as c, \
            ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda mp: c.request(*mp), requests))
    return {"answer": _codes(answers), "requests": n}


def _webp_bomb(width: int = 6000, height: int = 6600) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (180, 140, 120)).save(buf, "WEBP", lossless=True)
    return buf.getvalue()


def attack_webp(server: Server, concurrent: int = 3, files: int = 20) -> dict[str, Any]:
    bomb = _webp_bomb()
    with server.client() as c:
        pid = c.post("/v1/collections/default/persons", json={"name": "bomb target"}).json()["id"]

    def one(_: int) -> httpx.Response:
        with server.client() as c:
            return c.post(f"/v1/collections/default/persons/{pid}/faces",
                          files=[("files", (f"bomb{i}.webp", bomb)) for i in range(files)])

    with ThreadPoolExecutor(concurrent) as pool:
        answers = list(pool.map(one, range(concurrent)))
    with server.client() as c:
        c.delete(f"/v1/collections/default/persons/{pid}")
    return {"answer": _codes(answers), "requests": concurrent, "upload": f"{files} x {len(bomb)} B"}


def attack_limit(server: Server) -> dict[str, Any]:
    """Not an attack the budgets refuse: one enrolment of two 4600x4800 WebPs, just inside the default limits (a
    WebP takes ~18 bytes a pixel to decode; 400 MiB per image), to show what an image at the limit costs."""
    bomb = _webp_bomb(4600, 4800)
    with server.client() as c:
        pid = c.post("/v1/collections/default/persons", json={"name": "at the limit"}).json()["id"]
        r = c.post(f"/v1/collections/default/persons/{pid}/faces",
                   files=[("files", (f"limit{i}.webp", bomb)) for i in range(2)])
        c.delete(f"/v1/collections/default/persons/{pid}")
    return {"answer": _codes([r]), "upload": f"2 x {len(bomb)} B"}


def _huge_avi(folder: Path, side: int) -> Path:
    import cv2

    path = folder / f"huge{side}.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (side, side))
    frame = np.zeros((side, side, 3), np.uint8)
    for _ in range(2):
        writer.write(frame)
    writer.release()
    return path


def attack_video(server: Server, side: int) -> dict[str, Any]:
    video = _huge_avi(server.folder, side)
    with server.client(server.keys["tenant"]) as c:
        r = c.post("/v1/collections/default/videos", files={"video": ("huge.avi", video.read_bytes())})
    return {"answer": _codes([r]), "upload": f"{side}x{side} MJPEG, {video.stat().st_size} B"}


def _chunks(total: int, size: int = 1 << 20) -> Iterator[bytes]:
    yield b'{"name": "big", "metadata": {"x": "'
    sent = 0
    while sent < total:
        yield b"a" * size
        sent += size
    yield b'"}}'


def attack_json(server: Server, mib: int) -> dict[str, Any]:
    answers: list[httpx.Response | str] = []
    with server.client() as c:
        try:
            answers.append(c.post("/v1/collections/default/persons", content=_chunks(mib << 20),
                                  headers={"Content-Type": "application/json"}))
        except httpx.HTTPError as exc:  # the server may close the connection while we still send
            answers.append(f"closed ({type(exc).__name__})")
        try:
            answers.append(c.post("/v1/collections/default/persons", content=_chunks(mib << 20),
                                  headers={"Content-Type": "application/json", "Content-Length": str(321 << 20)}))
        except httpx.HTTPError as exc:
            answers.append(f"closed ({type(exc).__name__})")
    return {"answer": _codes(answers), "upload": f"{mib} MiB chunked; {mib} MiB declaring 321 MiB"}


def attack_queue(server: Server, keys: int = 4, per_key: int = 10) -> dict[str, Any]:
    clip = CLIP.read_bytes()
    tokens = [server.new_key(f"queue{i}", ["recognize"]) for i in range(keys)]

    def one(i: int) -> httpx.Response:
        with server.client(tokens[i % keys]) as c:
            return c.post("/v1/collections/default/videos", files={"video": ("clip.mp4", clip)}, data={"fps": "2"})

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(one, range(keys * per_key)))
    with server.client() as c:
        for r in answers:
            if r.status_code == 202:
                c.delete(f"/v1/jobs/{r.json()['id']}")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and any(j["state"] in ("queued", "running")
                                                  for j in c.get("/v1/jobs").json()):
            time.sleep(0.5)
    left = list((server.folder / "gallery.db.jobs").glob("*"))
    return {"answer": _codes(answers), "requests": len(answers), "files_left": len(left)}


def _collage() -> bytes:
    im = Image.open(GROUP)
    collage = Image.new("RGB", (im.width * 2, im.height * 2))
    for x in (0, im.width):
        for y in (0, im.height):
            collage.paste(im, (x, y))
    buf = io.BytesIO()
    collage.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def _latencies(server: Server, key: str, calls: int) -> list[float]:
    probe = _portrait(PEOPLE[0])
    out = []
    with server.client(key) as c:
        for _ in range(calls):
            t = time.perf_counter()
            r = c.post("/v1/collections/default/identify", files={"image": ("p.jpg", probe)})
            r.raise_for_status()
            out.append(time.perf_counter() - t)
    return out


def p95(xs: list[float]) -> float:
    return float(np.percentile(xs, 95))


def attack_storm(server: Server, calls: int, idle: list[float]) -> dict[str, Any]:
    collage = _collage()
    storm_key = server.new_key("storm", ["recognize"])
    stop = threading.Event()
    answers: list[httpx.Response | str] = []

    def storm() -> None:
        def one(_: int) -> httpx.Response:
            with server.client(storm_key) as c:
                return c.post("/v1/collections/default/identify", files={"image": ("c.jpg", collage)})

        with ThreadPoolExecutor(6) as pool:
            while not stop.is_set():
                answers.extend(pool.map(one, range(6)))

    return _measure_under(server, storm, stop, answers, calls, idle)


def _measure_under(server: Server, storm: Callable[[], None], stop: threading.Event,
                   answers: list[httpx.Response | str], calls: int, idle: list[float]) -> dict[str, Any]:
    """The other key's identify latencies while ``storm`` runs in a thread."""
    thread = threading.Thread(target=storm, daemon=True)
    thread.start()
    time.sleep(2.0)  # the storm is under way
    loaded = _latencies(server, server.keys["tenant"], calls)
    stop.set()
    thread.join()
    return {"answer": _codes(answers), "requests": len(answers), "idle_p95": p95(idle), "p95": p95(loaded),
            "slowdown": p95(loaded) / p95(idle), "calls": calls}


def attack_livestorm(server: Server, calls: int, idle: list[float]) -> dict[str, Any]:
    """The web page's live view abused: one key opens its live sessions (2) and sends the collage as camera
    frames, 6 at a time, while another key measures identify."""
    collage = _collage()
    storm_key = server.new_key("camstorm", ["recognize"])
    with server.client(storm_key) as c:
        sessions = [c.post("/v1/collections/default/live", json={}).json()["session_id"] for _ in range(2)]
    stop = threading.Event()
    answers: list[httpx.Response | str] = []

    def storm() -> None:
        def one(i: int) -> httpx.Response:
            with server.client(storm_key) as c:
                return c.post(f"/v1/collections/default/live/{sessions[i % 2]}/frames",
                              files={"image": ("c.jpg", collage)})

        with ThreadPoolExecutor(6) as pool:
            while not stop.is_set():
                answers.extend(pool.map(one, range(6)))

    return _measure_under(server, storm, stop, answers, calls, idle)


# -- issue 25: the gate, the connection limits, hostile files and jobs ------------------------------------
def _port(server: Server) -> int:
    return int(server.url.rsplit(":", 1)[1])


def _head(method: str, path: str, headers: dict[str, str]) -> bytes:
    return (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode()


def _status_line(data: bytes) -> str:
    """``"401 unauthorized"`` from a raw answer (its status and error code), or what happened instead."""
    if not data:
        return "closed, no answer"
    head, _, body = data.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].split()[1].decode()
    try:
        return f"{status} {json.loads(body)['error']['code']}"
    except (ValueError, KeyError, TypeError):
        return status


def _length(data: bytes) -> int:
    for line in data.partition(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == b"content-length":
            return int(value)
    return 0


def _send_body(server: Server, method: str, path: str, headers: dict[str, str], parts: Iterator[bytes],
               size: int) -> dict[str, Any]:
    """Send a head declaring ``size`` bytes, then the body while reading the answer; returns the answer and how
    much of the body had been sent when the answer came (the server never read more than that)."""
    s = socket.create_connection(("127.0.0.1", _port(server)), timeout=60)
    s.sendall(_head(method, path, {**headers, "Content-Length": str(size)}))
    sent = [0, 0]  # all sent, sent before the answer
    answered = threading.Event()

    def feed() -> None:
        try:
            for part in parts:
                s.sendall(part)
                sent[0] += len(part)
                if not answered.is_set():
                    sent[1] = sent[0]
        except OSError:  # the server answered and closed: what we were still sending is refused
            pass

    sender = threading.Thread(target=feed, daemon=True)
    t0 = time.perf_counter()
    sender.start()
    data = b""
    try:
        while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < _length(data):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    answered.set()
    seconds = time.perf_counter() - t0
    s.close()  # stops the sender too
    sender.join(30)
    return {"answer": _status_line(data), "seconds": seconds, "sent_before_answer": sent[1], "sent": sent[0]}


def _json_lists(size: int, chunk: int = 1 << 20) -> Iterator[bytes]:
    """``[[],[],...]`` of ``size`` bytes, a MiB at a time."""
    yield b"["
    left = size - 2
    piece = b"[]," * (chunk // 3)
    while left > 0:
        part = piece[:left]
        if len(part) == left and part.endswith(b","):
            part = part[:-1] + b" "
        yield part
        left -= len(part)
    yield b"]"


def _multipart(size: int, chunk: int = 1 << 20) -> tuple[int, Iterator[bytes]]:
    head = b'--hostile\r\nContent-Disposition: form-data; name="video"; filename="a.mp4"\r\n\r\n'
    tail = b"\r\n--hostile--\r\n"

    def parts() -> Iterator[bytes]:
        yield head
        left = size
        while left > 0:
            yield b"\0" * min(chunk, left)
            left -= chunk
        yield tail

    return len(head) + size + len(tail), parts()


def attack_body(server: Server) -> dict[str, Any]:
    """No key; bodies declared with their length and then sent in full while the answer is awaited."""
    stop = threading.Event()
    health: list[float] = []

    def poll_health() -> None:
        with httpx.Client(base_url=server.url, timeout=60) as c:
            while not stop.is_set():
                t = time.perf_counter()
                c.get("/healthz").raise_for_status()
                health.append(time.perf_counter() - t)
                time.sleep(0.02)

    json_head = {"Content-Type": "application/json"}

    def lists(mib: int) -> dict[str, Any]:
        return _send_body(server, "PATCH", "/v1/collections/identify", json_head, _json_lists(mib << 20),
                          mib << 20)

    def upload(mib: int) -> dict[str, Any]:
        size, parts = _multipart(mib << 20)
        return _send_body(server, "POST", "/v1/collections/default/videos",
                          {"Content-Type": "multipart/form-data; boundary=hostile"}, parts, size)

    def health_calls(more: int) -> None:  # /healthz is timed throughout, at least once more per phase
        until = len(health) + more
        while len(health) < until and poller.is_alive():
            time.sleep(0.01)

    poller = threading.Thread(target=poll_health, daemon=True)
    poller.start()
    try:
        health_calls(1)
        health.clear()
        results = [lists(24)]
        health_calls(1)
        with ThreadPoolExecutor(3) as pool:
            results += list(pool.map(lists, [32] * 3))
            health_calls(1)
            results += list(pool.map(upload, [100] * 3))
            health_calls(1)
    finally:
        stop.set()
        poller.join()
    sent = sum(r["sent_before_answer"] for r in results)
    declared = (24 + 3 * 32 + 3 * 100) << 20
    return {"answer": _codes([r["answer"] for r in results]), "requests": len(results),
            "upload": "24 MiB [[],...] JSON; 3 x 32 MiB at once; 3 x 100 MiB multipart video uploads at once",
            "sent_before_answers_mib": sent / (1 << 20), "declared_mib": declared / (1 << 20),
            "slowest_answer_s": max(r["seconds"] for r in results),
            "healthz_max_ms": 1000 * max(health, default=float("nan")), "healthz_calls": len(health)}


def _repeated_frames(path: Path, frames: int, size: tuple[int, int], step: int, den: int, rate: int) -> Path:
    """A key frame, then one P-frame's packet muxed ``frames`` times (tests/hostile_files.py builds it)."""
    return _hostile_files().repeated_frames(path, frames, size, step, den, rate)


def _job(c: httpx.Client, job_id: str) -> dict[str, Any]:
    return c.get(f"/v1/jobs/{job_id}").json()


def _wait_job(c: httpx.Client, job_id: str, timeout: float, states: tuple[str, ...] = ("done", "failed",
                                                                                        "cancelled")) -> dict:
    deadline = time.monotonic() + timeout
    while (job := _job(c, job_id))["state"] not in states and time.monotonic() < deadline:
        time.sleep(0.1)
    return job


SLOWJOB_TIMEOUT, SLOWJOB_MAX_SECONDS = 10, 10


def attack_slowjob(server: Server, calls: int, idle: list[float]) -> dict[str, Any]:
    """1080p skip frames at 0.01 fps: a cancel during decoding, the job deadline, the length limit on a file that
    hides its length; another key's identify measured meanwhile."""
    dense = _repeated_frames(server.folder / "dense.mp4", 20_000, (1920, 1080), 3, 10_000, 30)  # 6 s long
    hidden = _repeated_frames(server.folder / "hidden.mkv", 1800, (1920, 1080), 33, 1000, 1000)  # 60 s, no length
    key = server.new_key("slowjob", ["recognize"])
    stop = threading.Event()
    answers: list[httpx.Response | str] = []
    found: dict[str, Any] = {}

    def submit(c: httpx.Client, clip: Path) -> str:
        r = c.post("/v1/collections/default/videos", files={"video": (clip.name, clip.read_bytes())},
                   data={"fps": "0.01"})
        answers.append(r)
        r.raise_for_status()
        return str(r.json()["id"])

    def storm() -> None:
        with server.client(key) as c:
            cancelled, late = submit(c, dense), submit(c, dense)
            _wait_job(c, cancelled, 60, ("running",))
            time.sleep(3)  # its one kept frame is behind it: only the per-frame check can see the cancel
            t = time.perf_counter()
            answers.append(c.delete(f"/v1/jobs/{cancelled}"))
            job = _wait_job(c, cancelled, 120)
            found["cancel"] = (job["state"], time.perf_counter() - t)
            job = _wait_job(c, late, SLOWJOB_TIMEOUT + 120)
            found["timeout"] = (job["state"], (job["error"] or {}).get("code"), _ran(job))
            job = _wait_job(c, submit(c, hidden), SLOWJOB_TIMEOUT + 120)
            found["length"] = (job["state"], (job["error"] or {}).get("code"), _ran(job))
        answers.extend(f"job {f[0]} {f[1]}" for f in (found["timeout"], found["length"]))
        answers.append(f"job {found['cancel'][0]}")

    result = _measure_under(server, storm, stop, answers, calls, idle)
    result["upload"] = (f"{dense.stat().st_size} B (20000 frames, 6 s), {hidden.stat().st_size} B "
                        f"(1800 frames, 60 s, length hidden)")
    result["cancel_s"] = found["cancel"][1]
    result["timeout_run_s"] = found["timeout"][2]
    result["length_run_s"] = found["length"][2]
    result["stopped"] = (found["cancel"][0] == "cancelled" and found["cancel"][1] <= STOP_S
                         and found["timeout"][1] == "job_timeout" and found["timeout"][2] <= SLOWJOB_TIMEOUT + STOP_S
                         and found["length"][1] == "video_too_large")
    result["files_left"] = len([p for p in (server.folder / "gallery.db.jobs").glob("*") if p.suffix == ".video"])
    return result


def _ran(job: dict[str, Any]) -> float:
    from datetime import datetime

    if not job.get("started_at") or not job.get("finished_at"):
        return float("nan")
    return (datetime.fromisoformat(job["finished_at"]) - datetime.fromisoformat(job["started_at"])).total_seconds()


def _hostile_files() -> Any:
    import hostile_files

    return hostile_files


def attack_polyglot(server: Server, concurrent: int = 3, files: int = 20) -> dict[str, Any]:
    poly = _hostile_files().tiff_fli_polyglot(6000)
    with server.client() as c:
        pid = c.post("/v1/collections/default/persons", json={"name": "poly target"}).json()["id"]

    def one(_: int) -> httpx.Response:
        with server.client() as c:
            return c.post(f"/v1/collections/default/persons/{pid}/faces",
                          files=[("files", (f"p{i}.tif", poly)) for i in range(files)])

    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrent) as pool:
        answers = list(pool.map(one, range(concurrent)))
    seconds = time.perf_counter() - t0
    with server.client() as c:
        detect = c.post("/v1/detect", files={"image": ("p.tif", poly)})
        width = detect.json().get("image", {}).get("width") if detect.status_code == 200 else None
        c.delete(f"/v1/collections/default/persons/{pid}")
    return {"answer": _codes([*answers, detect]), "requests": concurrent + 1,
            "upload": f"{files} x {len(poly)} B", "enrol_s": seconds, "decoded_width": width,
            "fli_decoded": any("6000" in r.text for r in answers)}


def attack_pages(server: Server, pages: int = 65536) -> dict[str, Any]:
    bomb = _hostile_files().many_page_tiff(pages)
    answers, seconds = [], []
    with server.client() as c:
        pid = c.post("/v1/collections/default/persons", json={"name": "pages target"}).json()["id"]
        for path, files in (("/v1/detect", {"image": ("pages.tif", bomb)}),
                            (f"/v1/collections/default/persons/{pid}/faces", [("files", ("pages.tif", bomb))])):
            t = time.perf_counter()
            answers.append(c.post(path, files=files))
            seconds.append(time.perf_counter() - t)
        c.delete(f"/v1/collections/default/persons/{pid}")
    return {"answer": _codes(answers), "requests": 2, "upload": f"{pages} pages, {len(bomb)} B",
            "slowest_s": max(seconds)}


def attack_annotated(server: Server, keys: int = 2, per_key: int = 2) -> dict[str, Any]:
    clip = CLIP.read_bytes()
    tokens = [server.new_key(f"video{i}", ["recognize"]) for i in range(keys)]
    answers: list[httpx.Response | str] = []
    jobs = []
    for i in range(keys * per_key):
        with server.client(tokens[i % keys]) as c:
            r = c.post("/v1/collections/default/videos", files={"video": ("clip.mp4", clip)})
            answers.append(r)
            if r.status_code == 202:
                jobs.append((tokens[i % keys], r.json()["id"]))
    sizes = []
    for token, job_id in jobs:
        with server.client(token) as c:
            job = _wait_job(c, job_id, 600)
            answers.append(f"job {job['state']}")
            if job["annotated_video"]:
                with c.stream("GET", f"/v1/jobs/{job_id}/video") as r:
                    sizes.append(sum(len(b) for b in r.iter_bytes()))
    return {"answer": _codes(answers), "requests": len(jobs), "upload": f"4 x {len(clip)} B at 5 fps",
            "annotated_videos": len(sizes), "annotated_bytes": sizes}


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def attack_conns(server: Server, half: int = 100, idle: int = 300, wait: float = 60) -> dict[str, Any]:
    """No key: ``half`` request heads that never end and ``idle`` connections that send nothing, against the
    default limits; the server must close every one, and answer a real request afterwards."""
    import selectors

    assert server.proc is not None
    before = _fds(server.proc.pid)
    held = []
    for _ in range(half):
        s = socket.create_connection(("127.0.0.1", _port(server)), timeout=30)
        s.sendall(b"POST /v1/detect HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        held.append(s)
    for _ in range(idle):
        held.append(socket.create_connection(("127.0.0.1", _port(server)), timeout=30))
    t0 = time.perf_counter()
    time.sleep(1)
    peak_fds = _fds(server.proc.pid) - before
    try:
        during = str(httpx.get(server.url + "/healthz", timeout=30).status_code)
    except httpx.HTTPError as exc:
        during = f"closed ({type(exc).__name__})"
    sel = selectors.DefaultSelector()
    for s in held:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    closed, last = 0, 0.0
    while closed < len(held) and time.perf_counter() - t0 < wait:
        for sk, _ in sel.select(timeout=1):
            s = sk.fileobj
            try:
                data = s.recv(65536)  # type: ignore[union-attr]
            except (ConnectionResetError, BlockingIOError):
                data = b""
            if not data:
                sel.unregister(s)
                closed += 1
                last = time.perf_counter() - t0
    for s in held:
        s.close()
    sel.close()
    with server.client(server.keys["tenant"]) as c:
        after = c.post("/v1/collections/default/identify", files={"image": ("p.jpg", _portrait(PEOPLE[0]))})
    return {"answer": _codes([after]), "requests": half + idle, "held": len(held), "closed_by_server": closed,
            "all_closed_s": last, "peak_fds": peak_fds, "healthz_while_held": during,
            "stopped": closed == len(held) and after.status_code == 200}


def _deep(levels: int) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for _ in range(levels - 1):
        doc = {"a": doc}
    return doc


def attack_deepmeta(server: Server, levels: int = 260) -> dict[str, Any]:
    answers: list[httpx.Response | str] = []
    with server.client() as c:
        answers.append(c.post("/v1/collections/default/persons", json={"name": "Deep One",
                                                                        "metadata": _deep(levels)}))
        # under the body's JSON depth limit (32), over the metadata's (8): the gallery's own check answers
        answers.append(c.post("/v1/collections/default/persons", json={"name": "Deep Two", "metadata": _deep(20)}))
        # a row an older version stored
        with sqlite3.connect(server.db) as db:
            cid = db.execute("SELECT id FROM collections WHERE name='default'").fetchone()[0]
            old = db.execute("INSERT INTO persons(collection_id, name, metadata, created_at) VALUES(?,?,?,?)",
                             (cid, "Old Deep", json.dumps(_deep(levels)), "2024-01-01T00:00:00+00:00")).lastrowid
        db.close()
        listing = c.get("/v1/collections/default/persons", params={"limit": 500})
        one = c.get(f"/v1/collections/default/persons/{old}")
        answers += [listing, one, c.delete(f"/v1/collections/default/persons/{old}")]
    reads = "invalid_metadata" in one.text and any("invalid_metadata" in (p.get("metadata") or {})
                                                   for p in listing.json().get("items", []))
    return {"answer": _codes(answers), "requests": len(answers), "old_row_reads_invalid": reads, "stopped": reads,
            "upload": f"metadata {levels} and 20 levels deep, then an old row of {levels} listed"}


def attack_metrics(server: Server, n: int = 700) -> dict[str, Any]:
    import re

    with server.client() as c:
        paths = [re.sub(r"\{[^}]+\}", "x1", p) for p in c.get("/openapi.json").json()["paths"]]
    answers = []
    with httpx.Client(base_url=server.url, timeout=30) as anon:
        while len(answers) < n:
            for p in paths:
                for m in ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"):
                    answers.append(anon.request(m, p + ("/" if len(answers) % 3 == 0 else "")))
    return {"answer": _codes(answers), "requests": len(answers), "upload": f"{len(paths)} paths x 7 methods"}


def attack_erasure(server: Server, rounds: int = 60) -> dict[str, Any]:
    """Enrolment racing the person's delete (finding 7): no audit row may keep a deleted person's name."""
    photo = _portrait(PEOPLE[0])
    names = [f"Erased Racer {i}" for i in range(rounds)]
    answers: list[httpx.Response | str] = []
    with server.client() as c, server.client() as other:
        for i, name in enumerate(names):
            pid = c.post("/v1/collections/default/persons", json={"name": name}).json()["id"]
            t = threading.Thread(target=lambda pid=pid, i=i: answers.append(other.post(
                f"/v1/collections/default/persons/{pid}/faces", data={"face": "largest"},
                files=[("files", (f"{i}.jpg", photo + bytes(i), "image/jpeg"))])))
            t.start()
            time.sleep(0.025 * (i % 20))  # the delete lands before, during and after the enrolment
            answers.append(c.delete(f"/v1/collections/default/persons/{pid}"))
            t.join(120)
    with sqlite3.connect(server.db) as db:
        named = sum(any(n in d for n in names) for (d,) in db.execute("SELECT detail FROM service_audit"))
    db.close()
    return {"answer": _codes(answers), "requests": len(answers), "audit_rows_named": named, "stopped": named == 0,
            "upload": f"{rounds} rounds of enrol || delete"}


# -- the run ----------------------------------------------------------------------------------------------
ATTACKS = ("methods", "webp", "video", "json", "queue", "storm", "livestorm", "body", "slowjob", "polyglot", "pages",
           "annotated", "conns", "deepmeta", "metrics", "erasure")
EXTRA = ("limit",)  # run with --only
KEYLESS = {"methods", "body", "conns", "metrics"}  # attacks that need no key at all
MEASURED = {"storm", "livestorm", "slowjob"}  # another key's identify is timed, idle and under the attack
SERVER_ARGS = {"slowjob": ("--job-timeout", str(SLOWJOB_TIMEOUT), "--max-video-seconds", str(SLOWJOB_MAX_SECONDS))}


def run_one(name: str, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    folder = root / name
    folder.mkdir()
    server = Server(folder).start(*SERVER_ARGS.get(name, ()))
    try:
        # the measuring tenant's own rate limit is raised: at the default 10/s its 100 back-to-back identify calls
        # (a few ms each) would be throttled, which measures the limiter, not the attack
        server.new_key("tenant", ["recognize"], rate=1000)
        before = warm_up(server)
        idle = _latencies(server, server.keys["tenant"], args.calls) if name in MEASURED else []
        warm = server.memory()["VmRSS"]
        t0 = time.perf_counter()
        attacks: dict[str, Callable[[], dict[str, Any]]] = {
            "methods": lambda: attack_methods(server, args.requests),
            "webp": lambda: attack_webp(server),
            "video": lambda: attack_video(server, args.video_side),
            "json": lambda: attack_json(server, args.json_mib),
            "queue": lambda: attack_queue(server),
            "storm": lambda: attack_storm(server, args.calls, idle),
            "livestorm": lambda: attack_livestorm(server, args.calls, idle),
            "limit": lambda: attack_limit(server),
            "body": lambda: attack_body(server),
            "slowjob": lambda: attack_slowjob(server, args.calls, idle),
            "polyglot": lambda: attack_polyglot(server),
            "pages": lambda: attack_pages(server),
            "annotated": lambda: attack_annotated(server),
            "conns": lambda: attack_conns(server),
            "deepmeta": lambda: attack_deepmeta(server),
            "metrics": lambda: attack_metrics(server),
            "erasure": lambda: attack_erasure(server),
        }
        result = attacks[name]()
        result["keyless"] = name in KEYLESS
        result["seconds"] = time.perf_counter() - t0
        result["growth_mb"] = (server.memory()["VmHWM"] - warm) / 1024
        result["metrics_kb"] = len(httpx.get(server.url + "/metrics", timeout=60).content) / 1024
        with server.client() as c:
            result["kept"] = _snapshot(c) == before
    finally:
        server.stop()
    doctor = subprocess.run([sys.executable, "-m", "facewise", "doctor", "--db", str(server.db)],
                            capture_output=True, text=True, timeout=300)
    result["doctor"] = "clean" if doctor.returncode == 0 else f"exit {doctor.returncode}"
    result["met"] = (result["growth_mb"] <= GROWTH_MB and result["metrics_kb"] < METRICS_KB and result["kept"]
                     and result["doctor"] == "clean" and result.get("slowdown", 0) <= SLOWDOWN
                     and result.get("files_left", 0) == 0 and result.get("stopped", True))
    return result


def _note(r: dict[str, Any]) -> str:
    """The attack's own findings, after its answer."""
    notes = []
    if "sent_before_answers_mib" in r:
        notes.append(f"{r['sent_before_answers_mib']:.1f} of {r['declared_mib']:.0f} MiB sent before the answers, "
                     f"slowest {r['slowest_answer_s']:.2f} s; /healthz max {r['healthz_max_ms']:.0f} ms")
    if "cancel_s" in r:
        notes.append(f"cancel took {r['cancel_s']:.1f} s, timed-out job ran {r['timeout_run_s']:.1f} s, "
                     f"hidden-length job {r['length_run_s']:.1f} s")
    if "closed_by_server" in r:
        notes.append(f"{r['closed_by_server']}/{r['held']} closed by the server (last after {r['all_closed_s']:.0f} s),"
                     f" +{r['peak_fds']} fds at peak, /healthz while held: {r['healthz_while_held']}")
    if "enrol_s" in r:
        notes.append(f"3 enrolments in {r['enrol_s']:.1f} s, decoded {r['decoded_width']} px wide")
    if "slowest_s" in r:
        notes.append(f"slowest {r['slowest_s']:.2f} s")
    if "old_row_reads_invalid" in r:
        notes.append("the old row lists as invalid_metadata" if r["old_row_reads_invalid"] else "OLD ROW UNREADABLE")
    if "audit_rows_named" in r:
        notes.append(f"{r['audit_rows_named']} audit rows still name a deleted person")
    if "annotated_videos" in r:
        notes.append(f"{r['annotated_videos']} annotated videos downloaded")
    return "; " + "; ".join(notes) if notes else ""


def table(results: dict[str, dict[str, Any]]) -> str:
    lines = ["| attack | key-less | answer | memory growth | other key's p95 identify | /metrics | stored data "
             "| goals |", "|---|---|---|---:|---|---:|---|---|"]
    for name, r in results.items():
        lat = (f"{r['p95'] * 1000:.0f} ms vs {r['idle_p95'] * 1000:.0f} ms idle ({r['slowdown']:.2f}x)"
               if "p95" in r else "")
        kept = ("kept" if r["kept"] else "LOST") + f", doctor {r['doctor']}"
        if "files_left" in r:
            kept += f", {r['files_left']} upload(s) left"
        lines.append(f"| {name} | {'yes' if r['keyless'] else 'no'} | {r['answer']}{_note(r)} | "
                     f"{r['growth_mb']:.0f} MB | {lat} | {r['metrics_kb']:.1f} KB | "
                     f"{kept} | {'met' if r['met'] else 'MISSED'} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=ATTACKS + EXTRA, action="append", help="run only this attack (repeatable)")
    ap.add_argument("--requests", type=int, default=3000, help="requests of the method flood")
    ap.add_argument("--calls", type=int, default=100, help="identify calls of the other key (idle and loaded)")
    ap.add_argument("--video-side", type=int, default=16000, help="width = height of the huge video")
    ap.add_argument("--json-mib", type=int, default=200, help="size of the big JSON body")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="facewise-hostile-") as tmp:
        for name in args.only or ATTACKS:
            results[name] = run_one(name, args, Path(tmp))
            print(f"{name}: {json.dumps(results[name], default=str)}", file=sys.stderr, flush=True)
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} CPUs, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    if not all(r["met"] for r in results.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
