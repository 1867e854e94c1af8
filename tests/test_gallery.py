"""The embedded SQLite gallery: transactions, persistence, search, deletes, staleness across processes."""

from __future__ import annotations

import multiprocessing as mp

import numpy as np
import pytest

from facewise.errors import ConflictError, NotFoundError, ProfileMismatchError
from facewise.gallery import NewSample, SQLiteStore

DIM = 16


def unit(rng: np.random.Generator, n: int = 1) -> np.ndarray:
    v = rng.normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def sample(person: str, vec: np.ndarray, sha: str, idx: int = 0) -> NewSample:
    return NewSample(person=person, image_sha256=sha, embedding=vec, model="m", face_index=idx, source=sha)


@pytest.fixture()
def store(tmp_path):
    s = SQLiteStore(tmp_path / "g.db")
    s.ensure_collection("c", "p", "sig", DIM)
    yield s
    s.close()


def test_add_search_and_reopen(tmp_path, store):
    rng = np.random.default_rng(0)
    vecs = unit(rng, 6)
    ids = store.add_samples("c", [sample(f"p{i % 3}", vecs[i], f"h{i}") for i in range(6)])
    assert all(isinstance(i, int) for i in ids)
    hits = store.search("c", vecs[4:5], k=3)[0]
    assert hits[0].name == "p1" and hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert len({h.person_id for h in hits}) == 3  # distinct persons
    store.close()
    again = SQLiteStore(tmp_path / "g.db")
    assert again.get_collection("c").samples == 6
    assert again.search("c", vecs[4:5], k=1)[0][0].name == "p1"
    assert not again.integrity_check()
    again.close()


def test_failed_batch_leaves_gallery_unchanged(store):
    rng = np.random.default_rng(1)
    store.add_samples("c", [sample("a", unit(rng)[0], "x")])
    bad = [sample("b", unit(rng)[0], "y"), sample("c", np.ones(DIM + 1, np.float32), "z")]
    with pytest.raises(ProfileMismatchError, match="17 dimensions"):
        store.add_samples("c", bad)
    info = store.get_collection("c")
    assert (info.persons, info.samples) == (1, 1)
    assert len(store.index("c")) == 1
    with pytest.raises(NotFoundError):
        store.get_person("c", "b")


def test_duplicates_are_skipped(store):
    v = unit(np.random.default_rng(2))[0]
    assert store.add_samples("c", [sample("a", v, "same")])[0] is not None
    assert store.add_samples("c", [sample("a", v, "same")]) == [None]
    assert store.add_samples("c", [sample("b", v, "same", idx=1)])[0] is not None  # other face, same photo
    assert store.has_image("c", "same") and store.has_image("c", "same", 1) and not store.has_image("c", "same", 2)


def test_profile_mismatch_is_refused(store):
    with pytest.raises(ProfileMismatchError, match="profile 'p'"):
        store.ensure_collection("c", "other", "sig2", DIM)


def test_rename_delete_person_and_sample(store):
    rng = np.random.default_rng(3)
    v = unit(rng, 3)
    ids = store.add_samples("c", [sample("a", v[0], "1"), sample("a", v[1], "2"), sample("b", v[2], "3")])
    store.rename_person("c", "a", "alice")
    with pytest.raises(ConflictError):
        store.rename_person("c", "alice", "b")
    assert store.search("c", v[0:1])[0][0].name == "alice"
    store.delete_sample("c", ids[0])
    assert store.get_person("c", "alice").n_samples == 1
    assert store.search("c", v[0:1])[0][0].sample_id != ids[0]
    assert store.delete_person("c", "alice") == 1
    assert [p.name for p in store.list_persons("c")] == ["b"]
    assert store.search("c", v[1:2])[0][0].name == "b"
    with pytest.raises(NotFoundError):
        store.delete_sample("c", ids[1])


def test_template_is_quality_weighted_mean(store):
    v = np.eye(DIM, dtype=np.float32)[:2]
    s1, s2 = sample("a", v[0], "1"), sample("a", v[1], "2")
    s1.quality, s2.quality = 1.0, 0.25
    store.add_samples("c", [s1, s2])
    t = store.person_template("c", "a")
    assert t[0] == pytest.approx(0.97014, abs=1e-4) and t[1] == pytest.approx(0.24254, abs=1e-4)


def _writer(path: str, seed: int) -> None:
    s = SQLiteStore(path)
    v = unit(np.random.default_rng(seed), 5)
    for i in range(5):
        s.add_samples("c", [sample(f"w{seed}", v[i], f"{seed}-{i}")])
    s.close()


def test_other_process_writes_are_seen(tmp_path, store):
    rng = np.random.default_rng(4)
    store.add_samples("c", [sample("mine", unit(rng)[0], "m")])
    assert len(store.index("c")) == 1
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path / "g.db"), seed)) for seed in (10, 11)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert len(store.index("c")) == 11  # the stale matrix was rebuilt from the database
    assert store.get_collection("c").samples == 11


def test_top_k_expands_past_many_samples_of_one_person(store):
    rng = np.random.default_rng(5)
    base = unit(rng)[0]
    near = base + 0.01 * rng.normal(size=(40, DIM)).astype(np.float32)
    near /= np.linalg.norm(near, axis=1, keepdims=True)
    store.add_samples("c", [sample("crowd", near[i], f"n{i}") for i in range(40)]
                      + [sample("other", unit(rng)[0], "o")])
    hits = store.search("c", base[None], k=2)[0]
    assert [h.name for h in hits] == ["crowd", "other"]
