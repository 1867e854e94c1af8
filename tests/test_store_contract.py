"""One contract, every store: the same tests over SQLite, PostgreSQL + pgvector and Milvus (real servers), and
over the toy in-memory store of tests/toy_store.py (one file), opened by URL once its one registry line is added.

PostgreSQL comes from $FACEWISE_PG_DSN or .ci/start-postgres.sh; Milvus Lite is started here (tests/_servers.py),
and the Milvus standalone server too where ``milvus-server`` is installed. A test is skipped for a store only where
that store declares it lacks the capability the test needs.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid

import numpy as np
import pytest

from _servers import MilvusLiteServer, MilvusStandaloneServer, milvus_server_exe, postgres_dsn, unavailable
from facewise.errors import (
    CapabilityError,
    ConflictError,
    InvalidNameError,
    NotFoundError,
    ProfileMismatchError,
    ValidationError,
)
from facewise.gallery import NewSample, SQLiteStore, Store, StoreBase
from facewise.gallery import open as gallery_open
from facewise.gallery.base import CAPABILITIES, template_of
from facewise.gallery.doctor import diagnose
from facewise.gallery.names import MAX_ID
from toy_store import ToyStore

DIM = 16
KINDS = ["sqlite", "pgvector", "milvus-lite", "milvus-standalone", "toy"]
TOY_LINE = "toy_store:ToyStore"  # the toy store's registry line (as in gallery/open.py's STORES)


def unit(rng: np.random.Generator, n: int = 1) -> np.ndarray:
    v = rng.normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def sample(person: str, vec: np.ndarray, sha: str, person_id: int | None = None) -> NewSample:
    return NewSample(person=person, image_sha256=sha, embedding=vec, model="m", source=sha, person_id=person_id)


@pytest.fixture(scope="module")
def milvus_lite(tmp_path_factory):
    try:
        import pymilvus  # noqa: F401
    except ImportError:
        unavailable("pymilvus is not installed (pip install facewise[milvus])")
    server = MilvusLiteServer(tmp_path_factory.mktemp("milvus-lite") / "data")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def milvus_standalone(tmp_path_factory):
    if milvus_server_exe() is None:  # (under CI, where make install brings it, a failure)
        unavailable("milvus-server (the standalone Milvus of `pip install milvus`) is not installed")
    server = MilvusStandaloneServer(tmp_path_factory.mktemp("milvus-standalone"))
    yield server
    server.stop()


@pytest.fixture(params=KINDS)
def kind(request) -> str:
    return request.param


@pytest.fixture()
def toy_registered(monkeypatch) -> None:
    """The toy store's one registry line, for this test only."""
    monkeypatch.setattr(gallery_open, "STORES", list(gallery_open.STORES))
    gallery_open.register(TOY_LINE)


@pytest.fixture()
def store(kind, tmp_path, request):
    """A store of each kind holding an empty collection ``c`` of DIM-d vectors (and nothing else)."""
    tag = f"contract_{uuid.uuid4().hex[:10]}"
    if kind == "sqlite":
        s = SQLiteStore(tmp_path / "g.db", cipher=None)
    elif kind == "toy":
        request.getfixturevalue("toy_registered")
        s = gallery_open.open_store(f"toy://{tag}")
    elif kind == "pgvector":
        from facewise.gallery.pgvector import PgVectorStore

        s = PgVectorStore(postgres_dsn(), schema=f"gallery_{tag}", index_min_rows=0)
    else:
        from facewise.gallery.milvus import MilvusStore

        server = request.getfixturevalue("milvus_lite" if kind == "milvus-lite" else "milvus_standalone")
        s = MilvusStore(server.uri, meta=tmp_path / "meta.db", prefix=f"gallery_{tag}")
    s.ensure_collection("c", "p", "sig", DIM)
    yield s
    if kind == "pgvector":
        s.drop_schema()
    elif kind.startswith("milvus"):
        for c in s.list_collections():
            s.delete_collection(c.name)
    s.close()


def counts(store: Store) -> tuple[int, int]:
    info = store.get_collection("c")
    return info.persons, info.samples


