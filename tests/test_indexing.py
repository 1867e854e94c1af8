"""Batch indexing of a photo tree: local processes and a local Ray cluster, resumable and idempotent."""

from __future__ import annotations

import os
import shutil
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
