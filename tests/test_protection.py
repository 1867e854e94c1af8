"""Protection of templates: encryption at rest and key rotation, no original photos kept, erasure that
removes the bytes from the file and its write-ahead log, and retention of unknown-face records."""

from __future__ import annotations

import base64
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from facewise.gallery import SQLiteStore
from facewise.gallery.crypto import (
    BlobCipher,
    DecryptionError,
    EncryptionKeyError,
    cipher_from_env,
    gallery_marker,
    generate_key_file,
    read_key_file,
    rotate_gallery,
)
from facewise.gallery.doctor import diagnose
from facewise.gallery.maintenance import apply_retention, set_retention
from reliability_helpers import new_sample, raw_bytes, run_cli, text, unit

pytest.importorskip("cryptography", reason="encryption at rest needs the 'crypto' extra")

DIM = 128


def _cipher(seed: int) -> BlobCipher:
    return BlobCipher(np.random.default_rng(seed).bytes(32))


def _fill(store: SQLiteStore, n: int = 12, seed: int = 0, collection: str = "c") -> np.ndarray:
    store.ensure_collection(collection, "p", "sig", DIM)
    vecs = unit(np.random.default_rng(seed), n, DIM)
    store.add_samples(collection, [new_sample(f"person{i % 3}", vecs[i], f"img{seed}-{i}") for i in range(n)])
    return vecs


def _leaks(data: bytes, vecs: np.ndarray | list[np.ndarray]) -> int:
    """How many of the vectors appear in ``data`` (any 32-byte piece of one counts)."""
    return sum(any(v.tobytes()[i:i + 32] in data for i in range(0, v.nbytes, 128)) for v in vecs)


