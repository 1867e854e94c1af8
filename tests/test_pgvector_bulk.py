"""PgVectorStore's bulk path and its one-statement search, against a real PostgreSQL + pgvector (tests/_servers.py).

Speed is measured by ``bench/pg_load.py`` (docs/SCALE.md §2); these tests pin what the fast paths must keep: the
counts, templates, duplicates, search answers equal to an exact search in numpy, and one round trip per search
(counted in libpq's own protocol trace of the store's connection).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest

from _servers import postgres_dsn
from facewise.errors import ValidationError
from facewise.gallery import NewSample
from facewise.gallery.base import first_k_persons, template_of
from facewise.gallery.synthetic import face_like, probes

DIM = 64


@pytest.fixture(scope="module")
def dsn() -> str:
    return postgres_dsn()


def open_store(dsn: str, **kw):
    from facewise.gallery.pgvector import PgVectorStore

    s = PgVectorStore(dsn, schema=f"t_{uuid.uuid4().hex[:10]}", **kw)
    s.ensure_collection("c", "p", "sig", DIM)
    return s


def sample(person: str, vec: np.ndarray, sha: str, quality: float = 1.0) -> NewSample:
    return NewSample(person=person, image_sha256=sha, embedding=vec, model="m", source=sha, quality=quality)


def test_bulk_load_counts_templates_duplicates_and_search(dsn):
    """5,000 faces in one call into a collection whose HNSW index exists from the start (index_min_rows=0): the
    index is dropped for the load and built again in the same transaction."""
    store = open_store(dsn, index_min_rows=0)
    try:
        data = face_like(5000, DIM, per_identity=5, seed=21)
        batch = [sample(f"id{lab}", v, f"h{i}") for i, (v, lab) in enumerate(zip(data.vectors, data.labels,
                                                                                     strict=True))]
        assert store.has_hnsw("c")
        before = index_oid(store)
        ids = store.add_samples("c", batch)
        assert all(isinstance(i, int) for i in ids) and len(set(ids)) == 5000
        info = store.get_collection("c")
        assert (info.persons, info.samples) == (1000, 5000) and store.has_hnsw("c")
        assert index_oid(store) != before  # dropped for the load and built again (a new index)
        for lab in (0, 417, 999):
            mine = data.vectors[data.labels == lab]
            want = mine.sum(0) / np.linalg.norm(mine.sum(0))
            assert np.allclose(store.person_template("c", f"id{lab}"), want, atol=1e-5)
            assert np.allclose(store.person_vectors("c", f"id{lab}"), mine, atol=1e-6)
        assert store.sample_vectors("c", [ids[7]]).tobytes() == data.vectors[7:8].tobytes()  # float32, bit-exact
        assert store.add_samples("c", batch[:2000]) == [None] * 2000  # the same faces again: skipped
        assert counts(store) == (1000, 5000)
        q, labels = probes(data, 50, seed=22)
        assert [h[0].name for h in store.search("c", q, k=1)] == [f"id{lab}" for lab in labels]

        # existing persons get more faces (weighted by quality): their templates are recomputed from the database
        rng = np.random.default_rng(23)
        extra = data.vectors[:3] + 0.1 * rng.standard_normal((3, DIM)).astype(np.float32)
        got = store.add_samples("c", [sample(f"id{data.labels[i]}", extra[i], f"x{i}", quality=0.5) for i in range(3)]
                                + [sample("newcomer", extra[0], "x0")])  # the same face twice in one batch: once
        assert [g is None for g in got] == [False, False, False, True]
        lab = data.labels[0]
        mine = np.concatenate([data.vectors[data.labels == lab], extra[[i for i in range(3) if data.labels[i] == lab]]])
        weights = [1.0] * int((data.labels == lab).sum()) + [0.5] * (len(mine) - int((data.labels == lab).sum()))
        assert np.allclose(store.person_template("c", f"id{lab}"), template_of(mine, weights), atol=1e-5)
        assert counts(store) == (1001, 5003)  # (the newcomer is created; its face was a duplicate)
    finally:
        store.drop_schema()
        store.close()


def index_oid(store) -> int:
    """The HNSW index of collection "c" as PostgreSQL knows it (a rebuilt index gets a new oid)."""
    with store._tx() as cur:
        cid = store._collection_row(cur, "c")[0]
        return int(cur.execute("SELECT %s::regclass::oid", (f"{store.schema}.emb_{int(cid)}_hnsw",)).fetchone()[0])


def test_the_index_is_built_once_the_collection_reaches_its_size(dsn):
    """index_min_rows 1,000, batches of 400: no index after 400 and 800 rows (the handle's row estimate stays
    under the size, so the table is not counted), one after 1,200."""
    store = open_store(dsn, index_min_rows=1000)
    try:
        data = face_like(1200, DIM, per_identity=4, seed=41)
        rows = [sample(f"id{lab}", v, f"h{i}") for i, (v, lab) in enumerate(zip(data.vectors, data.labels,
                                                                                   strict=True))]
        for start in (0, 400):
            store.add_samples("c", rows[start : start + 400])
            assert not store.has_hnsw("c")
        store.add_samples("c", rows[800:])
        assert store.has_hnsw("c") and counts(store) == (300, 1200)
        q, labels = probes(data, 20, seed=42)
        assert [h[0].name for h in store.search("c", q, k=1)] == [f"id{lab}" for lab in labels]
    finally:
        store.drop_schema()
        store.close()


def counts(store) -> tuple[int, int]:
    info = store.get_collection("c")
    return info.persons, info.samples


def test_exact_search_matches_numpy(dsn):
    """No index: the store's answer is the exact one (same persons, same sample, scores to 1e-6), for k=1 and for a
    k whose first window of nearest samples is too short (persons with many faces: the window widens)."""
    store = open_store(dsn, index_min_rows=1 << 40)
    try:
        data = face_like(1200, DIM, per_identity=40, seed=31)  # 40 faces a person: k=5 needs a wider window
        ids = np.array(store.add_samples("c", [sample(f"id{lab}", v, f"h{i}") for i, (v, lab) in
                                               enumerate(zip(data.vectors, data.labels, strict=True))]))
        assert not store.has_hnsw("c")
        q, _ = probes(data, 12, seed=32)
        for k in (1, 5):
            got = store.search("c", q, k=k)
            for row, vec in zip(got, q, strict=True):
                scores = data.vectors @ vec
                order = np.argsort(-scores.astype(np.float64), kind="stable")
                want = first_k_persons(((ids[j], data.labels[j], float(scores[j])) for j in order), k)
                assert [(h.name, h.sample_id) for h in row] == [(f"id{p}", s) for p, _, s in want]
                assert np.allclose([h.score for h in row], [s for _, s, _ in want], atol=1e-6)
    finally:
        store.drop_schema()
        store.close()


def round_trips(trace: Path) -> list[str]:
    """The messages that end a request in libpq's trace (frontend ``Sync`` or simple ``Query``)."""
    out = []
    for line in trace.read_text(errors="replace").splitlines():
        parts = line.split("\t")
        if "F" in parts[:2]:
            msg = parts[parts.index("F") + 2] if len(parts) > parts.index("F") + 2 else ""
            if msg.split(" ")[0] in ("Sync", "Query"):
                out.append(line)
    return out


