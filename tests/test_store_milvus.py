"""MilvusStore against a real Milvus Lite gRPC server on 127.0.0.1 (started here: tests/_servers.py)."""

from __future__ import annotations

import numpy as np
import pytest

from _servers import MilvusLiteServer, unavailable
from facewise.errors import ConflictError, NotFoundError
from facewise.gallery import NewSample, Store
from facewise.gallery.synthetic import face_like, probes

DIM = 64


@pytest.fixture(scope="module")
def milvus(tmp_path_factory):
    try:
        import pymilvus  # noqa: F401
    except ImportError:
        unavailable("pymilvus is not installed (pip install facewise[milvus])")
    server = MilvusLiteServer(tmp_path_factory.mktemp("milvus") / "data")
    yield server
    server.stop()


@pytest.fixture()
def store(milvus, tmp_path, request):
    from facewise.gallery.milvus import MilvusStore

    s = MilvusStore(milvus.uri, meta=tmp_path / "meta.db", prefix=f"t_{request.node.name[:20].replace('[', '_')}")
    s.ensure_collection("c", "p", "sig", DIM)
    yield s
    for c in s.list_collections():
        s.delete_collection(c.name)
    s.close()


def sample(person: str, vec: np.ndarray, sha: str) -> NewSample:
    return NewSample(person=person, image_sha256=sha, embedding=vec, model="m", source=sha)


def test_add_search_delete_rename_move(store):
    assert isinstance(store, Store)
    data = face_like(200, DIM, per_identity=5, seed=1)
    ids = store.add_samples("c", [sample(f"id{lab}", v, f"h{i}") for i, (v, lab) in
                                  enumerate(zip(data.vectors, data.labels, strict=True))])
    assert all(isinstance(i, int) for i in ids)
    assert store.add_samples("c", [sample("id0", data.vectors[0], "h0")]) == [None]
    assert store.count("c") == 200 and store.get_collection("c").samples == 200
    q, labels = probes(data, 20, seed=2)
    hits = store.search("c", q, k=3)
    assert [h[0].name for h in hits] == [f"id{lab}" for lab in labels]
    assert all(len({x.person_id for x in h}) == 3 for h in hits)
    assert hits[0][0].score == pytest.approx(float((data.vectors @ q[0]).max()), abs=1e-4)
    with pytest.raises(ConflictError):
        store.rename_person("c", "id1", "id2")
    store.rename_person("c", "id1", "bob")  # names live in the side file: search sees it at once
    assert store.search("c", data.vectors[5:6], 1)[0][0].name == "bob"
    store.move_samples("c", [ids[10]], "bob")
    assert store.search("c", data.vectors[10:11], 1)[0][0].name == "bob"
    assert store.get_person("c", "bob").n_samples == 6
    store.delete_sample("c", ids[5])
    assert store.delete_person("c", "bob") == 5
    assert store.count("c") == 194
    assert all(h[0].name != "bob" for h in store.search("c", data.vectors[5:11], 1))
    with pytest.raises(NotFoundError):
        store.get_person("c", "bob")


def test_sync_repairs_milvus_from_the_side_file(store, milvus, tmp_path):
    from facewise.gallery.milvus import MilvusStore

    data = face_like(50, DIM, per_identity=5, seed=3)
    store.add_samples("c", [sample(f"id{lab}", v, f"h{i}") for i, (v, lab) in
                            enumerate(zip(data.vectors, data.labels, strict=True))])
    name = store.milvus_name("c")
    store.client.delete(name, ids=[1, 2, 3])  # as if a crash came between the two writes
    store.client.insert(name, [{"sample_id": 999, "person_id": 1, "embedding": data.vectors[0]}])
    assert store.sync("c") == (3, 1)
    assert store.count("c") == 50
    # a second client on the same side file and Milvus sees the same gallery
    other = MilvusStore(milvus.uri, meta=tmp_path / "meta.db", prefix=store.prefix)
    assert other.search("c", data.vectors[:1], 1)[0][0].name == "id0"
    other.close()


def test_rows_milvus_kept_for_a_deleted_person_name_nobody(store):
    data = face_like(20, DIM, per_identity=5, seed=5)
    store.add_samples("c", [sample(f"id{lab}", v, f"h{i}") for i, (v, lab) in
                            enumerate(zip(data.vectors, data.labels, strict=True))])
    gone = store.get_person("c", "id0")
    store.meta.delete_person("c", gone.id)  # as if the Milvus delete had failed after the side file's commit
    assert store.count("c") == 20
    hits = store.search("c", data.vectors[:1], k=3)[0]
    assert hits and all(h.person_id != gone.id and h.name != "?" for h in hits)
    assert store.sync("c") == (0, 5) and store.count("c") == 15
