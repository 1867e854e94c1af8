"""Start ``python -m facewise serve`` on a free loopback port for the service tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("multipart")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_process(proc: subprocess.Popen) -> None:
    """Terminate a server process politely, then kill it if it does not exit within 15 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@dataclass
class Server:
    url: str
    db: Path
    key: str
    proc: subprocess.Popen
    log: Path

    def client(self, key: str | None = "admin", timeout: float = 120.0) -> httpx.Client:
        headers = {}
        if key == "admin":
            headers["Authorization"] = f"Bearer {self.key}"
        elif key is not None:
            headers["X-API-Key"] = key
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def log_tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""

    def stop(self) -> None:
        stop_process(self.proc)


def start_server(tmp: Path, *args: str, ready_timeout: float = 90.0) -> Server:
    """A server over a fresh gallery in ``tmp``; returns once /readyz says ready (models loaded)."""
    port = free_port()
    db = tmp / "gallery.db"
    log = tmp / "server.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    with log.open("wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "facewise", "serve", "--db", str(db), "--host", "127.0.0.1",
                                 "--port", str(port), *args], stdout=fh, stderr=subprocess.STDOUT, env=env,
                                stdin=subprocess.DEVNULL)
    server = Server(f"http://127.0.0.1:{port}", db, "", proc, log)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"facewise serve exited with {proc.returncode}:\n{server.log_tail()}")
        try:
            if httpx.get(server.url + "/readyz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    else:
        server.stop()
        pytest.fail(f"facewise serve was not ready in {ready_timeout:.0f} s:\n{server.log_tail()}")
    key_file = db.with_name(db.name + ".admin-key")
    assert key_file.stat().st_mode & 0o777 == 0o600, "the bootstrap key file must be private"
    server.key = key_file.read_text().strip()
    return server