@pytest.mark.parametrize("index_min_rows", [0, 1 << 40], ids=["hnsw", "exact"])
def test_a_search_is_one_round_trip(dsn, tmp_path, index_min_rows):
    store = open_store(dsn, index_min_rows=index_min_rows)
    try:
        data = face_like(300, DIM, per_identity=5, seed=41)
        store.add_samples("c", [sample(f"id{lab}", v, f"h{i}") for i, (v, lab) in
                                enumerate(zip(data.vectors, data.labels, strict=True))])
        store.update_settings("c", index_ef=64, index_iterative_scan="strict_order")
        q, labels = probes(data, 6, seed=42)
        store.search("c", q[:1], k=1)  # (the collection's row is looked up once, then cached)
        trace = tmp_path / "libpq.trace"
        with trace.open("w") as fh:
            store._db.pgconn.trace(fh.fileno())
            hits = store.search("c", q, k=3)
            store._db.pgconn.untrace()
        assert [h[0].name for h in hits] == [f"id{lab}" for lab in labels]
        assert len(round_trips(trace)) == 1, trace.read_text()[:2000]
        # the HNSW settings were the statement's own: the connection's stay as they were
        assert store._db.execute("SHOW hnsw.iterative_scan").fetchone()[0] == "relaxed_order"
        with pytest.raises(ValidationError):
            store.update_settings("c", index_iterative_scan="sometimes")
    finally:
        store.drop_schema()
        store.close()


