"""A real local Ray cluster for tests and benchmarks: ``ray start --block`` nodes of 1 CPU on 127.0.0.1.

Each node runs in its own session, so stopping it (SIGTERM, then SIGKILL, to that process group) stops its
raylet and workers and nothing else: never ``ray stop``, which would stop every Ray on the machine.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RayNode:
    """A head (``address=None``) or a node joining ``address``; one CPU, ports of our choice."""

    def __init__(self, temp: Path, env: dict[str, str], address: str | None = None) -> None:
        ray_exe = Path(sys.executable).with_name("ray")
        wp = random.Random().randrange(10_000, 30_000, 200)  # below the ephemeral ports free_port hands out
        args = [str(ray_exe), "start", "--block", "--num-cpus", "1", "--node-ip-address", "127.0.0.1",
                "--node-manager-port", str(free_port()), "--object-manager-port", str(free_port()),
                "--min-worker-port", str(wp), "--max-worker-port", str(wp + 150),
                "--dashboard-agent-listen-port", str(free_port()), "--dashboard-agent-grpc-port", str(free_port()),
                "--runtime-env-agent-port", str(free_port()), "--metrics-export-port", str(free_port()),
                "--disable-usage-stats"]
        if address is None:
            self.port = free_port()
            args += ["--head", "--port", str(self.port), "--include-dashboard", "false",
                     "--ray-client-server-port", str(free_port()), "--temp-dir", str(temp)]
        else:
            args += ["--address", address]
        self.logfile = temp.parent / f"ray-{'head' if address is None else 'node'}-{os.getpid()}-{wp}.log"
        self.log = open(self.logfile, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True, env=env)

    def stop(self) -> None:
        for sig, wait_s in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(wait_s)
                break
            except subprocess.TimeoutExpired:
                continue
        self.log.close()


_WAIT = """
import sys, time, ray
ray.init(address=sys.argv[1], log_to_driver=False, configure_logging=False)
deadline = time.monotonic() + 120
while ray.cluster_resources().get("CPU", 0) < int(sys.argv[2]) and time.monotonic() < deadline:
    time.sleep(1)
sys.exit(0 if ray.cluster_resources().get("CPU", 0) >= int(sys.argv[2]) else 1)
"""


@contextmanager
def ray_cluster(nodes: int, env: MutableMapping[str, str]) -> Iterator[str]:
    """``nodes`` x 1 CPU with token authentication (this machine's Ray token, or a new one); yields the
    address. ``env`` gets ``RAY_AUTH_MODE`` (and ``RAY_AUTH_TOKEN_PATH``) for the drivers: pass a copy of
    ``os.environ`` for subprocesses, or ``os.environ`` itself before this process imports Ray (Ray reads its
    authentication mode once, when it is imported)."""
    temp = Path(tempfile.mkdtemp(prefix="fwray-", dir="/tmp"))  # short: Ray's socket paths have a length limit
    token = Path(env.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
    if not token.is_file():
        token = temp / "token"
        token.write_text(os.urandom(16).hex())
        env["RAY_AUTH_TOKEN_PATH"] = str(token)
    env["RAY_AUTH_MODE"] = "token"
    head = RayNode(temp / "t", dict(env))
    started = [head]
    try:
        address = f"127.0.0.1:{head.port}"
        deadline = time.monotonic() + 120
        while True:  # the head's GCS port answers once it is up
            try:
                socket.create_connection(("127.0.0.1", head.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or head.proc.poll() is not None:
                    raise RuntimeError(f"the Ray head did not start: {head.logfile.read_text()}") from None
                time.sleep(1)
        for _ in range(nodes - 1):
            started.append(RayNode(temp / "t", dict(env), address))
        subprocess.run([sys.executable, "-c", _WAIT, address, str(nodes)], env=dict(env), check=True, timeout=180,
                       capture_output=True)
        yield address
    finally:
        for n in reversed(started):
            n.stop()
        shutil.rmtree(temp, ignore_errors=True)
