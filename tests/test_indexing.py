"""Batch indexing of a photo tree: local processes and a local Ray cluster, resumable and idempotent."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from _ray_cluster import free_port, ray_cluster
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
def _index_cli(tree: Path, db: Path, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    """``facewise index`` in a new process (Ray keeps its authentication mode per process)."""
    return subprocess.run([sys.executable, "-m", "facewise.cli", "index", str(tree), "--db", str(db), "--profile",
                           "fast", "--json", *extra], env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow  # starts a 2-node cluster (~80 s); test_ray_cluster_matches_local keeps Ray in make test
def test_two_node_ray_cluster_with_more_workers_than_cpus(tree, tmp_path):
    """``facewise index --ray ADDRESS --workers 8`` on a real cluster of 2 nodes x 1 CPU (token authentication):
    the pool is sized to the 2 free CPUs (it used to wait forever for actors that could not be placed) and the
    run stores what local indexing stores; a driver without the cluster's token is told so."""
    pytest.importorskip("ray", reason="ray is not installed (pip install 'facewise[ray]')")
    local = SQLiteStore(tmp_path / "local.db")
    index_tree(local, tree, IndexOptions(profile="fast", workers=1))
    env = dict(os.environ)
    with ray_cluster(2, env) as address:
        run = _index_cli(tree, tmp_path / "ray.db", env, "--ray", address, "--workers", "8")
        assert run.returncode == 0, run.stderr[-3000:]
        rep = json.loads(run.stdout.strip().splitlines()[-1])
        assert rep["engine"] == "ray" and rep["workers"] == 2 and rep["errors"] == 0 and rep["processed"] == 38
        again = _index_cli(tree, tmp_path / "ray.db", env, "--ray", address)  # workers 0: one per free CPU
        assert again.returncode == 0, again.stderr[-3000:]
        rep2 = json.loads(again.stdout.strip().splitlines()[-1])
        assert rep2["skipped"] == 38 - rep["no_face"] and rep2["faces_added"] == 0 and rep2["workers"] == 2
        # Ray itself raised a bare ConnectionError here
        denied = _index_cli(tree, tmp_path / "x.db", {**env, "RAY_AUTH_MODE": "disabled"}, "--ray", address)
        assert denied.returncode == 1 and "token" in denied.stdout + denied.stderr
        assert "Traceback" not in denied.stdout + denied.stderr
    store = SQLiteStore(tmp_path / "ray.db")
    for c in ("default", "unknown"):
        assert ({(s.image_sha256, s.source) for s in local.list_samples(c)}
                == {(s.image_sha256, s.source) for s in store.list_samples(c)})
    local.close()
    store.close()


def test_unreachable_ray_cluster_is_a_clear_error(tree, tmp_path):
    pytest.importorskip("ray", reason="ray is not installed (pip install 'facewise[ray]')")
    from facewise.errors import FacewiseError

    store = SQLiteStore(tmp_path / "g.db")
    t = time.monotonic()
    with pytest.raises(FacewiseError, match=r"cannot reach the Ray cluster at 127\.0\.0\.1:"):
        index_tree(store, tree, IndexOptions(profile="fast", ray_address=f"127.0.0.1:{free_port()}"))
    assert time.monotonic() - t < 30  # not Ray's minutes of retries
    store.close()


def test_ray_workers_that_cannot_load_their_models_are_a_clear_error(tree, tmp_path):
    """Actors that fail to start (here: no model files on their node) end the run with the reason, exit 1."""
    pytest.importorskip("ray", reason="ray is not installed (pip install 'facewise[ray]')")
    empty = tmp_path / "no-models"
    empty.mkdir()
    env = {**os.environ, "FACEWISE_MODEL_PATH": str(empty), "HOME": str(tmp_path)}  # HOME: no cached models
    run = _index_cli(tree, tmp_path / "g.db", env, "--ray", "local", "--workers", "1")
    out = run.stdout + run.stderr
    assert run.returncode != 0 and "no Ray worker is running (the workers failed" in out, out[-3000:]
    assert "Traceback" not in out
