"""Embedded gallery: one SQLite file (WAL, foreign keys) plus an in-memory float32 matrix.

Every write runs in one ``BEGIN IMMEDIATE`` transaction and bumps a ``generation`` counter, so
a failed enrolment leaves the file exactly as it was, a killed process loses nothing committed,
and any process sharing the file notices a stale matrix and rebuilds it from the database.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from facewise.errors import ConflictError, FacewiseError, NotFoundError, ProfileMismatchError
from facewise.gallery import ann
from facewise.gallery.base import StoreBase, check_vector, template_of
from facewise.gallery.crypto import (
    OVERHEAD,
    BlobCipher,
    bind_gallery,
    cipher_from_env,
    no_key_error,
    open_blob,
    sample_aad,
    template_aad,
)
from facewise.gallery.index import VectorIndex
from facewise.gallery.maintenance import erase_cached_files, flush_erased
from facewise.gallery.names import stored_metadata
from facewise.gallery.store import CollectionInfo, ExportedPerson, NewSample, SearchHit
from facewise.types import Person, Sample

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2  # 2: persons and samples ids AUTOINCREMENT (never reused)

# (sample id, person id, vector) of the samples a write added, given to ``before_commit`` hooks
Added = list[tuple[int, int, np.ndarray]]

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS collections(
  id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, profile TEXT NOT NULL, signature TEXT NOT NULL,
  dim INTEGER NOT NULL, settings TEXT NOT NULL DEFAULT '{}', created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS persons(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
  name TEXT NOT NULL, metadata TEXT NOT NULL DEFAULT '{}', created_at TEXT NOT NULL,
  UNIQUE(collection_id, name));
CREATE TABLE IF NOT EXISTS samples(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  person_id INTEGER NOT NULL REFERENCES persons(id) ON DELETE CASCADE,
  collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
  image_sha256 TEXT NOT NULL, face_index INTEGER NOT NULL DEFAULT 0, source TEXT NOT NULL DEFAULT '',
  box TEXT NOT NULL DEFAULT '[]', landmarks TEXT NOT NULL DEFAULT '[]', quality REAL NOT NULL DEFAULT 1,
  yaw REAL NOT NULL DEFAULT 0, model TEXT NOT NULL, embedding BLOB NOT NULL, created_at TEXT NOT NULL,
  UNIQUE(collection_id, image_sha256, face_index));
CREATE INDEX IF NOT EXISTS samples_person ON samples(person_id);
CREATE TABLE IF NOT EXISTS templates(
  person_id INTEGER PRIMARY KEY REFERENCES persons(id) ON DELETE CASCADE,
  embedding BLOB NOT NULL, n INTEGER NOT NULL, updated_at TEXT NOT NULL);
"""


# Version 1 -> 2: rebuild persons and samples with AUTOINCREMENT (SQLite cannot alter a primary key), keeping
# every row and id; run with foreign keys off so the rebuild cascades nothing, then checked.
_PERSONS_COLS = "id, collection_id, name, metadata, created_at"
_SAMPLES_COLS = ("id, person_id, collection_id, image_sha256, face_index, source, box, landmarks, quality, yaw, "
                 "model, embedding, created_at")


def _table_sql(name: str) -> str:
    block = SCHEMA.split(f"CREATE TABLE IF NOT EXISTS {name}(")[1].split(";")[0]
    return f"CREATE TABLE {name}_v2(" + block