def test_protocol_and_declared_capabilities(store):
    assert isinstance(store, Store) and isinstance(store, StoreBase)
    assert isinstance(store.capabilities, frozenset) and store.capabilities <= set(CAPABILITIES)
    with pytest.raises(ValueError, match="unknown capability"):
        store.require("teleport", "teleport")


# -- identity: ids ------------------------------------------------------------------------------------
def test_person_and_sample_ids_are_never_reused(store):
    rng = np.random.default_rng(1)
    seen: list[int] = []
    for i in range(4):  # deleting the newest person is where max(id)+1 would hand its id out again
        p = store.add_person("c", f"person {i}")
        assert all(p.id > old for old in seen)
        seen.append(p.id)
        store.delete_person("c", p.id)
    (sid,) = store.add_samples("c", [sample("via sample", unit(rng)[0], "h0")])
    assert sid is not None
    pid = store.get_person("c", "via sample").id
    assert all(pid > old for old in seen)
    store.delete_sample("c", sid)
    (sid2,) = store.add_samples("c", [sample("via sample", unit(rng)[0], "h1")])
    assert sid2 is not None and sid2 > sid


BAD_IDS = [True, False, 0, -1, -(2**63), MAX_ID + 1, 2**70, 1.0, np.float64(2), b"1", [1]]


def test_bool_out_of_range_and_non_int_ids_are_refused_alike(store):
    rng = np.random.default_rng(2)
    store.add_samples("c", [sample("ada", unit(rng)[0], "h0")])  # person 1 (or so): True must not name it
    before = counts(store)
    calls = {
        "get_person": lambda bad: store.get_person("c", bad),
        "delete_person": lambda bad: store.delete_person("c", bad),
        "rename_person": lambda bad: store.rename_person("c", bad, "eve"),
        "list_samples": lambda bad: store.list_samples("c", bad),
        "person_vectors": lambda bad: store.person_vectors("c", bad),
        "delete_sample": lambda bad: store.delete_sample("c", bad),
        "sample_vectors": lambda bad: store.sample_vectors("c", [bad]),
        "add_samples by id": lambda bad: store.add_samples("c", [sample("x", unit(rng)[0], "h9", person_id=bad)]),
    }
    for bad in BAD_IDS:
        for what, call in calls.items():
            with pytest.raises(NotFoundError, match="does not exist"):
                call(bad)
                pytest.fail(f"{what}({bad!r}) was accepted")
    assert counts(store) == before
    assert store.get_person("c", "ada").name == "ada"


def test_a_reference_is_an_id_or_a_name_and_digits_mean_an_id(store):
    p = store.add_person("c", "Grace Hopper")
    assert store.get_person("c", p.id).name == "Grace Hopper"
    assert store.get_person("c", str(p.id)).id == p.id
    assert store.get_person("c", "  Grace Hopper ").id == p.id
    with pytest.raises(NotFoundError):
        store.get_person("c", MAX_ID)  # the largest id: valid, absent
    with pytest.raises(NotFoundError):
        store.get_person("c", "nobody")


# -- identity: names ----------------------------------------------------------------------------------
BAD_NAMES = ["", "   ", "a" * 201, "a\x00b", "tab\there", "a\x85b", "bad\ud800", "\u202eevil", "x\u202ay", "a\u2066b",
             "a\u2069", "\u200b\u200b", "\u200d\ufeff\u2060", "\u3164", "unknown", "UNKNOWN", " Unknown ",
             "unk\u200bnown", "12345", "007", "\uff11\uff12", "\u0663\u0664"]


def test_names_are_validated_the_same_way(store):
    rng = np.random.default_rng(3)
    (sid,) = store.add_samples("c", [sample("ada", unit(rng)[0], "h0")])
    before = counts(store)
    for bad in BAD_NAMES:
        with pytest.raises(InvalidNameError):
            store.add_person("c", bad)
        with pytest.raises(InvalidNameError):  # a batch with one bad name stores nothing
            store.add_samples("c", [sample("bob", unit(rng)[0], "h1"), sample(bad, unit(rng)[0], "h2")])
        with pytest.raises(InvalidNameError):
            store.rename_person("c", "ada", bad)
        if "move_samples" in store.capabilities and not (bad.strip().isascii() and bad.strip().isdigit()):
            with pytest.raises(InvalidNameError):  # (an all-digit string is an id there: NotFoundError)
                store.move_samples("c", [sid], bad)
    assert counts(store) == before
    assert [p.name for p in store.list_persons("c")] == ["ada"]


