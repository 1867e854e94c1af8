"""Hostile load: replay the attacks of issue 13 against a real ``facewise serve``, a fresh server per attack.

    python bench/hostile.py                     # every attack, a table on stdout
    python bench/hostile.py --only storm --json out.json

Per attack: the server's answer (status codes, error codes), its memory growth (``VmHWM`` after the attack minus
``VmRSS`` after warm-up, from ``/proc/<pid>/status``), the size of ``/metrics``, whether everything stored before
is still there (the persons and their faces through the API, then ``facewise doctor`` on the file) and, for the
collage storm, another key's p95 identify latency (>= 100 calls) against its idle p95 on the same server.
Goals: growth <= 512 MB, p95 <= 3x idle, /metrics < 100 KB, nothing lost.

Attacks:
* methods:  random HTTP method names and paths, no key;
* webp:     three enrolment requests at once, each 20 lossless WebPs of 6000x6600 px (~40 Mpx each);
* video:    an MJPEG AVI of 16000x16000 px;
* json:     a 200 MiB JSON body sent chunked (no Content-Length), and one declaring 321 MiB;
* queue:    40 video jobs from 4 keys, then every job cancelled (no upload may stay on disk);
* storm:    one key sends a 96-face collage to identify, 6 at a time, while another key identifies a portrait.
* limit:    (only with --only limit) two 4600x4800 WebPs in one enrolment, just inside the limits: the cost of
            an image at the per-image decode limit.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
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
            r = c.post(f"/v1/collections/default/persons/{r.json()['id']}/faces",
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


# -- the run ----------------------------------------------------------------------------------------------
ATTACKS = ("methods", "webp", "video", "json", "queue", "storm", "livestorm")
EXTRA = ("limit",)  # run with --only


def run_one(name: str, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    folder = root / name
    folder.mkdir()
    server = Server(folder).start()
    try:
        # the measuring tenant's own rate limit is raised: at the default 10/s its 100 back-to-back identify calls
        # (a few ms each) would be throttled, which measures the limiter, not the attack
        server.new_key("tenant", ["recognize"], rate=1000)
        before = warm_up(server)
        idle = _latencies(server, server.keys["tenant"], args.calls) if name in ("storm", "livestorm") else []
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
        }
        result = attacks[name]()
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
                     and result.get("files_left", 0) == 0)
    return result


def table(results: dict[str, dict[str, Any]]) -> str:
    lines = ["| attack | answer | memory growth | other key's p95 identify | /metrics | stored data | goals |",
             "|---|---|---:|---|---:|---|---|"]
    for name, r in results.items():
        lat = (f"{r['p95'] * 1000:.0f} ms vs {r['idle_p95'] * 1000:.0f} ms idle ({r['slowdown']:.2f}x)"
               if "p95" in r else "")
        kept = ("kept" if r["kept"] else "LOST") + f", doctor {r['doctor']}"
        if "files_left" in r:
            kept += f", {r['files_left']} upload(s) left"
        lines.append(f"| {name} | {r['answer']} | {r['growth_mb']:.0f} MB | {lat} | {r['metrics_kb']:.1f} KB | "
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