def test_schema_1_gallery_migrates_to_in_row_vectors(dsn):
    """Migration 2 keeps vectors and templates in the row (not TOASTed) while they fit a page."""
    import psycopg

    from facewise.gallery.pgsql import MIGRATIONS
    from facewise.gallery.pgvector import PgVectorStore

    schema = f"t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(dsn, autocommit=True) as db:  # a gallery as schema version 1 left it
        db.execute(f"CREATE SCHEMA {schema}")
        db.execute(f"CREATE TABLE {schema}.schema_version(version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ "
                   "NOT NULL DEFAULT now())")
        db.execute(MIGRATIONS[1].format(s=schema))
        db.execute(f"INSERT INTO {schema}.schema_version(version) VALUES(1)")
        cid = db.execute(f"INSERT INTO {schema}.collections(name, profile, signature, dim) VALUES('c','p','sig',"
                         f"{DIM}) RETURNING id").fetchone()[0]
        db.execute(f"CREATE TABLE {schema}.emb_{cid}(sample_id BIGINT PRIMARY KEY REFERENCES {schema}.samples(id) "
                   f"ON DELETE CASCADE, person_id BIGINT NOT NULL, embedding vector({DIM}) NOT NULL)")
    store = PgVectorStore(dsn, schema=schema, index_min_rows=1 << 40)
    try:
        assert store.schema_version() == 2
        v = face_like(10, 512, seed=51).vectors  # 2 kB and more: over the TOAST threshold
        store.ensure_collection("wide", "p", "sig", 512)
        store.add_samples("wide", [sample("ada", x, f"h{i}") for i, x in enumerate(v)])
        assert store.search("wide", v[:1], 1)[0][0].name == "ada"
        wide = store._cached("wide").id
        toast = dict(store._db.execute(
            "SELECT c.relname, pg_relation_size(c.reltoastrelid) FROM pg_class c JOIN pg_namespace n ON "
            "n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname IN (%s, %s, 'templates')",
            (schema, f"emb_{cid}", f"emb_{wide}")).fetchall())
        assert toast == {f"emb_{cid}": 0, f"emb_{wide}": 0, "templates": 0}  # nothing moved out of line
        options = dict(store._db.execute(
            "SELECT c.relname, c.reloptions FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname IN (%s, 'templates')", (schema, f"emb_{cid}")).fetchall())
        assert options == {f"emb_{cid}": ["toast_tuple_target=8160"], "templates": ["toast_tuple_target=8160"]}
    finally:
        store.drop_schema()
        store.close()


def test_the_collections_iterative_scan_setting_reaches_the_index_scan(dsn):
    """Persons with 40 faces each: k=5 needs a 4x window. With ``hnsw.iterative_scan`` off (the collection's
    setting, set inside the search statement) the HNSW scan stops at ef_search rows and fewer persons come back;
    with the default (relaxed_order, also the connection's own) the window widens and all five are found."""
    store = open_store(dsn, index_min_rows=0)
    try:
        data = face_like(1200, DIM, per_identity=40, seed=61)
        store.add_samples("c", [sample(f"id{lab}", v, f"h{i}") for i, (v, lab) in
                                enumerate(zip(data.vectors, data.labels, strict=True))])
        assert store.has_hnsw("c")
        store._db.execute("SET enable_seqscan = off")  # (1,200 rows: the planner would rather sort them all)
        q, _ = probes(data, 5, seed=62)
        assert all(len(row) == 5 for row in store.search("c", q, k=5))
        store.update_settings("c", index_ef=56, index_iterative_scan="off")  # ef = the first window, 5*8+16
        assert any(len(row) < 5 for row in store.search("c", q, k=5))
        store.update_settings("c", index_iterative_scan="relaxed_order")
        assert all(len(row) == 5 for row in store.search("c", q, k=5))
        store.update_settings("c", index_ef=None, index_iterative_scan=None)  # None: back to the defaults
        assert not {"index_ef", "index_iterative_scan"} & set(store.get_collection("c").settings)
        for bad in ({"index_ef": "many"}, {"index_ef": 0}, {"index_iterative_scan": "sideways"}):
            with pytest.raises(ValidationError, match="index_"):
                store.update_settings("c", **bad)
    finally:
        store.drop_schema()
        store.close()


def test_two_bulk_loads_of_the_same_faces_in_opposite_orders_do_not_deadlock(dsn):
    """Two clients load the same 1,500 faces of 300 new people into one empty collection at once, one in reverse
    order: rows are inserted in key order (names, then image and face), so neither waits on the other in a
    cycle; both succeed and every face is stored once."""
    import threading

    store = open_store(dsn, index_min_rows=0)
    other = store.__class__(dsn, schema=store.schema)
    try:
        data = face_like(1500, DIM, per_identity=5, seed=31)
        batch = [sample(f"id{lab}", v, f"h{i}") for i, (v, lab) in enumerate(zip(data.vectors, data.labels,
                                                                                     strict=True))]
        results: dict[str, object] = {}

        def load(name: str, s, rows) -> None:
            try:
                results[name] = s.add_samples("c", rows)
            except Exception as exc:  # what the test reports
                results[name] = exc

        for _ in range(3):  # a deadlock is a matter of timing: three rounds, each on an emptied collection
            go = [threading.Thread(target=load, args=("a", store, batch)),
                  threading.Thread(target=load, args=("b", other, batch[::-1]))]
            for t in go:
                t.start()
            for t in go:
                t.join(120)
            errors = {k: v for k, v in results.items() if isinstance(v, Exception)}
            assert not errors, errors
            stored = [i for r in results.values() for i in r if i is not None]  # type: ignore[union-attr]
            assert len(stored) == len(set(stored)) == 1500
            assert counts(store) == (300, 1500)
            for lab in (0, 299):
                mine = data.vectors[data.labels == lab]
                assert np.allclose(store.person_template("c", f"id{lab}"), template_of(mine, [1.0] * len(mine)),
                                   atol=1e-5)
            store.delete_collection("c")
            store.ensure_collection("c", "p", "sig", DIM)
    finally:
        other.close()
        store.drop_schema()
        store.close()