# -- encryption at rest --------------------------------------------------------------------------------------------
def test_vectors_and_templates_are_encrypted_at_rest(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    key = _cipher(1)
    with SQLiteStore(db, cipher=key) as store:
        vecs = _fill(store)
        templates = [store.person_template("c", f"person{i}") for i in range(3)]
        assert store.search("c", vecs[4:5])[0][0].name == "person1"  # the matrix in memory is plaintext
        assert _leaks(raw_bytes(db), list(vecs) + templates) == 0
        assert diagnose(store) == []
    with SQLiteStore(db, cipher=key) as store:
        assert np.allclose(store.person_vectors("c", "person0"), vecs[0::3])
    with SQLiteStore(db, cipher=None) as store:  # no key: metadata readable, vectors refused clearly
        assert [p.name for p in store.list_persons("c")] == ["person0", "person1", "person2"]
        with pytest.raises(EncryptionKeyError, match="FACEWISE_KEY"):
            store.search("c", vecs[:1])
        with pytest.raises(EncryptionKeyError, match="FACEWISE_KEY"):
            store.add_samples("c", [new_sample("x", vecs[0], "new")])
    with pytest.raises(EncryptionKeyError, match="encrypted with key"):
        SQLiteStore(db, cipher=_cipher(2))


def test_key_comes_from_env_or_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = np.random.default_rng(5).bytes(32)
    monkeypatch.setenv("FACEWISE_KEY", base64.b64encode(raw).decode())
    assert cipher_from_env().key_id == BlobCipher(raw).key_id
    with SQLiteStore(tmp_path / "env.db") as store:  # the default store picks the key up
        _fill(store)
        assert gallery_marker(store._db) == BlobCipher(raw).marker
    monkeypatch.setenv("FACEWISE_KEY", "too-short")
    with pytest.raises(EncryptionKeyError, match="FACEWISE_KEY"):
        cipher_from_env()
    monkeypatch.delenv("FACEWISE_KEY")
    key_file = tmp_path / "k"
    kid = generate_key_file(key_file)
    assert key_file.stat().st_mode & 0o777 == 0o600
    with pytest.raises(Exception, match="never overwritten"):
        generate_key_file(key_file)
    monkeypatch.setenv("FACEWISE_KEY_FILE", str(key_file))
    assert cipher_from_env().key_id == kid
    monkeypatch.setenv("FACEWISE_KEY", base64.b64encode(raw).decode())
    with pytest.raises(EncryptionKeyError, match="not both"):
        cipher_from_env()


def test_samples_can_move_between_people_in_an_encrypted_gallery(tmp_path: Path) -> None:
    """Clustering and merges re-assign samples: the ciphertext is bound to the sample, not to its person."""
    with SQLiteStore(tmp_path / "g.db", cipher=_cipher(1)) as store:
        vecs = _fill(store, n=6)
        store.move_samples("c", [1, 4], "merged")
        assert np.allclose(store.person_vectors("c", "merged"), vecs[[0, 3]])
        assert diagnose(store) == []


def test_a_key_is_refused_on_a_plaintext_gallery_until_it_is_encrypted(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    with SQLiteStore(db, cipher=None) as store:
        _fill(store)
    with pytest.raises(EncryptionKeyError, match="encrypt rotate"):
        SQLiteStore(db, cipher=_cipher(1))


def test_moved_or_tampered_ciphertext_does_not_open(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    key = _cipher(1)
    with SQLiteStore(db, cipher=key) as store:
        _fill(store)
    conn = sqlite3.connect(db)
    (_,), (b,) = conn.execute("SELECT embedding FROM samples WHERE id IN (1, 2) ORDER BY id").fetchall()
    conn.execute("UPDATE samples SET embedding=? WHERE id=1", (b,))  # person1's vector moved onto person0's row
    conn.commit()
    conn.close()
    with SQLiteStore(db, cipher=key) as store:
        with pytest.raises(DecryptionError, match="moved"):
            store.sample_vectors("c", [1])
        problems = diagnose(store)
        assert any("sample 1" in p for p in problems) and any("search matrix" in p for p in problems), problems


def test_rotation_re_encrypts_everything_and_leaves_no_old_bytes(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    with SQLiteStore(db, cipher=None) as store:
        vecs = _fill(store, n=30)
    k1, k2 = tmp_path / "k1", tmp_path / "k2"
    generate_key_file(k1)
    generate_key_file(k2)
    r = run_cli("encrypt", "rotate", "--db", str(db), "--new-key-file", str(k1), "--json")
    assert r.returncode == 0, text(r.stderr)
    assert json.loads(r.stdout)["samples"] == 30 and json.loads(r.stdout)["from"] == "plaintext"
    assert _leaks(raw_bytes(db), vecs) == 0  # plaintext gone from free pages and the WAL too
    c1, c2 = BlobCipher(read_key_file(k1)), BlobCipher(read_key_file(k2))
    conn = sqlite3.connect(db)
    old_blobs = [bytes(r[0]) for r in conn.execute("SELECT embedding FROM samples")]
    conn.close()
    r = run_cli("encrypt", "status", "--db", str(db), "--json", env={"FACEWISE_KEY_FILE": str(k1)})
    assert json.loads(r.stdout)["key_matches"] is True, text(r.stderr)
    report = rotate_gallery(db, c1, c2)
    assert (report.samples, report.templates) == (30, 3)
    data = raw_bytes(db)
    assert not any(b[24:56] in data for b in old_blobs)  # no ciphertext under the old key remains either
    with SQLiteStore(db, cipher=c2) as store:
        assert diagnose(store) == []
        assert np.allclose(store.sample_vectors("c", list(range(1, 31))), vecs)
    rotate_gallery(db, c2, None)  # back to plaintext
    with SQLiteStore(db, cipher=None) as store:
        assert diagnose(store) == [] and np.allclose(store.sample_vectors("c", [1, 2]), vecs[:2])


def test_service_thumbnails_are_sealed_with_the_gallery_key(tmp_path: Path, knn: Path) -> None:
    """A face crop is as personal as its vector: sealed when the gallery is encrypted, sealed by rotation when
    it was stored before encryption, and served back as the same JPEG either way."""
    pytest.importorskip("facewise.service.engine", reason="facewise.service is not part of this build")
    from facewise.service.engine import Thumbnails

    jpeg = (knn / "train" / "biden" / "biden.jpg").read_bytes()[:4000]
    db = tmp_path / "g.db"
    with SQLiteStore(db, cipher=None) as store:
        _fill(store, n=3)
        thumbs = Thumbnails(str(db), store)
        thumbs.put("c", 1, "img0-0", jpeg)  # before encryption: plaintext
        thumbs.close()
    assert jpeg[100:400] in raw_bytes(db)
    c1 = _cipher(5)
    report = rotate_gallery(db, None, c1)
    assert report.thumbnails == 1
    assert jpeg[100:400] not in raw_bytes(db) and b"\xff\xd8\xff" not in raw_bytes(db)
    with SQLiteStore(db, cipher=c1) as store:
        thumbs = Thumbnails(str(db), store)
        assert thumbs.get(1, "img0-0") == jpeg
        thumbs.put("c", 2, "img0-1", jpeg[::-1])  # a new one, sealed as it is written
        assert thumbs.get(2, "img0-1") == jpeg[::-1]
        assert thumbs.get(2, "img0-0") is None  # keyed by (id, sha256) too
        thumbs.close()
        legacy = Thumbnails(str(db))  # a writer that does not know the key leaves a plaintext crop: doctor says so
        legacy.put("c", 3, "img0-2", jpeg)
        legacy.close()
        assert any("1 service thumbnail(s) are plaintext" in p for p in diagnose(store))
    assert rotate_gallery(db, c1, c1).thumbnails == 3  # re-sealing under the same key seals it
    with SQLiteStore(db, cipher=c1) as store:
        assert diagnose(store) == [] and Thumbnails(str(db), store).get(3, "img0-2") == jpeg
    assert jpeg[::-1][100:400] not in raw_bytes(db)
    conn = sqlite3.connect(db)  # a sealed crop moved to another row does not open
    conn.execute("UPDATE service_thumbnails SET jpeg=(SELECT jpeg FROM service_thumbnails WHERE sample_id=1) "
                 "WHERE sample_id=2")
    conn.commit()
    conn.close()
    with SQLiteStore(db, cipher=c1) as store, pytest.raises(DecryptionError):
        Thumbnails(str(db), store).get(2, "img0-1")
    with pytest.raises(DecryptionError):  # rotation refuses a tampered crop, and changes nothing
        rotate_gallery(db, c1, None)
    conn = sqlite3.connect(db)
    conn.execute("DELETE FROM service_thumbnails WHERE sample_id=2")
    conn.commit()
    conn.close()
    rotate_gallery(db, c1, None)  # back to plaintext: the crops too
    with SQLiteStore(db, cipher=None) as store:
        assert Thumbnails(str(db), store).get(1, "img0-0") == jpeg


def test_a_failed_rotation_changes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    c1, c2 = _cipher(1), _cipher(2)
    with SQLiteStore(db, cipher=c1) as store:
        _fill(store, n=20)
    conn = sqlite3.connect(db)
    blob = bytearray(conn.execute("SELECT embedding FROM samples WHERE id=15").fetchone()[0])
    blob[-1] ^= 1  # one flipped bit in the last row's tag: rotation fails after re-sealing 14 rows
    conn.execute("UPDATE samples SET embedding=? WHERE id=15", (bytes(blob),))
    conn.commit()
    before = conn.execute("SELECT id, embedding FROM samples ORDER BY id").fetchall()
    conn.close()
    with pytest.raises(DecryptionError):
        rotate_gallery(db, c1, c2)
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT id, embedding FROM samples ORDER BY id").fetchall() == before
    assert gallery_marker(conn) == c1.marker
    conn.close()


# -- no photos kept; erasure ----------------------------------------------------------------------------------------
def test_enrolment_keeps_no_photo_bytes(tmp_path: Path, lfw: Path) -> None:
    from facewise import FaceWise

    photo = sorted((lfw / "images").iterdir())[0]
    jpeg = sorted(photo.glob("*.jpg"))[0].read_bytes()
    db = tmp_path / "g.db"
    with FaceWise(db=db, profile="default") as fw:
        assert fw.enroll("someone", [jpeg])[0].status == "added"
    data = raw_bytes(db)
    windows = [jpeg[i:i + 48] for i in range(200, len(jpeg) - 48, max(1, len(jpeg) // 20))]
    assert not any(w in data for w in windows)
    assert b"\xff\xd8\xff" not in data  # no JPEG at all


def _service_tables(db: Path) -> tuple[object, object]:
    pytest.importorskip("facewise.service.engine", reason="facewise.service is not part of this build")
    from facewise.service.auth import KeyStore
    from facewise.service.engine import Thumbnails

    return KeyStore(db), Thumbnails(str(db))


def test_delete_person_erases_every_byte(tmp_path: Path) -> None:
    """Samples, template, thumbnails, audit payloads and index entries; the bytes gone from the db and -wal."""
    from facewise.models.profiles import load_profile

    db = tmp_path / "g.db"
    keys, thumbs = _service_tables(db)
    from facewise.service.auth import AuditEvent

    prof = load_profile("default")
    rng = np.random.default_rng(9)
    target, keep = unit(rng, 4, prof.dim), unit(rng, 2, prof.dim)
    name = "Zelda Erasure-Target"
    thumb = b"\xff\xd8\xff\xe0" + rng.bytes(600) + b"\xff\xd9"
    with SQLiteStore(db, cipher=None) as store:
        store.ensure_collection("default", prof.name, prof.signature, prof.dim)
        ids = store.add_samples("default", [new_sample(name, v, f"z{i}") for i, v in enumerate(target)]
                                + [new_sample("Keeper", v, f"k{i}") for i, v in enumerate(keep)])
        template = store.person_template("default", name)
        pid = store.get_person("default", name).id
        for sid in ids[:4]:
            thumbs.put("default", sid, f"z{sid}", thumb[:-2] + bytes([sid]) + b"\xff\xd9")
        keys.audit(AuditEvent("k1", "person.create", "default", str(pid), {"name": name}))
        keys.audit(AuditEvent("k1", "face.enroll", "default", str(pid), {"name": name, "added": ids[:4]}))
        keys.close()
        thumbs.close()
        assert _leaks(raw_bytes(db), [*list(target), template]) == 4 + 1
    r = run_cli("people", "delete", name, "--db", str(db), env={"FACEWISE_KEY": "", "FACEWISE_KEY_FILE": ""})
    assert r.returncode == 0, text(r.stderr)
    data = raw_bytes(db)
    assert _leaks(data, [*list(target), template]) == 0
    assert name.encode() not in data and thumb[4:200] not in data
    assert _leaks(data, list(keep)) == 2  # the method would see them: the other person is still there
    wal = db.with_name(db.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0
    conn = sqlite3.connect(db)
    details = [json.loads(d) for (d,) in conn.execute("SELECT detail FROM service_audit WHERE target=?", (str(pid),))]
    assert details == [{"erased": True}] * 2
    assert conn.execute("SELECT COUNT(*) FROM service_thumbnails").fetchone()[0] == 0
    conn.close()
    with SQLiteStore(db) as store:
        assert diagnose(store) == [] and len(store.index("default")) == 2


def test_a_thumbnail_never_outlives_its_sample(tmp_path: Path) -> None:
    """Beside the gallery, a crop stored after its sample was deleted (an enrolment racing a delete) is not
    kept, and a delete by a plain gallery connection (no service code) removes the crops."""
    db = tmp_path / "g.db"
    with SQLiteStore(db, cipher=None) as store:
        _fill(store, n=3)
        keys, thumbs = _service_tables(db)
        keys.close()
        thumbs.put("c", 1, "img0-0", b"\xff\xd8crop-one")
        store.delete_sample("c", 2)
        thumbs.put("c", 2, "img0-1", b"\xff\xd8crop-two")  # too late: sample 2 is gone
        assert thumbs.get(1, "img0-0") == b"\xff\xd8crop-one" and thumbs.get(2, "img0-1") is None
        store.delete_collection("c")
        assert thumbs.get(1, "img0-0") is None
        thumbs.close()
    assert b"crop-one" not in raw_bytes(db) and b"crop-two" not in raw_bytes(db)


def test_facewise_tells_its_erasure_hooks_and_a_service_handle_never_recreates(tmp_path: Path) -> None:
    from facewise import FaceWise
    from facewise.core.pipeline import Pipeline
    from facewise.errors import NotFoundError, ProfileMismatchError
    from facewise.gallery.maintenance import Erasure, ErasureHooks
    from facewise.models.profiles import load_profile

    prof = load_profile("default")
    hooks, seen = ErasureHooks(), []
    hooks.subscribe(seen.append)
    store = SQLiteStore(tmp_path / "g.db", cipher=None)
    store.ensure_collection("c", prof.name, prof.signature, prof.dim)
    vecs = unit(np.random.default_rng(3), 4, prof.dim)
    ids = store.add_samples("c", [new_sample(f"p{i % 2}", v, f"s{i}") for i, v in enumerate(vecs)])
    pipe = Pipeline(prof)
    fw = FaceWise(db=store, profile=prof, collection="c", pipeline=pipe, erasure=hooks, create=False)
    assert fw.pipeline is pipe
    pid = store.get_person("c", "p0").id
    assert fw.delete_person("p0") == 2
    fw.delete_sample(ids[1])
    assert seen == [Erasure("c", pid, "p0", (ids[0], ids[2])), Erasure("c", sample_ids=(ids[1],))]
    late = FaceWise(db=store, profile=prof, collection="c", pipeline=pipe, erasure=hooks, create=False)
    fw.delete_collection()
    assert seen[-1] == Erasure("c", whole_collection=True)
    with pytest.raises(NotFoundError):  # a handle made before the delete does not bring the collection back
        late.persons()
    assert store.list_collections() == []
    with pytest.raises(ProfileMismatchError):
        FaceWise(db=store, profile="fast", pipeline=pipe)
    store.close()


def test_delete_sample_erases_its_vector(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    with SQLiteStore(db, cipher=None) as store:
        vecs = _fill(store, n=6)
        store.delete_sample("c", 2)
        assert _leaks(raw_bytes(db), [vecs[1]]) == 0 and _leaks(raw_bytes(db), [vecs[0]]) == 1
        assert 2 not in store.index("c").sample_ids


def _in_matrix(path: Path, vecs: np.ndarray) -> int:
    from facewise.gallery.index import VectorIndex

    rows = VectorIndex.load(path, mmap=False).matrix
    return sum(bool(np.isclose(rows, v).all(axis=1).any()) for v in vecs)


def test_deletes_erase_the_cached_matrix_files(tmp_path: Path) -> None:
    """The memory-mapped matrix beside the gallery holds plaintext vectors: a delete removes the collection's
    file (rebuilt on the next search), not another collection's."""
    db = tmp_path / "g.db"
    with SQLiteStore(db, cipher=None) as store:
        vecs = _fill(store, n=6)
        other = _fill(store, n=3, seed=1, collection="c-2")
        for coll in ("c", "c-2"):
            store.update_settings(coll, mmap=True)
            store.search(coll, vecs[:1])
        ann_dir = db.with_name(db.name + ".ann")
        assert sorted(p.name for p in ann_dir.iterdir()) == ["c-2.matrix", "c.matrix"]
        assert _in_matrix(ann_dir / "c.matrix", vecs) == 6
        store.delete_person("c", "person0")  # samples 0 and 3
        assert sorted(p.name for p in ann_dir.iterdir()) == ["c-2.matrix"]
        assert store.search("c", vecs[:1])[0][0].name != "person0"
        assert _in_matrix(ann_dir / "c.matrix", vecs) == 4  # rebuilt without them
        store.delete_collection("c")
        assert sorted(p.name for p in ann_dir.iterdir()) == ["c-2.matrix"]
        assert store.search("c-2", other[:1])[0][0].score > 0.99


def test_every_erasure_listener_runs_and_a_failure_is_named() -> None:
    from facewise.errors import FacewiseError
    from facewise.gallery.maintenance import Erasure, ErasureHooks

    hooks, seen = ErasureHooks(), []

    def broken(event: Erasure) -> None:
        raise OSError("disk gone")

    hooks.subscribe(broken)
    unsubscribe = hooks.subscribe(seen.append)
    with pytest.raises(FacewiseError, match=r"derived data may remain.*disk gone"):
        hooks.emit(Erasure("c", whole_collection=True))
    assert seen == [Erasure("c", whole_collection=True)]
    unsubscribe()
    with pytest.raises(FacewiseError):
        hooks.emit(Erasure("c", sample_ids=(1,)))
    assert len(seen) == 1


# -- retention ----------------------------------------------------------------------------------------------------
def test_retention_expires_only_old_unknown_records(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    now = datetime.now(UTC)
    old = (now - timedelta(days=40)).isoformat(timespec="seconds")
    recent = (now - timedelta(days=5)).isoformat(timespec="seconds")
    rng = np.random.default_rng(4)
    v = unit(rng, 8, DIM)
    with SQLiteStore(db, cipher=None) as store:
        store.ensure_collection("c", "p", "sig", DIM)
        store.add_samples("c", [new_sample("alice", v[0], "a0"),
                                new_sample("stranger-1", v[1], "u1", kind="unknown"),
                                new_sample("stranger-1", v[2], "u2", kind="unknown"),
                                new_sample("cluster-7", v[3], "c1", kind="cluster"),
                                new_sample("cluster-7", v[4], "c2", kind="cluster"),
                                new_sample("cluster-7", v[5], "c3", kind="cluster"),
                                new_sample("stranger-2", v[6], "u3", kind="unknown"),
                                new_sample("cluster-000003", v[7], "k1")])  # an unnamed cluster (batch.cluster)
        store._db.execute("UPDATE samples SET created_at=?", (old,))  # back-date everything...
        store._db.execute("UPDATE persons SET created_at=?", (old,))
        store._db.execute("UPDATE samples SET created_at=? WHERE image_sha256 IN ('c3', 'u3')", (recent,))
        assert apply_retention(store, "c", now=now) is None  # no setting: nothing happens
        set_retention(store, "c", 30)
        dry = apply_retention(store, "c", now=now, dry_run=True)
        assert dry.samples_erased == 5 and dry.persons_erased == ["cluster-000003", "stranger-1"]
        assert store.get_collection("c").samples == 8
        done = apply_retention(store, "c", now=now)
        assert done.to_dict() == {**dry.to_dict()}
        assert {p.name: p.n_samples for p in store.list_persons("c")} == {"alice": 1, "cluster-7": 1,
                                                                          "stranger-2": 1}
        assert diagnose(store) == []
        assert _leaks(raw_bytes(db), [v[1], v[2], v[3], v[4], v[7]]) == 0
    r = run_cli("retention", "--db", str(db), "--days", "3", "--json")  # the 5-day-old rows go too now
    assert r.returncode == 0, text(r.stderr)
    doc = json.loads(r.stdout)["collections"][0]
    assert doc["days"] == 3 and doc["samples_erased"] == 2 and sorted(doc["persons_erased"]) == ["cluster-7",
                                                                                                  "stranger-2"]