def _migrate_v2(cur: sqlite3.Cursor) -> None:
    # indexes and triggers others put on these tables (the service's erasure triggers) go with DROP TABLE: kept
    kept = [r[0] for r in cur.execute("SELECT sql FROM sqlite_master WHERE type IN ('index', 'trigger') AND "
                                      "tbl_name IN ('persons', 'samples') AND sql IS NOT NULL")]
    for name, cols in (("persons", _PERSONS_COLS), ("samples", _SAMPLES_COLS)):
        cur.execute(_table_sql(name))
        cur.execute(f"INSERT INTO {name}_v2({cols}) SELECT {cols} FROM {name}")
        cur.execute(f"DROP TABLE {name}")  # (no DELETE trigger fires, foreign keys are off: nothing cascades)
        cur.execute(f"ALTER TABLE {name}_v2 RENAME TO {name}")
    for sql in kept:
        cur.execute(sql)
    bad = cur.execute("PRAGMA foreign_key_check").fetchall()
    if bad:
        raise FacewiseError(f"migration to schema 2 found {len(bad)} dangling rows (first: {bad[0]}); nothing changed")
    cur.execute("UPDATE meta SET value='2' WHERE key='schema_version'")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class SQLiteStore(StoreBase):
    """The default :class:`~facewise.gallery.Store`. Thread-safe; several processes may share a file."""

    capabilities: ClassVar[frozenset[str]] = frozenset(
        {"encryption", "move_samples", "ann", "integrity_check"})

    @classmethod
    def from_url(cls, url: str) -> SQLiteStore:
        """A gallery file's path (every address without a URL scheme: :mod:`facewise.gallery.open`)."""
        return cls(url)

    def __init__(self, path: str | Path = ":memory:", timeout: float = 30.0,
                 cipher: BlobCipher | Literal["env"] | None = "env") -> None:
        """``cipher`` encrypts vectors at rest (:mod:`facewise.gallery.crypto`); ``"env"``: ``FACEWISE_KEY[_FILE]``."""
        self.path = str(path)
        self._cipher = cipher_from_env() if cipher == "env" else cipher
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, timeout=timeout, check_same_thread=False,
                                       isolation_level=None)
            self._db.execute("PRAGMA page_size=8192")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
            self._db.execute("PRAGMA secure_delete=ON")  # erased rows are overwritten, not left in free space
            with self._tx() as cur:
                for stmt in SCHEMA.split(";"):
                    if stmt.strip():
                        cur.execute(stmt)
                row = cur.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
                if row is None:
                    cur.execute("INSERT INTO meta VALUES('schema_version', ?)", (str(SCHEMA_VERSION),))
                    cur.execute("INSERT INTO meta VALUES('generation', '0')")
                elif int(row[0]) > SCHEMA_VERSION:
                    raise FacewiseError(
                        f"{self.path}: gallery schema {row[0]} is newer than this facewise ({SCHEMA_VERSION})"
                    )
                self._encrypted = bind_gallery(cur, self._cipher, self.path)
            if row is not None and int(row[0]) < 2:
                self._migrate()
        except sqlite3.DatabaseError as exc:
            raise FacewiseError(f"{self.path}: not a usable facewise gallery ({exc})") from None
        self._lock = threading.RLock()
        self._indexes: dict[str, tuple[int, VectorIndex]] = {}
        self._ann: dict[str, ann.AnnManager] = {}  # collections with settings index="hnsw" (gallery/ann.py)

    def _migrate(self) -> None:
        log.info("%s: migrating the gallery to schema %d (ids never reused)", self.path, SCHEMA_VERSION)
        self._db.execute("PRAGMA foreign_keys=OFF")  # (a no-op inside a transaction: set before it)
        try:
            with self._tx() as cur:
                if cur.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "1":
                    _migrate_v2(cur)  # (another process may have migrated while we waited)
        finally:
            self._db.execute("PRAGMA foreign_keys=ON")

    # -- plumbing -----------------------------------------------------------------------------
    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Cursor]:
        cur = self._db.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            yield cur
            cur.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key='generation'")
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise

    @property
    def encrypted(self) -> bool:
        return bool(self._encrypted)

    @property
    def locked(self) -> bool:
        return bool(self._encrypted) and self._cipher is None

    def _seal(self, data: bytes, aad: bytes) -> bytes:
        if self._cipher is not None:
            return self._cipher.seal(data, aad)
        if self._encrypted:
            raise no_key_error(self.path)
        return data

    def _unseal(self, blob: bytes, aad: bytes) -> bytes:
        return open_blob(self._cipher, blob, aad, self._encrypted, self.path)

    def seal_blob(self, data: bytes, aad: bytes) -> bytes:
        """Seal bytes kept beside this gallery (e.g. the service's thumbnails) as its vectors are: encrypted
        when the gallery is, as is when it is plaintext."""
        return self._seal(data, aad)

    def unseal_blob(self, blob: bytes, aad: bytes) -> bytes:
        return self._unseal(blob, aad)

    def _vec(self, blob: bytes, aad: bytes) -> np.ndarray:
        return np.frombuffer(self._unseal(blob, aad), np.float32)

    def _generation(self) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key='generation'").fetchone()
        return int(row[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def integrity_check(self) -> list[str]:
        """Problems found by SQLite's integrity and foreign-key checks and our own invariants."""
        with self._lock:
            problems = [r[0] for r in self._db.execute("PRAGMA integrity_check") if r[0] != "ok"]
            problems += [f"foreign key violation in {r[0]} row {r[1]}" for r in
                         self._db.execute("PRAGMA foreign_key_check")]
            for name, dim in self._db.execute("SELECT name, dim FROM collections"):
                bad = self._db.execute(
                    "SELECT COUNT(*) FROM samples s JOIN collections c ON c.id = s.collection_id "
                    "WHERE c.name = ? AND length(s.embedding) != ?",
                    (name, dim * 4 + (OVERHEAD if self._encrypted else 0))).fetchone()[0]
                if bad:
                    problems.append(f"collection {name!r}: {bad} samples with a wrong vector size")
            return problems

    # -- collections ----------------------------------------------------------------------------
    def _collection_row(self, name: str) -> tuple[Any, ...]:
        row: tuple[Any, ...] | None = self._db.execute(
            "SELECT id, name, profile, signature, dim, settings, created_at FROM collections WHERE name=?",
            (name,)).fetchone()
        if row is None:
            raise NotFoundError(f"collection {name!r} does not exist")
        return row

    def _info(self, row: tuple[Any, ...]) -> CollectionInfo:
        cid = row[0]
        persons = self._db.execute("SELECT COUNT(*) FROM persons WHERE collection_id=?", (cid,)).fetchone()[0]
        samples = self._db.execute("SELECT COUNT(*) FROM samples WHERE collection_id=?", (cid,)).fetchone()[0]
        return CollectionInfo(row[1], row[2], row[3], row[4], json.loads(row[5]), row[6], persons, samples)

    def ensure_collection(self, name: str, profile: str, signature: str, dim: int) -> CollectionInfo:
        with self._lock:
            row = self._db.execute("SELECT id, name, profile, signature, dim, settings, created_at "
                                   "FROM collections WHERE name=?", (name,)).fetchone()
            if row is None:
                with self._tx() as cur:
                    cur.execute("INSERT OR IGNORE INTO collections(name, profile, signature, dim, created_at) "
                                "VALUES(?,?,?,?,?)", (name, profile, signature, dim, _now()))
                row = self._collection_row(name)
            if row[3] != signature or row[4] != dim:
                raise ProfileMismatchError(
                    f"collection {name!r} holds vectors of profile {row[2]!r} ({row[4]}-d); it cannot be used "
                    f"with profile {profile!r} ({dim}-d): open it with profile {row[2]!r} or use another "
                    "collection"
                )
            return self._info(row)

    def get_collection(self, name: str) -> CollectionInfo:
        with self._lock:
            return self._info(self._collection_row(name))

    def list_collections(self) -> list[CollectionInfo]:
        with self._lock:
            rows = self._db.execute("SELECT id, name, profile, signature, dim, settings, created_at "
                                    "FROM collections ORDER BY name").fetchall()
            return [self._info(r) for r in rows]

    def update_settings(self, collection: str, **settings: Any) -> CollectionInfo:
        with self._lock, self._tx() as cur:
            row = self._collection_row(collection)
            merged = {**json.loads(row[5]), **settings}
            merged = {k: v for k, v in merged.items() if v is not None}
            cur.execute("UPDATE collections SET settings=? WHERE id=?", (json.dumps(merged), row[0]))
        return self.get_collection(collection)

    def delete_collection(self, name: str) -> None:
        with self._lock:
            with self._tx() as cur:
                row = self._collection_row(name)
                cur.execute("DELETE FROM collections WHERE id=?", (row[0],))
            self._indexes.pop(name, None)
            self._ann.pop(name, None)
            flush_erased(self._db)
            ann.erase_saved(self.path, name, lambda: erase_cached_files(self.path, name))

    # -- persons --------------------------------------------------------------------------------
    def _person_row(self, cid: int, person: str | int) -> tuple[Any, ...]:
        """``person``: a reference already checked by :func:`~facewise.gallery.names.person_ref`."""
        row: tuple[Any, ...] | None
        if isinstance(person, int):
            row = self._db.execute("SELECT id, name, metadata, created_at FROM persons "
                                   "WHERE collection_id=? AND id=?", (cid, person)).fetchone()
        else:
            row = self._db.execute("SELECT id, name, metadata, created_at FROM persons "
                                   "WHERE collection_id=? AND name=?", (cid, person)).fetchone()
        if row is None:
            raise NotFoundError(f"person {person!r} does not exist in this collection")
        return row

    def _person(self, row: tuple[Any, ...]) -> Person:
        n = self._db.execute("SELECT COUNT(*) FROM samples WHERE person_id=?", (row[0],)).fetchone()[0]
        return Person(row[0], row[1], stored_metadata(row[2]), n, row[3])

    def _add_person(self, collection: str, name: str, metadata: dict[str, Any]) -> Person:
        with self._lock:
            with self._tx() as cur:
                cid = self._collection_row(collection)[0]
                try:
                    cur.execute("INSERT INTO persons(collection_id, name, metadata, created_at) VALUES(?,?,?,?)",
                                (cid, name, json.dumps(metadata), _now()))
                except sqlite3.IntegrityError:
                    raise ConflictError(f"person {name!r} already exists in collection {collection!r}") from None
                pid = int(cur.lastrowid or 0)
            return self._get_person(collection, pid)

    def _get_person(self, collection: str, person: str | int) -> Person:
        with self._lock:
            cid = self._collection_row(collection)[0]
            return self._person(self._person_row(cid, person))

    def list_persons(self, collection: str, offset: int = 0, limit: int | None = None) -> list[Person]:
        with self._lock:
            cid = self._collection_row(collection)[0]
            rows = self._db.execute(
                "SELECT p.id, p.name, p.metadata, p.created_at, COUNT(s.id) FROM persons p "
                "LEFT JOIN samples s ON s.person_id = p.id WHERE p.collection_id=? "
                "GROUP BY p.id ORDER BY p.name LIMIT ? OFFSET ?",
                (cid, -1 if limit is None else limit, offset)).fetchall()
            return [Person(r[0], r[1], stored_metadata(r[2]), r[4], r[3]) for r in rows]

    def _rename_person(self, collection: str, person: str | int, new_name: str) -> Person:
        with self._lock:
            with self._tx() as cur:
                cid = self._collection_row(collection)[0]
                pid = self._person_row(cid, person)[0]
                try:
                    cur.execute("UPDATE persons SET name=? WHERE id=?", (new_name, pid))
                except sqlite3.IntegrityError:
                    raise ConflictError(f"person {new_name!r} already exists in {collection!r}") from None
            return self._get_person(collection, pid)

    def _delete_person(self, collection: str, person: str | int) -> int:
        with self._lock:
            with self._tx() as cur:
                cid = self._collection_row(collection)[0]
                pid = self._person_row(cid, person)[0]
                n = cur.execute("SELECT COUNT(*) FROM samples WHERE person_id=?", (pid,)).fetchone()[0]
                cur.execute("DELETE FROM persons WHERE id=?", (pid,))
            self._refresh_after_write(collection, lambda ix: ix.remove_person(pid))
            flush_erased(self._db)
            ann.erase_saved(self.path, collection, lambda: erase_cached_files(self.path, collection))
            return int(n)

    # -- samples --------------------------------------------------------------------------------
    def has_image(self, collection: str, image_sha256: str, face_index: int | None = None) -> bool:
        with self._lock:
            cid = self._collection_row(collection)[0]
            if face_index is None:
                q = "SELECT 1 FROM samples WHERE collection_id=? AND image_sha256=? LIMIT 1"
                return self._db.execute(q, (cid, image_sha256)).fetchone() is not None
            q = "SELECT 1 FROM samples WHERE collection_id=? AND image_sha256=? AND face_index=?"
            return self._db.execute(q, (cid, image_sha256, face_index)).fetchone() is not None

    def _add_samples(self, collection: str, samples: list[NewSample]) -> list[int | None]:
        return self.add_samples_then(collection, samples, None)

    def add_samples_then(self, collection: str, samples: list[NewSample],
                         before_commit: Callable[[Added], None] | None) -> list[int | None]:
        """:meth:`add_samples`, calling ``before_commit(added)`` inside the transaction (a store keeping vectors
        elsewhere writes them there: if it raises, nothing is stored)."""
        ids: list[int | None] = []
        added: Added = []
        with self._lock:
            with self._tx() as cur:
                info = self._collection_row(collection)
                cid, dim = info[0], info[4]
                touched: set[int] = set()
                for s in samples:
                    vec = check_vector(s, dim, collection)
                    pid = self._sample_person(cur, cid, collection, s)
                    cur.execute(
                        "INSERT OR IGNORE INTO samples(person_id, collection_id, image_sha256, face_index, source, "
                        "box, landmarks, quality, yaw, model, embedding, created_at) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)",
                        (pid, cid, s.image_sha256, s.face_index, s.source, json.dumps(s.box),
                         json.dumps(s.landmarks), float(s.quality), float(s.yaw), s.model,
                         self._seal(vec.tobytes(), sample_aad(cid, s.image_sha256, s.face_index)), _now()))
                    if cur.rowcount == 0:
                        ids.append(None)
                        continue
                    sid = int(cur.lastrowid or 0)
                    ids.append(sid)
                    added.append((sid, pid, vec))
                    touched.add(pid)
                for pid in touched:
                    self._update_template(cur, pid)
                if before_commit is not None and added:
                    before_commit(added)
            self._refresh_after_write(collection, lambda ix: ix.add(
                [a[0] for a in added], [a[1] for a in added],
                np.stack([a[2] for a in added]) if added else np.zeros((0, dim), np.float32)))
        return ids

    def _sample_person(self, cur: sqlite3.Cursor, cid: int, collection: str, s: NewSample) -> int:
        """Inside the storing transaction: the sample's person id (by id: must exist; by name: created)."""
        if s.person_id is not None:
            if cur.execute("SELECT 1 FROM persons WHERE collection_id=? AND id=?", (cid, s.person_id)).fetchone():
                return s.person_id
            raise NotFoundError(f"person {s.person_id} does not exist in collection {collection!r}; nothing stored")
        row = cur.execute("SELECT id FROM persons WHERE collection_id=? AND name=?", (cid, s.person)).fetchone()
        if row is not None:
            return int(row[0])
        cur.execute("INSERT INTO persons(collection_id, name, metadata, created_at) VALUES(?,?,?,?)",
                    (cid, s.person, json.dumps(s.metadata or {}), _now()))
        return int(cur.lastrowid or 0)

    def _update_template(self, cur: sqlite3.Cursor, pid: int) -> None:
        rows = cur.execute("SELECT embedding, quality, collection_id, image_sha256, face_index FROM samples "
                           "WHERE person_id=?", (pid,)).fetchall()
        if not rows:
            cur.execute("DELETE FROM templates WHERE person_id=?", (pid,))
            return
        t = template_of(np.stack([self._vec(r[0], sample_aad(r[2], r[3], r[4])) for r in rows]), [r[1] for r in rows])
        cur.execute("INSERT OR REPLACE INTO templates(person_id, embedding, n, updated_at) VALUES(?,?,?,?)",
                    (pid, self._seal(t.tobytes(), template_aad(pid)), len(rows), _now()))

    def _list_samples(self, collection: str, person: str | int | None) -> list[Sample]:
        with self._lock:
            cid = self._collection_row(collection)[0]
            q = ("SELECT id, person_id, image_sha256, source, box, quality, yaw, created_at FROM samples "
                 "WHERE collection_id=?")
            args: tuple[Any, ...] = (cid,)
            if person is not None:
                q += " AND person_id=?"
                args = (cid, self._person_row(cid, person)[0])
            rows = self._db.execute(q + " ORDER BY id", args).fetchall()
            return [Sample(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5], r[6], r[7]) for r in rows]

    def _delete_sample(self, collection: str, sample_id: int) -> None:
        with self._lock:
            with self._tx() as cur:
                cid = self._collection_row(collection)[0]
                row = cur.execute("SELECT person_id FROM samples WHERE id=? AND collection_id=?",
                                  (sample_id, cid)).fetchone()
                if row is None:
                    raise NotFoundError(f"sample {sample_id} does not exist in collection {collection!r}")
                cur.execute("DELETE FROM samples WHERE id=?", (sample_id,))
                self._update_template(cur, int(row[0]))
            self._refresh_after_write(collection, lambda ix: ix.remove_samples({sample_id}))
            flush_erased(self._db)
            ann.erase_saved(self.path, collection, lambda: erase_cached_files(self.path, collection))

    def _move_samples(self, collection: str, sample_ids: list[int], person: str | int) -> Person:
        with self._lock:
            with self._tx() as cur:
                cid = self._collection_row(collection)[0]
                if isinstance(person, str) and self._db.execute(
                        "SELECT 1 FROM persons WHERE collection_id=? AND name=?", (cid, person)).fetchone() is None:
                    cur.execute("INSERT INTO persons(collection_id, name, metadata, created_at) VALUES(?,?,?,?)",
                                (cid, person, "{}", _now()))
                pid = self._person_row(cid, person)[0]
                marks = ",".join("?" * len(sample_ids))
                old = [r[0] for r in cur.execute(f"SELECT DISTINCT person_id FROM samples WHERE collection_id=? "
                                                 f"AND id IN ({marks})", (cid, *sample_ids))]
                cur.execute(f"UPDATE samples SET person_id=? WHERE collection_id=? AND id IN ({marks})",
                            (pid, cid, *sample_ids))
                for p in {*old, pid}:
                    self._update_template(cur, p)
            self._refresh_after_write(collection, lambda ix: ix.reassign(sample_ids, pid))
            return self._get_person(collection, pid)

    def _sample_vectors(self, collection: str, sample_ids: list[int]) -> np.ndarray:
        with self._lock:
            cid, dim = (lambda r: (r[0], r[4]))(self._collection_row(collection))
            out = np.zeros((len(sample_ids), dim), np.float32)
            for i, sid in enumerate(sample_ids):
                row = self._db.execute("SELECT embedding, image_sha256, face_index FROM samples "
                                       "WHERE id=? AND collection_id=?", (sid, cid)).fetchone()
                if row is None:
                    raise NotFoundError(f"sample {sid} does not exist in collection {collection!r}")
                out[i] = self._vec(row[0], sample_aad(cid, row[1], row[2]))
            return out

    def sample_meta(self, collection: str, sample_ids: list[int]) -> dict[int, dict[str, float]]:
        with self._lock:
            cid = self._collection_row(collection)[0]
            out = {}
            for sid in sample_ids:
                row = self._db.execute("SELECT quality, yaw FROM samples WHERE id=? AND collection_id=?",
                                       (sid, cid)).fetchone()
                if row is not None:
                    out[sid] = {"quality": float(row[0]), "yaw": float(row[1])}
            return out

    def _person_template(self, collection: str, person: str | int) -> np.ndarray:
        with self._lock:
            cid = self._collection_row(collection)[0]
            pid = self._person_row(cid, person)[0]
            row = self._db.execute("SELECT embedding FROM templates WHERE person_id=?", (pid,)).fetchone()
            if row is None:
                raise NotFoundError(f"person {person!r} has no samples")
            return self._vec(row[0], template_aad(pid)).copy()

    def _person_vectors(self, collection: str, person: str | int) -> np.ndarray:
        with self._lock:
            cid, dim = (lambda r: (r[0], r[4]))(self._collection_row(collection))
            pid = self._person_row(cid, person)[0]
            rows = self._db.execute("SELECT embedding, image_sha256, face_index FROM samples WHERE person_id=? "
                                    "ORDER BY id", (pid,)).fetchall()
            if not rows:
                return np.zeros((0, dim), np.float32)
            return np.stack([self._vec(r[0], sample_aad(cid, r[1], r[2])) for r in rows])

    # -- for stores that keep their facts here (milvus.py) -----------------------------------------
    def collection_key(self, collection: str) -> tuple[int, int]:
        """The collection's (id, dimension)."""
        with self._lock:
            row = self._collection_row(collection)
            return int(row[0]), int(row[4])

    def sample_persons(self, collection: str) -> dict[int, int]:
        """Every sample id of the collection → its person id."""
        with self._lock:
            cid = self._collection_row(collection)[0]
            return dict(self._db.execute("SELECT id, person_id FROM samples WHERE collection_id=?", (cid,)).fetchall())

    def person_names(self, collection: str, person_ids: list[int]) -> dict[int, str]:
        """Names of the given person ids that exist in the collection."""
        with self._lock:
            cid = self._collection_row(collection)[0]
            names: dict[int, str] = {}
            for a in range(0, len(person_ids), 10_000):  # (SQLite's limit on bound parameters)
                part = person_ids[a:a + 10_000]
                names.update(self._db.execute(f"SELECT id, name FROM persons WHERE collection_id=? AND id IN "
                                              f"({','.join('?' * len(part))})", (cid, *part)).fetchall())
            return names

    # -- search ---------------------------------------------------------------------------------
    def _load_index(self, collection: str) -> VectorIndex:
        row = self._collection_row(collection)
        cid, dim = row[0], row[4]
        ix = VectorIndex(dim)
        rows = self._db.execute("SELECT id, person_id, embedding, image_sha256, face_index FROM samples "
                                "WHERE collection_id=? ORDER BY id", (cid,)).fetchall()
        if rows:
            blobs = ((self._unseal(r[2], sample_aad(cid, r[3], r[4])) for r in rows) if self._encrypted
                     else (r[2] for r in rows))  # plaintext: no per-row call on millions of rows
            mat = np.frombuffer(b"".join(blobs), np.float32).reshape(len(rows), dim)
            ix.reset(np.array([r[0] for r in rows]), np.array([r[1] for r in rows]), mat.copy())
        return ix

    def index(self, collection: str) -> VectorIndex:
        """The in-memory matrix of a collection, rebuilt if another writer changed the file."""
        with self._lock:
            gen = self._generation()
            cached = self._indexes.get(collection)
            if cached is None or cached[0] != gen:
                log.debug("building vector index of %r (generation %d)", collection, gen)
                self._indexes[collection] = (gen, ann.exact_index(self, collection, gen))
            return self._indexes[collection][1]

    def _refresh_after_write(self, collection: str, apply: Any) -> None:
        """Apply our own change incrementally if nothing else wrote in between; else drop the cache."""
        gen = self._generation()
        cached = self._indexes.get(collection)
        if cached is not None and cached[0] == gen - 1:
            apply(cached[1])
            self._indexes[collection] = (gen, cached[1])
        else:
            self._indexes.pop(collection, None)

    def search(self, collection: str, queries: np.ndarray, k: int = 1) -> list[list[SearchHit]]:
        with self._lock:
            ix = self.index(collection)
            row = self._collection_row(collection)
            results = ann.search(self._ann, self.path, collection, json.loads(row[5]), ix, queries, k,
                                 persist=not self._encrypted, profile=row[2])
            names = self.person_names(collection, sorted({pid for hits in results for pid, _, _ in hits}))
        return [[SearchHit(pid, names.get(pid, "?"), score, sid) for pid, score, sid in hits] for hits in results]

    # -- export / import ----------------------------------------------------------------------
    def export_rows(self, collection: str) -> Iterator[ExportedPerson]:
        with self._lock:
            cid = self._collection_row(collection)[0]
            persons = self._db.execute("SELECT id, name, metadata FROM persons WHERE collection_id=? ORDER BY name",
                                       (cid,)).fetchall()
            for pid, name, meta in persons:
                samples = self._db.execute(
                    "SELECT image_sha256, face_index, source, box, landmarks, quality, yaw, model, embedding "
                    "FROM samples WHERE person_id=? ORDER BY id", (pid,)).fetchall()
                yield {
                    "name": name, "metadata": stored_metadata(meta),
                    "samples": [{"image_sha256": s[0], "face_index": s[1], "source": s[2], "box": json.loads(s[3]),
                                 "landmarks": json.loads(s[4]), "quality": s[5], "yaw": s[6], "model": s[7],
                                 "embedding": self._vec(s[8], sample_aad(cid, s[0], s[1])).tolist()}
                                for s in samples],
                }
