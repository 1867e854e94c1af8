"""Batch indexing of a photo tree: local processes and a local Ray cluster, resumable and idempotent."""

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
from pathlib import Path

import numpy as np
import pytest

from facewise.batch.indexing import UNCLUSTERED, IndexOptions, index_tree, scan
from facewise.gallery import SQLiteStore


@pytest.fixture(scope="module")
def tree(lfw, models_dir, tmp_path_factory) -> Path:
    """40 LFW photos as <person>/*.jpg (8 people x 4) plus 6 loose photos (unknown faces); symlinks."""
    root = tmp_path_factory.mktemp("photos")
    people = sorted(d for d in (lfw / "images").iterdir() if d.is_dir() and len(list(d.glob("*.jpg"))) >= 5)
    for d in people[:8]:
        (root / d.name).mkdir()
        for f in sorted(d.glob("*.jpg"))[:4]:
            (root / d.name / f.name).symlink_to(f)
    for d in people[8:14]:
        f = sorted(d.glob("*.jpg"))[0]
        (root / f.name).symlink_to(f)
    return root


def test_scan_layouts(tree):
    items = scan(tree)
    assert len(items) == 38 and sum(it.person is None for it in items) == 6
    assert all(it.person is None for it in scan(tree, "photos"))
    assert len(scan(tree, "people")) == 32


def test_local_processes_then_resume(tree, tmp_path):
    store = SQLiteStore(tmp_path / "g.db")
    opts = IndexOptions(profile="fast", workers=2, batch_size=10, chunk=4)
    rep = index_tree(store, tree, opts)
    assert rep.photos == 38 and rep.errors == 0 and rep.processed == 38
    assert store.get_collection("default").persons == 8
    assert rep.faces_added == store.get_collection("default").samples + store.get_collection("unknown").samples
    assert store.get_collection("default").samples == 32 - rep.no_face  # one face (the largest) per photo
    unknown = store.list_persons("unknown")
    assert [p.name for p in unknown] == [UNCLUSTERED] and unknown[0].n_samples >= 6  # every face of loose photos
    # a rerun skips every stored photo by its sha256 before decoding it
    again = index_tree(store, tree, opts)
    assert again.skipped == 38 - rep.no_face and again.faces_added == 0
    store.close()


def test_interrupted_run_resumes(tree, tmp_path):
    store = SQLiteStore(tmp_path / "g.db")
    part = tmp_path / "part"
    shutil.copytree(tree, part, symlinks=True, ignore=lambda d, names: names[2:] if d != str(tree) else [])
    first = index_tree(store, part, IndexOptions(profile="fast", workers=1))
    assert first.processed == first.photos < 38  # as if the first run stopped part-way
    rest = index_tree(store, tree, IndexOptions(profile="fast", workers=1))
    assert rest.skipped == first.processed - first.no_face
    assert rest.processed == 38 - rest.skipped
    assert len({s.image_sha256 for s in store.list_samples("default")}) == 32 - rest.no_face - first.no_face
    store.close()


def test_ray_cluster_matches_local(tree, tmp_path):
    if not os.environ.get("CI"):
        pytest.importorskip("ray", reason="ray is not installed (pip install 'facewise[ray]')")
    local = SQLiteStore(tmp_path / "local.db")
    index_tree(local, tree, IndexOptions(profile="fast", workers=1))
    store = SQLiteStore(tmp_path / "ray.db")
    rep = index_tree(store, tree, IndexOptions(profile="fast", workers=2, ray_address="local", chunk=4))
    assert rep.engine == "ray" and rep.errors == 0 and rep.processed == 38
    for c in ("default", "unknown"):
        a = {(s.image_sha256, s.source) for s in local.list_samples(c)}
        b = {(s.image_sha256, s.source) for s in store.list_samples(c)}
        assert a == b
    p = store.list_persons("default")[0]

    def by_image(st: SQLiteStore) -> dict[str, np.ndarray]:
        # person_vectors and list_samples are both in sample-id order; Ray stores in completion order
        samples = st.list_samples("default", p.name)
        return dict(zip((s.image_sha256 for s in samples), st.person_vectors("default", p.name), strict=True))

    va, vb = by_image(local), by_image(store)
    assert va.keys() == vb.keys()
    assert min(float(va[k] @ vb[k]) for k in va) > 1 - 1e-3
    local.close()
    store.close()


def test_killed_run_keeps_what_it_received(tree, tmp_path):
    """An interrupt part-way (Ctrl-C, an engine error) stores the results already received although the batch
    is not full, so that the next run skips them."""
    store = SQLiteStore(tmp_path / "g.db")

    def stop(done: int, total: int) -> None:
        if done >= 12:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        index_tree(store, tree, IndexOptions(profile="fast", workers=1, chunk=4, batch_size=1_000), progress=stop)
    kept = {s.image_sha256 for c in ("default", "unknown") for s in store.list_samples(c)}
    assert len(kept) >= 10
    rest = index_tree(store, tree, IndexOptions(profile="fast", workers=1, chunk=4))
    assert rest.skipped == len(kept) and rest.processed == 38 - len(kept)
    store.close()


