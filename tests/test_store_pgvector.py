"""PgVectorStore against a real PostgreSQL + pgvector server on 127.0.0.1 (see tests/_servers.py)."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from _servers import postgres_dsn
from facewise.errors import ConflictError, NotFoundError, ProfileMismatchError
from facewise.gallery import NewSample, Store
from facewise.gallery.synthetic import face_like, probes

DIM = 64


@pytest.fixture(scope="module")
def dsn() -> str:
    return postgres_dsn()


@pytest.fixture()
def store(dsn):
    from facewise.gallery.pgvector import PgVectorStore

    s = PgVectorStore(dsn, schema=f"t_{uuid.uuid4().hex[:10]}", index_min_rows=0)
    s.ensure_collection("c", "p", "sig", DIM)
    yield s
    s.drop_schema()
    s.close()


def sample(person: str, vec: np.ndarray, sha: str, idx: int = 0) -> NewSample:
    return NewSample(person=person, image_sha256=sha, embedding=vec, model="m", face_index=idx, source=sha)


def test_protocol_schema_and_migration_table(store, dsn):
    from facewise.gallery.pgvector import SCHEMA_VERSION, PgVectorStore

    assert isinstance(store, Store)
    assert store.schema_version() == SCHEMA_VERSION
    assert store.has_hnsw("c")
    again = PgVectorStore(dsn, schema=store.schema)  # a second client: migrations are not re-applied
    assert again.schema_version() == SCHEMA_VERSION
    assert [c.name for c in again.list_collections()] == ["c"]
    with pytest.raises(ProfileMismatchError):
        again.ensure_collection("c", "p", "other", DIM)
    again.close()


def test_add_search_persons_and_duplicates(store):
    data = face_like(300, DIM, per_identity=5, seed=3)
    ids = store.add_samples("c", [sample(f"id{lab}", v, f"h{i}") for i, (v, lab) in
                                  enumerate(zip(data.vectors, data.labels, strict=True))])
    assert all(isinstance(i, int) for i in ids)
    assert store.add_samples("c", [sample("id0", data.vectors[0], "h0")]) == [None]  # same image: skipped
    assert store.has_image("c", "h5") and store.has_image("c", "h5", 0) and not store.has_image("c", "h5", 1)
    info = store.get_collection("c")
    assert (info.persons, info.samples) == (60, 300)
    q, labels = probes(data, 20, seed=4)
    hits = store.search("c", q, k=3)
    assert [h[0].name for h in hits] == [f"id{lab}" for lab in labels]
    assert all(len({x.person_id for x in h}) == 3 for h in hits)  # distinct persons
    exact = data.vectors @ q[0]
    assert hits[0][0].score == pytest.approx(float(exact.max()), abs=1e-4)
    vecs = store.person_vectors("c", "id7")
    assert vecs.shape == (5, DIM) and np.allclose(vecs, data.vectors[35:40], atol=1e-6)
    t = store.person_template("c", "id7")
    assert float(np.linalg.norm(t)) == pytest.approx(1.0, abs=1e-5)


def test_transaction_rolls_back_a_failed_batch(store):
    rng = np.random.default_rng(1)
    v = rng.standard_normal((2, DIM)).astype(np.float32)
    store.add_samples("c", [sample("a", v[0], "x")])
    with pytest.raises(ProfileMismatchError):
        store.add_samples("c", [sample("b", v[1], "y"), sample("c", np.ones(DIM + 1, np.float32), "z")])
    info = store.get_collection("c")
    assert (info.persons, info.samples) == (1, 1)
    with pytest.raises(NotFoundError):
        store.get_person("c", "b")


def test_rename_move_delete(store):
    data = face_like(20, DIM, per_identity=5, seed=5)
    ids = store.add_samples("c", [sample(f"p{lab}", v, f"s{i}") for i, (v, lab) in
                                  enumerate(zip(data.vectors, data.labels, strict=True))])
    store.add_person("c", "empty")
    with pytest.raises(ConflictError):
        store.add_person("c", "empty")
    with pytest.raises(ConflictError):
        store.rename_person("c", "p0", "p1")
    p = store.rename_person("c", "p0", "alice")
    assert p.name == "alice" and p.n_samples == 5
    moved = store.move_samples("c", [ids[5], ids[6]], "alice")
    assert moved.n_samples == 7
    assert store.search("c", data.vectors[5:6], k=1)[0][0].name == "alice"
    store.delete_sample("c", ids[0])
    assert store.get_person("c", "alice").n_samples == 6
    assert store.delete_person("c", "alice") == 6
    assert store.get_collection("c").samples == 13
    assert all(h[0].name != "alice" for h in store.search("c", data.vectors, k=1))
    rows = list(store.export_rows("c"))
    assert sum(len(r["samples"]) for r in rows) == 13
    store.delete_collection("c")
    assert store.list_collections() == []


def test_halfvec_storage_and_late_index(dsn):
    from facewise.gallery.pgvector import PgVectorStore

    s = PgVectorStore(dsn, schema=f"t_{uuid.uuid4().hex[:10]}", halfvec=True, index_min_rows=100)
    try:
        s.ensure_collection("h", "p", "sig", DIM)
        data = face_like(150, DIM, per_identity=5, seed=6)
        s.add_samples("h", [sample(f"id{lab}", v, f"h{i}") for i, (v, lab) in
                            enumerate(zip(data.vectors[:50], data.labels[:50], strict=True))])
        assert not s.has_hnsw("h")
        s.add_samples("h", [sample(f"id{lab}", v, f"h{i + 50}") for i, (v, lab) in
                            enumerate(zip(data.vectors[50:], data.labels[50:], strict=True))])
        assert s.has_hnsw("h")
        q, labels = probes(data, 10, seed=7)
        assert [h[0].name for h in s.search("h", q, k=1)] == [f"id{lab}" for lab in labels]
    finally:
        s.drop_schema()
        s.close()


def test_cli_commands_take_a_postgresql_url(dsn, knn):
    """The core CLI commands open `--db postgresql://…` as a pgvector gallery (not as a file path)."""
    import json
    import os
    import subprocess
    import sys

    from facewise.gallery.pgvector import PgVectorStore

    schema = f"cli_{uuid.uuid4().hex[:10]}"
    url = dsn + ("&" if "?" in dsn else "?") + f"schema={schema}"

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "facewise.cli", *args, "--db", url], capture_output=True,
                              text=True, timeout=300, env={**os.environ, "COLUMNS": "200"})

    try:
        r = cli("enroll", str(knn / "train" / "obama"), "--name", "obama", "--json")
        assert r.returncode == 0, r.stderr
        r = cli("people", "list", "--json")
        assert r.returncode == 0, r.stderr
        assert [json.loads(line)["name"] for line in r.stdout.splitlines()] == ["obama"]  # JSON Lines
        r = cli("identify", str(knn / "test" / "obama1.jpg"), "--json")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout.splitlines()[0])["person"] == "obama"
        assert not any(p.startswith("postgresql:") for p in os.listdir("."))  # no file named after the URL
    finally:
        s = PgVectorStore(dsn, schema=schema)
        s.drop_schema()
        s.close()