def test_good_names_are_kept(store):
    for good in ["Ada Lovelace", "José Martí", "李小龙", "R2-D2", "O'Brien", "Ünknown Soldier", "unknown-1",
                 "Agent 007"]:
        p = store.add_person("c", f"  {good} ")
        assert p.name == good and store.get_person("c", good).id == p.id


def test_duplicate_names_conflict(store):
    store.add_person("c", "ada")
    store.add_person("c", "bob")
    with pytest.raises(ConflictError):
        store.add_person("c", "ada")
    with pytest.raises(ConflictError):
        store.rename_person("c", "bob", "ada")
    assert sorted(p.name for p in store.list_persons("c")) == ["ada", "bob"]


# -- writes are atomic --------------------------------------------------------------------------------
def test_a_failed_batch_stores_nothing(store):
    rng = np.random.default_rng(4)
    store.add_samples("c", [sample("ada", unit(rng)[0], "h0")])
    before = counts(store)
    bad_vectors = [np.ones(DIM + 1, np.float32), np.full(DIM, np.nan, np.float32), np.full(DIM, np.inf, np.float32)]
    for bad, err in zip(bad_vectors, [ProfileMismatchError, Exception, Exception], strict=True):
        with pytest.raises(err):
            store.add_samples("c", [sample("new", unit(rng)[0], "h1"), sample("ada", bad, "h2")])
        assert counts(store) == before
    with pytest.raises(NotFoundError):  # a person id that does not exist: the new person is not created either
        store.add_samples("c", [sample("new", unit(rng)[0], "h1"), sample("", unit(rng)[0], "h2", person_id=MAX_ID)])
    assert counts(store) == before and [p.name for p in store.list_persons("c")] == ["ada"]
    assert not store.has_image("c", "h1")


# -- faces stored by person id ------------------------------------------------------------------------
def test_samples_by_person_id_go_to_that_person_only_while_it_exists(store):
    rng = np.random.default_rng(5)
    ada = store.add_person("c", "ada")
    ids = store.add_samples("c", [sample("", v, f"h{i}", person_id=ada.id) for i, v in enumerate(unit(rng, 3))])
    assert all(ids) and store.get_person("c", ada.id).n_samples == 3 and counts(store) == (1, 3)
    store.ensure_collection("other", "p", "sig", DIM)
    stranger = store.add_person("other", "zed")
    with pytest.raises(NotFoundError):  # an id of another collection names nobody here
        store.add_samples("c", [sample("", unit(rng)[0], "x", person_id=stranger.id)])
    assert store.delete_person("c", ada.id) == 3
    with pytest.raises(NotFoundError):  # deleted: stays deleted, nothing stored, no new person
        store.add_samples("c", [sample("ada", unit(rng)[0], "h9", person_id=ada.id)])
    assert counts(store) == (0, 0)


def other_handle(store: Store) -> Store:
    """A second, independent connection to the same gallery (as another process would have)."""
    if isinstance(store, SQLiteStore):
        return SQLiteStore(store.path, cipher=None)
    if isinstance(store, ToyStore):
        return gallery_open.open_store(f"toy://{store.name}")
    if type(store).__name__ == "PgVectorStore":
        from facewise.gallery.pgvector import PgVectorStore

        return PgVectorStore(postgres_dsn(), schema=store.schema)  # type: ignore[attr-defined]
    from facewise.gallery.milvus import MilvusStore

    return MilvusStore(store.uri, meta=store.meta.path, prefix=store.prefix)  # type: ignore[attr-defined]


