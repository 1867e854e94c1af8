"""Real database servers for the store tests: PostgreSQL + pgvector, a Milvus Lite gRPC server and the Milvus
standalone server (``milvus-server`` of the ``milvus`` package, in the scale-test extra).

PostgreSQL and Milvus Lite listen on 127.0.0.1 only. PostgreSQL comes from ``.ci/start-postgres.sh`` (which CI
runs first and which the fixture runs itself when no server answers); the Milvus servers are started by the test
modules that use them.
Outside CI a missing server skips its tests with the reason; under CI (``CI`` set) it fails them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from service_helpers import stop_process

REPO = Path(__file__).resolve().parents[1]
IN_CI = bool(os.environ.get("CI"))


def unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (CI is set: the server must be there)")
    pytest.skip(reason)


def _pg_answers(dsn: str) -> bool:
    try:
        import psycopg

        with psycopg.connect(dsn, connect_timeout=3) as c:
            c.execute("SELECT 1")
        return True
    except Exception:
        return False


def postgres_dsn() -> str:
    """The DSN of a running PostgreSQL with pgvector: $FACEWISE_PG_DSN, the start script's file, or started."""
    try:
        import pgvector  # noqa: F401
        import psycopg  # noqa: F401
    except ImportError:
        unavailable("psycopg / pgvector are not installed (pip install facewise[pgvector])")
    dsn_file = Path(os.environ.get("FACEWISE_PG_DIR", "/tmp/facewise-pg")) / "dsn"
    for dsn in (os.environ.get("FACEWISE_PG_DSN"), dsn_file.read_text().strip() if dsn_file.exists() else None):
        if dsn and _pg_answers(dsn):
            return dsn
    res = subprocess.run(["bash", str(REPO / ".ci" / "start-postgres.sh")], capture_output=True, text=True,
                         timeout=300, env={**os.environ, "VENV": str(Path(sys.executable).parents[1])})
    if res.returncode == 0 and dsn_file.exists() and _pg_answers(dsn_file.read_text().strip()):
        return dsn_file.read_text().strip()
    unavailable(f"no PostgreSQL + pgvector reachable and .ci/start-postgres.sh failed: {res.stderr[-500:]}")
    raise AssertionError  # unreachable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MilvusLiteServer:
    """``milvus-lite server`` on 127.0.0.1:<free port> with a throw-away data folder."""

    def __init__(self, data_dir: Path) -> None:
        exe = shutil.which("milvus-lite", path=str(Path(sys.executable).parent)) or shutil.which("milvus-lite")
        if exe is None:
            unavailable("milvus-lite is not installed (pip install facewise[milvus] milvus-lite)")
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.log = open(data_dir.parent / "milvus-lite.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([str(exe), "server", "--data-dir", str(data_dir), "--host", "127.0.0.1",
                                      "--port", str(self.port), "--max-workers", "4"],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.3)
        self.stop()
        unavailable(f"milvus-lite server did not start: {(data_dir.parent / 'milvus-lite.log').read_text()[-500:]}")

    def stop(self) -> None:
        stop_process(self.proc)
        self.log.close()


def milvus_server_exe() -> str | None:
    """The standalone Milvus of ``pip install milvus`` (a real Milvus with its own etcd), if installed."""
    return shutil.which("milvus-server", path=str(Path(sys.executable).parent)) or shutil.which("milvus-server")


ETCD_PEER_PORT = 2380
_MILVUS_PORTS = ("etcd-port", "root-coord-port", "proxy-internal-port", "query-coord-port", "query-node-port",
                 "index-coord-port", "index-node-port", "data-coord-port", "data-node-port")


class MilvusStandaloneServer:
    """``milvus-server --data DIR --proxy-port P`` with every configurable port free.

    Its embedded etcd keeps the fixed peer port 2380 (not configurable through ``milvus-server``), so one such
    server runs per machine at a time: when 2380 is taken, the tests that need it are skipped (failed under CI).
    This server listens on every interface; its data folder is thrown away with the test session."""

    def __init__(self, base: Path, ready_timeout: float = 180.0) -> None:
        exe = milvus_server_exe()
        if exe is None:
            unavailable("milvus-server is not installed (pip install milvus)")
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", ETCD_PEER_PORT))
            except OSError:
                unavailable(f"port {ETCD_PEER_PORT} (the embedded etcd's fixed peer port) is taken: another Milvus "
                            "standalone server runs on this machine")
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        ports = [a for opt in _MILVUS_PORTS for a in (f"--{opt}", str(free_port()))]
        self.log_path = base / "milvus-server.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([str(exe), "--data", str(base / "data"), "--proxy-port", str(self.port), *ports],
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            if self._answers():
                return
            time.sleep(1)
        self.stop()
        unavailable(f"milvus-server did not start: {self.log_path.read_text(errors='replace')[-500:]}")

    def _answers(self) -> bool:
        try:
            from pymilvus import MilvusClient

            client = MilvusClient(uri=self.uri, timeout=3)
            client.list_collections()
            client.close()
            return True
        except Exception:
            return False

    def stop(self) -> None:
        """Stop the launcher and milvus (its own session, so its group): TERM, up to 30 s, then KILL."""
        group = self.proc.pid
        try:
            os.killpg(group, 15)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # milvus outlives the launcher while it shuts down
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                break
            time.sleep(0.5)
        else:
            try:
                os.killpg(group, 9)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:  # pragma: no cover - killed above
            pass
        self.log.close()