# -- a real two-node Ray cluster ----------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RayNode:
    """``ray start --block`` in its own session (so that stopping it stops its raylet and workers, and no
    other Ray on this machine): a head, or a node joining ``address``; one CPU each, ports of our choice."""

    def __init__(self, temp: Path, address: str | None = None) -> None:
        ray_exe = Path(sys.executable).with_name("ray")
        wp = random.Random().randrange(20_000, 40_000, 200)
        args = [str(ray_exe), "start", "--block", "--num-cpus", "1", "--node-ip-address", "127.0.0.1",
                "--node-manager-port", str(_free_port()), "--object-manager-port", str(_free_port()),
                "--min-worker-port", str(wp), "--max-worker-port", str(wp + 150),
                "--dashboard-agent-listen-port", str(_free_port()), "--dashboard-agent-grpc-port", str(_free_port()),
                "--runtime-env-agent-port", str(_free_port()), "--metrics-export-port", str(_free_port()),
                "--disable-usage-stats"]
        if address is None:
            self.port = _free_port()
            args += ["--head", "--port", str(self.port), "--include-dashboard", "false",
                     "--ray-client-server-port", str(_free_port()), "--temp-dir", str(temp)]
        else:
            args += ["--address", address]
        self.log = open(temp.parent / f"ray-{'head' if address is None else 'node'}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self) -> None:
        for sig, wait_s in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
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


def _wait_for_cpus(address: str, cpus: int, timeout: float = 120) -> None:
    import ray

    deadline = time.monotonic() + timeout
    ray.init(address=address, log_to_driver=False, configure_logging=False)
    try:
        while ray.cluster_resources().get("CPU", 0) < cpus:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the Ray cluster at {address} has {ray.cluster_resources()} after {timeout} s")
            time.sleep(1)
    finally:
        ray.shutdown()


@pytest.fixture()
def two_node_cluster(monkeypatch):
    """2 nodes x 1 CPU on 127.0.0.1 with token authentication (this machine's Ray token, or a new one)."""
    temp = Path(tempfile.mkdtemp(prefix="fwray-", dir="/tmp"))  # short: Ray's socket paths have a length limit
    token = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
    if not token.is_file():
        token = temp / "token"
        token.write_text(os.urandom(16).hex())
        monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(token))
    monkeypatch.setenv("RAY_AUTH_MODE", "token")  # the nodes and this driver
    pytest.importorskip("ray", reason="ray is not installed (pip install 'facewise[ray]')")
    head = RayNode(temp / "t")
    nodes = [head]
    try:
        address = f"127.0.0.1:{head.port}"
        deadline = time.monotonic() + 120
        while True:  # the head's GCS port answers once it is up
            try:
                socket.create_connection(("127.0.0.1", head.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or head.proc.poll() is not None:
                    raise RuntimeError(f"the Ray head did not start: {(temp / 'ray-head.log').read_text()}") from None
                time.sleep(1)
        nodes.append(RayNode(temp / "t", address))
        _wait_for_cpus(address, 2)
        yield address
    finally:
        for n in reversed(nodes):
            n.stop()
        shutil.rmtree(temp, ignore_errors=True)


def test_two_node_ray_cluster_with_more_workers_than_cpus(tree, tmp_path, two_node_cluster):
    """8 workers asked of a cluster of 2 nodes x 1 CPU: the pool is sized to the 2 free CPUs (it used to
    wait forever for actors that could not be placed) and the run stores what local indexing stores."""
    local = SQLiteStore(tmp_path / "local.db")
    index_tree(local, tree, IndexOptions(profile="fast", workers=1))
    store = SQLiteStore(tmp_path / "ray.db")
    rep = index_tree(store, tree, IndexOptions(profile="fast", workers=8, ray_address=two_node_cluster, chunk=4,
                                               actor_timeout=180))
    assert rep.engine == "ray" and rep.workers == 2 and rep.errors == 0 and rep.processed == 38
    for c in ("default", "unknown"):
        assert ({(s.image_sha256, s.source) for s in local.list_samples(c)}
                == {(s.image_sha256, s.source) for s in store.list_samples(c)})
    again = index_tree(store, tree, IndexOptions(profile="fast", ray_address=two_node_cluster, chunk=4))
    assert again.skipped == 38 - rep.no_face and again.faces_added == 0  # workers=0: one per free CPU
    # a driver without the cluster's token is told so (Ray itself raised a bare ConnectionError); a new
    # process, as Ray keeps its authentication mode per process
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    run = subprocess.run([sys.executable, "-m", "facewise.cli", "index", str(tree), "--db", str(tmp_path / "x.db"),
                          "--profile", "fast", "--ray", two_node_cluster], env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 1 and "token" in run.stdout + run.stderr
    assert "Traceback" not in run.stdout + run.stderr
    local.close()
    store.close()


def test_unreachable_ray_cluster_is_a_clear_error(tree, tmp_path):
    pytest.importorskip("ray", reason="ray is not installed (pip install 'facewise[ray]')")
    from facewise.errors import FacewiseError

    store = SQLiteStore(tmp_path / "g.db")
    t = time.monotonic()
    with pytest.raises(FacewiseError, match=r"cannot reach the Ray cluster at 127\.0\.0\.1:"):
        index_tree(store, tree, IndexOptions(profile="fast", ray_address=f"127.0.0.1:{_free_port()}"))
    assert time.monotonic() - t < 30  # not Ray's minutes of retries
    store.close()