def test_a_concurrent_delete_wins_cleanly(store):
    """One connection keeps storing faces by person id while another deletes the person: every store either
    stores a batch (the delete then removes it) or refuses it with NotFoundError; nothing outlives the delete."""
    rng = np.random.default_rng(10)
    other = other_handle(store)
    try:
        for rnd, delay in enumerate((0.0, 0.01, 0.03, 0.08)):
            pid = store.add_person("c", f"racer {rnd}").id
            outcomes: list[str] = []

            def upload(pid: int = pid, rnd: int = rnd, outcomes: list[str] = outcomes) -> None:
                deadline = time.monotonic() + 60
                b = 0
                while time.monotonic() < deadline:  # until the delete wins
                    b += 1
                    batch = [sample("", v, f"r{rnd}-{b}-{i}", person_id=pid) for i, v in enumerate(unit(rng, 3))]
                    try:
                        store.add_samples("c", batch)
                        outcomes.append("stored")
                    except NotFoundError:
                        outcomes.append("refused")
                        return
                    time.sleep(0.002)  # (lets the other connection take the write lock)

            worker = threading.Thread(target=upload)
            worker.start()
            time.sleep(delay)
            other.delete_person("c", pid)
            worker.join(90)
            assert outcomes[-1:] == ["refused"], outcomes[-3:]  # the delete landed mid-stream and won
            assert counts(store) == (0, 0) and counts(other) == (0, 0)
            with pytest.raises(NotFoundError):
                store.get_person("c", pid)
            if hasattr(store, "count"):  # Milvus: no vector row left behind either
                assert store.count("c") == 0
    finally:
        other.close()


# -- delete cascades ------------------------------------------------------------------------------------
def test_deleting_a_person_removes_samples_template_and_search_hits(store):
    rng = np.random.default_rng(6)
    vecs = unit(rng, 5)
    ids = store.add_samples("c", [sample("ada" if i < 3 else "bob", v, f"h{i}") for i, v in enumerate(vecs)])
    ada = store.get_person("c", "ada")
    assert store.person_template("c", "ada").shape == (DIM,)
    assert store.delete_person("c", "ada") == 3
    assert counts(store) == (1, 2)
    assert {s.id for s in store.list_samples("c")} == set(ids[3:])
    for call in (lambda: store.get_person("c", ada.id), lambda: store.person_template("c", ada.id),
                 lambda: store.person_vectors("c", ada.id), lambda: store.sample_vectors("c", ids[:1]),
                 lambda: store.delete_sample("c", ids[0])):
        with pytest.raises(NotFoundError):
            call()
    hits = store.search("c", vecs[:3], k=2)
    assert all(h.person_id != ada.id and h.name == "bob" for row in hits for h in row)
    assert [d["name"] for d in store.export_rows("c")] == ["bob"]


def test_deleting_a_collection_removes_everything_in_it(store):
    rng = np.random.default_rng(7)
    store.add_samples("c", [sample("ada", v, f"h{i}") for i, v in enumerate(unit(rng, 3))])
    store.delete_collection("c")
    with pytest.raises(NotFoundError):
        store.get_collection("c")
    store.ensure_collection("c", "p", "sig", DIM)
    assert counts(store) == (0, 0) and store.list_samples("c") == [] and store.search("c", unit(rng), 1) == [[]]


# -- capabilities ----------------------------------------------------------------------------------------
CALLS = {
    "encryption": lambda s: s.seal_blob(b"x", b"aad"),
    "integrity_check": lambda s: s.integrity_check(),
    "sync": lambda s: s.sync("c"),
    "move_samples": lambda s: s.move_samples("c", [], "ada"),
}


@pytest.mark.parametrize("capability", sorted(CALLS))
def test_a_missing_capability_is_a_named_error(store, capability):
    if capability in store.capabilities:
        CALLS[capability](store)  # declared: it works
        return
    with pytest.raises(CapabilityError) as err:
        CALLS[capability](store)
    assert err.value.code == "capability_missing" and err.value.capability == capability
    assert type(store).__name__ in str(err.value) and repr(capability) in str(err.value)


def test_moving_samples(store):
    if "move_samples" not in store.capabilities:
        pytest.skip(f"{type(store).__name__} declares no move_samples")
    rng = np.random.default_rng(8)
    vecs = unit(rng, 3)
    ids = store.add_samples("c", [sample("ada", v, f"h{i}") for i, v in enumerate(vecs)])
    p = store.move_samples("c", [i for i in ids[:2] if i is not None], "  Bob ")
    assert p.name == "Bob" and p.n_samples == 2 and store.get_person("c", "ada").n_samples == 1
    assert store.search("c", vecs[:1], 1)[0][0].name == "Bob"
    with pytest.raises(NotFoundError):
        store.move_samples("c", [ids[2]], MAX_ID)  # an id that names nobody is not created
    assert counts(store) == (2, 3)


# -- SQLite: galleries of schema 1 (ids could be reused) are migrated, keeping their data ------------
def test_sqlite_schema_1_gallery_is_migrated_with_its_data(tmp_path):
    from facewise.gallery.sqlite import SCHEMA, SCHEMA_VERSION

    path = tmp_path / "old.db"
    rng = np.random.default_rng(9)
    vecs = unit(rng, 4)
    db = sqlite3.connect(path)
    db.executescript(SCHEMA.replace(" AUTOINCREMENT", ""))
    db.executescript("INSERT INTO meta VALUES('schema_version', '1'); INSERT INTO meta VALUES('generation', '7');"
                     "INSERT INTO collections VALUES(1, 'c', 'p', 'sig', 16, '{}', '2024-01-01');"
                     "INSERT INTO persons VALUES(1, 1, 'ada', '{}', '2024-01-01');"
                     "INSERT INTO persons VALUES(5, 1, 'bob', '{\"k\": 1}', '2024-01-01');"
                     "INSERT INTO persons VALUES(3, 1, 'unknown', '{}', '2024-01-01');"  # names refused today
                     "INSERT INTO persons VALUES(4, 1, '42', '{}', '2024-01-01');")
    for i, v in enumerate(vecs):
        db.execute("INSERT INTO samples(id, person_id, collection_id, image_sha256, model, embedding, created_at) "
                   "VALUES(?,?,1,?,'m',?,'2024-01-01')", (10 + i, 1 if i < 2 else 5, f"h{i}", v.tobytes()))
    db.executescript("CREATE TABLE side(sample_id INTEGER); INSERT INTO side VALUES (10), (11), (12), (13);"
                     "CREATE TRIGGER side_erase AFTER DELETE ON samples BEGIN "  # as the service's erasure triggers
                     "DELETE FROM side WHERE sample_id = OLD.id; END;")
    for pid, rows in ((1, vecs[:2]), (5, vecs[2:])):
        db.execute("INSERT INTO templates VALUES(?, ?, 2, '2024-01-01')", (pid, template_of(rows, [1, 1]).tobytes()))
    db.commit()
    db.close()
    with SQLiteStore(path, cipher=None) as store:
        assert store._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "2"
        assert SCHEMA_VERSION == 2
        assert [(p.id, p.name, p.n_samples, p.metadata) for p in store.list_persons("c")] == \
            [(4, "42", 0, {}), (1, "ada", 2, {}), (5, "bob", 2, {"k": 1}), (3, "unknown", 0, {})]
        assert np.allclose(store.sample_vectors("c", [10, 11, 12, 13]), vecs)
        assert np.allclose(store.person_template("c", "bob"), template_of(vecs[2:], [1, 1]))
        assert store.search("c", vecs[3:4], 1)[0][0].name == "bob"
        assert store.integrity_check() == []
        assert [r[0] for r in store._db.execute("SELECT sample_id FROM side ORDER BY 1")] == [10, 11, 12, 13]
        assert diagnose(store) == [
            "collection 'c': person 3: person name 'unknown': 'unknown' is reserved (the answer when nobody matches); "
            "rename it: facewise people rename 3 NEW_NAME",
            "collection 'c': person 4: person name '42': a name made only of digits would read as a person id; "
            "rename it: facewise people rename 4 NEW_NAME"]
        assert store.get_person("c", "42").id == 4  # no id 42: the legacy name is still found
        assert store.get_person("c", "4").name == "42"  # (and its id finds it too)
        store.rename_person("c", 3, "Unknown Soldier")  # reachable by id; renamed, the gallery is healthy
        store.rename_person("c", 4, "Forty-Two")
        assert diagnose(store) == []
        store.delete_person("c", 5)  # the newest: schema 1 would hand out 5 again
        assert store.add_person("c", "eve").id == 6
        assert [r[0] for r in store._db.execute("SELECT sample_id FROM side ORDER BY 1")] == [10, 11]  # 12, 13: bob's
        store.delete_sample("c", 11)
        assert [r[0] for r in store._db.execute("SELECT sample_id FROM side")] == [10]  # the trigger survived
        (sid,) = store.add_samples("c", [sample("ada", vecs[1], "again")])
        assert sid == 14
    with SQLiteStore(path, cipher=None) as again:  # opened twice: migrated once
        assert [p.name for p in again.list_persons("c")] == ["Forty-Two", "Unknown Soldier", "ada", "eve"]


# -- a new store: one file and one registry line; addresses decided in one place ----------------------------
def test_a_new_store_is_one_file_and_one_registry_line(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(gallery_open, "STORES", list(gallery_open.STORES))
    with pytest.raises(ValidationError, match=r"no gallery store opens toy:// addresses") as err:
        gallery_open.open_store("toy://before")  # no line yet: refused, never a SQLite file of that name
    assert err.value.what == "db" and "postgresql://" in (err.value.valid or "")
    assert list(tmp_path.iterdir()) == []
    gallery_open.register(TOY_LINE)  # the one line
    assert gallery_open.store_classes()["toy"] is ToyStore
    assert gallery_open.store_class("TOY://x") is ToyStore  # (schemes are case-insensitive)
    with gallery_open.open_store("toy://one-line") as store:
        assert type(store) is ToyStore and isinstance(store, Store)
        store.ensure_collection("c", "p", "sig", DIM)
        store.add_samples("c", [sample("ada", np.eye(DIM, dtype=np.float32)[0], "h0")])
    with gallery_open.open_store("toy://one-line") as again:  # another handle on the same gallery
        assert again.search("c", np.eye(DIM, dtype=np.float32)[:1], 1)[0][0].name == "ada"


def test_a_store_must_implement_every_hook_and_what_it_declares(monkeypatch):
    import toy_store

    class Partial(StoreBase):  # forgot every storage hook
        schemes = ("partial",)

    with pytest.raises(TypeError, match="abstract"):
        Partial()  # type: ignore[abstract]
    with pytest.raises(TypeError, match="declares 'sync' but does not implement sync"):
        type("Syncless", (ToyStore,), {"capabilities": frozenset({"move_samples", "sync"})})
    with pytest.raises(TypeError, match="unknown capability 'teleport'"):
        type("Teleporting", (ToyStore,), {"capabilities": frozenset({"teleport"})})
    monkeypatch.setattr(toy_store, "ToyTwin", type("ToyTwin", (ToyStore,), {}), raising=False)
    monkeypatch.setattr(gallery_open, "STORES", [*gallery_open.STORES, TOY_LINE, "toy_store:ToyTwin"])
    with pytest.raises(TypeError, match="'toy' is declared by both ToyStore and ToyTwin"):
        gallery_open.store_classes()


def test_every_shipped_store_declares_its_schemes_and_one_function_decides_what_is_an_address():
    from facewise.gallery.milvus import MilvusStore
    from facewise.gallery.pgvector import PgVectorStore

    table = gallery_open.store_classes()
    assert table == {"postgresql": PgVectorStore, "postgres": PgVectorStore, "milvus": MilvusStore,
                     "milvus+http": MilvusStore, "milvus+https": MilvusStore}
    assert all(issubclass(c, StoreBase) for c in (SQLiteStore, *table.values()))
    for address in ("postgresql://u@h/db?schema=x", "postgres://h/db", "milvus://h:19530?meta=m.db",
                    "milvus+https://h", "Milvus://h", "toy://x"):
        assert gallery_open.is_server_address(address), address
    for path in ("gallery.db", ":memory:", "", "/abs/dir/g.db", "dir/with://inside.db", "C:\\g.db"):
        assert not gallery_open.is_server_address(path), path
        assert gallery_open.store_class(path) is SQLiteStore
    from pathlib import Path

    assert not gallery_open.is_server_address(Path("postgresql://h/db"))  # a path object is a path
    assert not gallery_open.is_server_address(None)
