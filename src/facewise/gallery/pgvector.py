"""PostgreSQL + pgvector gallery: the :class:`~facewise.gallery.Store` for a shared database server.

Layout (inside one PostgreSQL schema, ``facewise`` by default):

* ``schema_version`` — applied migrations; ``MIGRATIONS`` run in order, each in its own transaction, under an
  advisory lock so concurrent processes migrate once.
* ``collections``, ``persons``, ``samples``, ``templates`` — as in the embedded SQLite gallery.
* ``emb_<collection id>`` — one table per collection: ``sample_id`` (→ samples, cascade), ``person_id`` and
  ``embedding vector(dim)`` (or ``halfvec(dim)``: half the size), with an HNSW index (``vector_cosine_ops`` /
  ``halfvec_cosine_ops``) built once the collection reaches ``index_min_rows`` (exact scans win below it).

Every write is one transaction; a batch of samples is a few statements (vectors by binary ``COPY``, :mod:`.pgsql`).
Search returns the best ``k`` distinct persons: one statement per batch of queries asks for ``k * 8 + 16`` nearest
samples each (widening while too few persons come back), with the collection's ``hnsw.ef_search`` and iterative
index scan (``relaxed_order`` unless its settings say otherwise).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit, urlunsplit

import numpy as np

from facewise.errors import (
    ConflictError,
    FacewiseError,
    NotFoundError,
    ProfileMismatchError,
    ValidationError,
    install_hint,
)
from facewise.gallery.base import StoreBase, check_vectors, first_k_persons, first_window, templates_of
from facewise.gallery.names import stored_metadata
from facewise.gallery.pgsql import (
    MIGRATIONS,
    SCHEMA_VERSION,
    CollectionRow,
    copy_vectors,
    insert_samples,
    search_sql,
    to_numpy,
    write_templates,
)
from facewise.gallery.store import CollectionInfo, ExportedPerson, NewSample, SearchHit
from facewise.types import Person, Sample

log = logging.getLogger(__name__)

BULK_ROWS = 1_000  # a batch this large into an empty collection is loaded before its HNSW index is (re)built
COLLECTION_TTL_S = 2.0  # search trusts its copy of a collection's row this long (settings changed elsewhere)
ITERATIVE_SCANS = ("off", "relaxed_order", "strict_order")  # hnsw.iterative_scan
_LOCK_KEY = 0x6661636577697365  # "facewise": advisory lock for migrations and DDL


def _ts(value: Any) -> str:
    return value.isoformat(timespec="seconds") if hasattr(value, "isoformat") else str(value)


class PgVectorStore(StoreBase):
    """A gallery in PostgreSQL with pgvector (ids from sequences: never reused).

    ``dsn``: a libpq connection string (``postgresql://user@127.0.0.1:5432/db``). ``schema`` keeps
    several galleries in one database apart. ``halfvec`` stores new collections' vectors as 16-bit
    floats (exact re-scoring is then at fp16 precision). ``index_min_rows``: build the HNSW index once a
    collection holds that many samples (0: at creation). ``ef_search``: HNSW search breadth.
    """

    schemes: ClassVar[tuple[str, ...]] = ("postgresql", "postgres")

    @classmethod
    def from_url(cls, url: str) -> PgVectorStore:
        """``postgresql://…?schema=…&halfvec=1``: ``schema`` and ``halfvec`` are read by facewise, the rest of the
        query goes to libpq."""
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        ours = {k: query.pop(k)[0] for k in ("schema", "halfvec") if k in query}
        rest = "&".join(f"{k}={v[0]}" for k, v in query.items())
        dsn = urlunsplit((parts.scheme, parts.netloc, parts.path, rest, ""))
        return cls(dsn, schema=ours.get("schema", "facewise"), halfvec=ours.get("halfvec") in ("1", "true"))

    capabilities: ClassVar[frozenset[str]] = frozenset({"move_samples", "ann"})

    def __init__(self, dsn: str, schema: str = "facewise", *, halfvec: bool = False, index_min_rows: int = 10_000,
                 ef_search: int = 100) -> None:
        try:
            import psycopg
            from pgvector.psycopg import register_vector
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise FacewiseError(f"PgVectorStore needs psycopg and pgvector: {install_hint('pgvector')}") from exc
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,40}", schema):
            raise FacewiseError(f"schema name {schema!r}: lower-case letters, digits and _ only")
        self.schema = schema
        self.halfvec = halfvec
        self.index_min_rows = index_min_rows
        self.ef_search = ef_search
        self._psycopg = psycopg
        try:
            self._db = psycopg.connect(dsn, autocommit=True)
        except psycopg.OperationalError as exc:
            raise FacewiseError(f"cannot connect to PostgreSQL ({exc})".strip()) from None
        self._lock = threading.RLock()
        self._colls: dict[str, CollectionRow] = {}  # search's cache of collection rows
        self._indexed: set[int] = set()  # collections known to have their HNSW index
        self._rows: dict[int, int] = {}  # collection id -> samples, as this handle last counted plus its own adds
        with self._tx() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            cur.execute("CREATE EXTENSION IF NOT EXISTS vector")
        register_vector(self._db)
        # this connection's defaults (a statement on a collection with an HNSW index sets its own)
        self._db.execute("SELECT set_config('hnsw.ef_search', %s, false), "
                         "set_config('hnsw.iterative_scan', 'relaxed_order', false)", (str(min(1000, ef_search)),))
        self._migrate()

    # -- plumbing -----------------------------------------------------------------------------
    @contextmanager
    def _tx(self) -> Iterator[Any]:
        with self._lock, self._db.transaction(), self._db.cursor() as cur:
            yield cur

    def _q(self, sql: str) -> str:
        return sql.replace("{s}", self.schema)

    def _migrate(self) -> None:
        s = self.schema
        with self._tx() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {s}")
            cur.execute(f"CREATE TABLE IF NOT EXISTS {s}.schema_version("
                        "version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
            current = cur.execute(f"SELECT COALESCE(MAX(version), 0) FROM {s}.schema_version").fetchone()[0]
            if current > SCHEMA_VERSION:
                raise FacewiseError(f"gallery schema {s!r} is version {current}, newer than this facewise "
                                    f"({SCHEMA_VERSION})")
            for version in range(current + 1, SCHEMA_VERSION + 1):
                log.info("migrating PostgreSQL gallery %r to schema version %d", s, version)
                cur.execute(MIGRATIONS[version].format(s=s))
                cur.execute(f"INSERT INTO {s}.schema_version(version) VALUES(%s)", (version,))

    def schema_version(self) -> int:
        with self._lock:
            row = self._db.execute(self._q("SELECT MAX(version) FROM {s}.schema_version")).fetchone()
            return int(row[0]) if row is not None else 0  # an aggregate always returns a row

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def drop_schema(self) -> None:
        """Delete the whole gallery (every collection) from the database."""
        with self._tx() as cur:
            cur.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")

    # -- collections ----------------------------------------------------------------------------
    _COLS = "id, name, profile, signature, dim, settings, created_at, storage"

    def _collection_row(self, cur: Any, name: str) -> tuple[Any, ...]:
        sql = self._q(f"SELECT {self._COLS} FROM {{s}}.collections WHERE name=%s")
        row: tuple[Any, ...] | None = cur.execute(sql, (name,)).fetchone()
        if row is None:
            raise NotFoundError(f"collection {name!r} does not exist")
        return row

    def _emb(self, cid: int) -> str:
        return f"{self.schema}.emb_{int(cid)}"

    def _info(self, cur: Any, row: tuple[Any, ...]) -> CollectionInfo:
        persons = cur.execute(self._q("SELECT COUNT(*) FROM {s}.persons WHERE collection_id=%s"), (row[0],)).fetchone()
        samples = cur.execute(self._q("SELECT COUNT(*) FROM {s}.samples WHERE collection_id=%s"), (row[0],)).fetchone()
        return CollectionInfo(row[1], row[2], row[3], row[4], dict(row[5]), _ts(row[6]), persons[0], samples[0])

    def ensure_collection(self, name: str, profile: str, signature: str, dim: int) -> CollectionInfo:
        with self._tx() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            row = cur.execute(self._q(f"SELECT {self._COLS} FROM {{s}}.collections WHERE name=%s"),
                              (name,)).fetchone()
            if row is None:
                storage = "halfvec" if self.halfvec else "vector"
                cid = cur.execute(self._q("INSERT INTO {s}.collections(name, profile, signature, dim, storage) "
                                          "VALUES(%s,%s,%s,%s,%s) RETURNING id"),
                                  (name, profile, signature, dim, storage)).fetchone()[0]
                cur.execute(f"CREATE TABLE {self._emb(cid)}("
                            f"sample_id BIGINT PRIMARY KEY REFERENCES {self.schema}.samples(id) ON DELETE CASCADE, "
                            f"person_id BIGINT NOT NULL, embedding {storage}({int(dim)}) NOT NULL) "
                            "WITH (toast_tuple_target = 8160)")  # vectors in the row while it fits (migration 2)
                if self.index_min_rows <= 0:
                    self._create_hnsw(cur, cid, storage)
                row = self._collection_row(cur, name)
            if row[3] != signature or row[4] != dim:
                raise ProfileMismatchError(
                    f"collection {name!r} holds vectors of profile {row[2]!r} ({row[4]}-d); it cannot be used "
                    f"with profile {profile!r} ({dim}-d): open it with profile {row[2]!r} or use another collection"
                )
            return self._info(cur, row)

    def _create_hnsw(self, cur: Any, cid: int, storage: str, m: int = 16, ef_construction: int = 64) -> None:
        ops = "halfvec_cosine_ops" if storage == "halfvec" else "vector_cosine_ops"
        cur.execute(f"CREATE INDEX IF NOT EXISTS emb_{int(cid)}_hnsw ON {self._emb(cid)} "
                    f"USING hnsw (embedding {ops}) WITH (m = {int(m)}, ef_construction = {int(ef_construction)})")

    def has_hnsw(self, collection: str) -> bool:
        with self._tx() as cur:
            cid = self._collection_row(cur, collection)[0]
            return cur.execute("SELECT 1 FROM pg_indexes WHERE schemaname=%s AND indexname=%s",
                               (self.schema, f"emb_{int(cid)}_hnsw")).fetchone() is not None

    def build_index(self, collection: str, m: int = 16, ef_construction: int = 64) -> None:
        """Build the HNSW index of a collection now (otherwise built once it reaches ``index_min_rows``)."""
        with self._tx() as cur:
            row = self._collection_row(cur, collection)
            self._create_hnsw(cur, row[0], row[7], m, ef_construction)
        self._indexed.add(int(row[0]))

    def get_collection(self, name: str) -> CollectionInfo:
        with self._tx() as cur:
            return self._info(cur, self._collection_row(cur, name))

    def list_collections(self) -> list[CollectionInfo]:
        with self._tx() as cur:
            rows = cur.execute(self._q(f"SELECT {self._COLS} FROM {{s}}.collections ORDER BY name")).fetchall()
            return [self._info(cur, r) for r in rows]

    def update_settings(self, collection: str, **settings: Any) -> CollectionInfo:
        """Merge settings; ``index_ef`` (HNSW search breadth, default the store's ``ef_search``) and
        ``index_iterative_scan`` (off | relaxed_order | strict_order) steer search."""
        scan, ef = settings.get("index_iterative_scan"), settings.get("index_ef")  # None: back to the default
        if scan is not None and scan not in ITERATIVE_SCANS:
            raise ValidationError(f"index_iterative_scan must be one of {', '.join(ITERATIVE_SCANS)}")
        if ef is not None:
            try:
                ok = 1 <= int(ef) <= 1000
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise ValidationError(f"index_ef must be a whole number 1..1000, got {ef!r}")
        with self._tx() as cur:
            row = self._collection_row(cur, collection)
            merged = {k: v for k, v in {**dict(row[5]), **settings}.items() if v is not None}
            cur.execute(self._q("UPDATE {s}.collections SET settings=%s WHERE id=%s"), (json.dumps(merged), row[0]))
            self._colls.pop(collection, None)  # (after the update: a search meanwhile cannot cache the old settings)
        return self.get_collection(collection)

    def delete_collection(self, name: str) -> None:
        with self._tx() as cur:
            cid = self._collection_row(cur, name)[0]
            self._colls.pop(name, None)
            self._indexed.discard(cid)
            self._rows.pop(cid, None)
            cur.execute(f"DROP TABLE IF EXISTS {self._emb(cid)}")
            cur.execute(self._q("DELETE FROM {s}.collections WHERE id=%s"), (cid,))

    # -- persons --------------------------------------------------------------------------------
    def _person_row(self, cur: Any, cid: int, person: str | int) -> tuple[Any, ...]:
        """``person``: a reference already checked by :func:`~facewise.gallery.names.person_ref`."""
        row: tuple[Any, ...] | None
        if isinstance(person, int):
            row = cur.execute(self._q("SELECT id, name, metadata, created_at FROM {s}.persons "
                                      "WHERE collection_id=%s AND id=%s"), (cid, person)).fetchone()
        else:
            row = cur.execute(self._q("SELECT id, name, metadata, created_at FROM {s}.persons "
                                      "WHERE collection_id=%s AND name=%s"), (cid, person)).fetchone()
        if row is None:
            raise NotFoundError(f"person {person!r} does not exist in this collection")
        return row

    def _person(self, cur: Any, row: tuple[Any, ...]) -> Person:
        n = cur.execute(self._q("SELECT COUNT(*) FROM {s}.samples WHERE person_id=%s"), (row[0],)).fetchone()[0]
        return Person(row[0], row[1], stored_metadata(row[2]), n, _ts(row[3]))

    def _add_person(self, collection: str, name: str, metadata: dict[str, Any]) -> Person:
        with self._tx() as cur:
            cid = self._collection_row(cur, collection)[0]
            row = cur.execute(self._q("INSERT INTO {s}.persons(collection_id, name, metadata) VALUES(%s,%s,%s) "
                                      "ON CONFLICT DO NOTHING RETURNING id, name, metadata, created_at"),
                              (cid, name, json.dumps(metadata))).fetchone()
            if row is None:
                raise ConflictError(f"person {name!r} already exists in collection {collection!r}")
            return self._person(cur, row)

    def _get_person(self, collection: str, person: str | int) -> Person:
        with self._tx() as cur:
            cid = self._collection_row(cur, collection)[0]
            return self._person(cur, self._person_row(cur, cid, person))

    def list_persons(self, collection: str, offset: int = 0, limit: int | None = None) -> list[Person]:
        with self._tx() as cur:
            cid = self._collection_row(cur, collection)[0]
            rows = cur.execute(self._q(
                "SELECT p.id, p.name, p.metadata, p.created_at, COUNT(s.id) FROM {s}.persons p "
                "LEFT JOIN {s}.samples s ON s.person_id = p.id WHERE p.collection_id=%s "
                "GROUP BY p.id ORDER BY p.name LIMIT %s OFFSET %s"), (cid, limit, offset)).fetchall()
            return [Person(r[0], r[1], stored_metadata(r[2]), r[4], _ts(r[3])) for r in rows]

    def _rename_person(self, collection: str, person: str | int, new_name: str) -> Person:
        with self._tx() as cur:
            cid = self._collection_row(cur, collection)[0]
            pid = self._person_row(cur, cid, person)[0]
            clash = cur.execute(self._q("SELECT id FROM {s}.persons WHERE collection_id=%s AND name=%s AND id<>%s"),
                                (cid, new_name, pid)).fetchone()
            if clash:
                raise ConflictError(f"person {new_name!r} already exists in {collection!r}")
            cur.execute(self._q("UPDATE {s}.persons SET name=%s WHERE id=%s"), (new_name, pid))
            return self._person(cur, self._person_row(cur, cid, pid))

    def _delete_person(self, collection: str, person: str | int) -> int:
        with self._tx() as cur:
            cid = self._collection_row(cur, collection)[0]
            pid = self._person_row(cur, cid, person)[0]
            cur.execute(self._q("SELECT 1 FROM {s}.persons WHERE id=%s FOR UPDATE"), (pid,))  # waits for writers
            n = cur.execute(self._q("SELECT COUNT(*) FROM {s}.samples WHERE person_id=%s"), (pid,)).fetchone()[0]
            cur.execute(self._q("DELETE FROM {s}.persons WHERE id=%s"), (pid,))
            return int(n)

    # -- samples --------------------------------------------------------------------------------
    def has_image(self, collection: str, image_sha256: str, face_index: int | None = None) -> bool:
        with self._tx() as cur:
            cid = self._collection_row(cur, collection)[0]
            if face_index is None:
                q = "SELECT 1 FROM {s}.samples WHERE collection_id=%s AND image_sha256=%s LIMIT 1"
                return cur.execute(self._q(q), (cid, image_sha256)).fetchone() is not None
            q = "SELECT 1 FROM {s}.samples WHERE collection_id=%s AND image_sha256=%s AND face_index=%s"
            return cur.execute(self._q(q), (cid, image_sha256, face_index)).fetchone() is not None

    def _add_samples(self, collection: str, samples: list[NewSample]) -> list[int | None]:
        """One transaction: the persons checked (locked FOR KEY SHARE) or created in bulk, the sample rows and the
        vectors by binary ``COPY`` (:mod:`.pgsql`), one template statement for every touched person."""
        ids: list[int | None] = [None] * len(samples)
        with self._tx() as cur:
            row = self._collection_row(cur, collection)
            cid, dim, storage = row[0], row[4], row[7]
            vecs = check_vectors(samples, dim, collection)
            pids, new_persons = self._sample_persons(cur, cid, collection, samples)
            first: dict[tuple[str, int], int] = {}  # a batch holding one face twice stores it once
            for i, s in enumerate(samples):
                first.setdefault((s.image_sha256, int(s.face_index)), i)
            keep = list(first.values())
            got = insert_samples(cur, self.schema, cid, [samples[i] for i in keep], pids[keep]) if keep else []
            if not got:
                return ids
            rows = np.array([first[(h, f)] for _, h, f in got], np.int64)  # batch positions of the stored samples
            sids = np.array([g[0] for g in got], np.int64)
            for i, sid in zip(rows.tolist(), sids.tolist(), strict=True):
                ids[i] = sid
            quality = np.array([samples[i].quality for i in rows.tolist()], np.float32)
            if not np.array_equal(rows, np.arange(len(samples))):  # (else no copy: every sample was stored)
                pids, vecs = pids[rows], vecs[rows]
            rebuild = self._drop_index_if_empty(cur, cid) if len(got) >= BULK_ROWS else None
            copy_vectors(cur, self._emb(cid), sids, pids, vecs, storage)
            if rebuild is not None:
                log.info("building HNSW index for collection %d after a bulk load of %d samples", cid, len(got))
                cur.execute(rebuild)
                self._indexed.add(cid)
            fresh = np.isin(pids, np.fromiter(new_persons, np.int64, len(new_persons)))  # all their faces are here
            mine = slice(None) if fresh.all() else fresh
            touched = np.unique(pids)
            self._update_templates(cur, cid, touched[~np.isin(touched, pids[mine])].tolist(),
                                   templates_of(vecs[mine], quality[mine], pids[mine]))
            self._maybe_index(cur, cid, storage, len(got))
        return ids

    def _sample_persons(self, cur: Any, cid: int, collection: str, samples: list[NewSample]) -> tuple[np.ndarray,
                                                                                                     set[int]]:
        """Inside the storing transaction: each sample's person id (and which persons were created here). A person
        given by id is locked FOR KEY SHARE, so a concurrent delete waits for this transaction or, having committed
        first, makes it fail (nothing stored); a named person is found (locked the same way) or created."""
        by_id = list(dict.fromkeys(s.person_id for s in samples if s.person_id is not None))
        if by_id:
            ok = {int(r[0]) for r in cur.execute(self._q(
                "SELECT id FROM {s}.persons WHERE collection_id=%s AND id = ANY(%s) ORDER BY id FOR KEY SHARE"),
                (cid, by_id)).fetchall()}
            for p in by_id:
                if p not in ok:
                    raise NotFoundError(f"person {p} does not exist in collection {collection!r}; nothing stored")
        names: dict[str, dict[str, Any] | None] = {}
        for s in samples:
            if s.person_id is None and s.person not in names:
                names[s.person] = s.metadata
        found, new = self._ensure_persons(cur, cid, names)
        pids = np.fromiter((found[s.person] if s.person_id is None else s.person_id for s in samples), np.int64,
                           len(samples))
        return pids, new

    def _ensure_persons(self, cur: Any, cid: int, names: dict[str, dict[str, Any] | None]) -> tuple[dict[str, int],
                                                                                                  set[int]]:
        """The ids of these names (locked FOR KEY SHARE), creating the missing ones in name order: every writer takes
        the unique index's entries in the same order, so two loads of overlapping people wait in line, never in a
        cycle (PostgreSQL would cancel one as a deadlock)."""
        found: dict[str, int] = {}
        new: set[int] = set()
        todo = list(names)
        while todo:  # (a concurrent writer may create or delete the same name between the two statements)
            found.update((r[1], int(r[0])) for r in cur.execute(self._q(
                "SELECT id, name FROM {s}.persons WHERE collection_id=%s AND name = ANY(%s) FOR KEY SHARE"),
                (cid, todo)).fetchall())
            todo = [n for n in todo if n not in found]
            if not todo:
                break
            for pid, name in cur.execute(self._q(
                    "INSERT INTO {s}.persons(collection_id, name, metadata) SELECT %s, u.n, u.m::jsonb "
                    "FROM unnest(%s::text[], %s::text[]) AS u(n, m) ORDER BY u.n COLLATE \"C\" "
                    "ON CONFLICT DO NOTHING RETURNING id, name"),
                    (cid, todo, [json.dumps(names[n] or {}) for n in todo])).fetchall():
                found[name] = int(pid)
                new.add(int(pid))
            todo = [n for n in todo if n not in found]
        return found, new

    def _drop_index_if_empty(self, cur: Any, cid: int) -> str | None:
        """Before a bulk load into an empty collection: drop its HNSW index (built again after the load, faster than
        inserting into it row by row) → the statement that re-creates it, or None."""
        row = cur.execute(f"SELECT indexdef FROM pg_indexes WHERE schemaname=%s AND indexname=%s "
                          f"AND NOT EXISTS (SELECT 1 FROM {self._emb(cid)})",
                          (self.schema, f"emb_{int(cid)}_hnsw")).fetchone()
        if row is None:
            return None
        cur.execute(f"DROP INDEX {self.schema}.emb_{int(cid)}_hnsw")
        return str(row[0])

    def _maybe_index(self, cur: Any, cid: int, storage: str, added: int) -> None:
        """Build the HNSW index once the collection holds ``index_min_rows`` samples. The row count is this
        handle's estimate (its last count plus what it stored since); the table is counted only when that estimate
        reaches the threshold, or on the first batch."""
        if self.index_min_rows <= 0 or cid in self._indexed:
            return
        seen = self._rows.get(cid)
        n = seen + added if seen is not None else None
        if n is None or n >= self.index_min_rows:
            n = int(cur.execute(f"SELECT COUNT(*) FROM {self._emb(cid)}").fetchone()[0])
            if n >= self.index_min_rows:
                log.info("building HNSW index for collection %d (%d samples)", cid, n)
                self._create_hnsw(cur, cid, storage)
                self._indexed.add(cid)
        self._rows[cid] = n

    def _update_templates(self, cur: Any, cid: int, stored: list[int],
                          fresh: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> None:
        """Recompute in one statement the templates of the ``stored`` persons (from their vectors in the database)
        and write them with the ``fresh`` ones (persons created in this transaction: computed from the batch)."""
        parts = [] if fresh is None else [fresh]
        rows = cur.execute(f"SELECT e.person_id, e.embedding, s.quality FROM {self._emb(cid)} e JOIN {self.schema}."
                           "samples s ON s.id = e.sample_id WHERE e.person_id = ANY(%s)", (stored,),
                           binary=True).fetchall() if stored else []
        if rows:
            parts.append(templates_of(np.stack([to_numpy(r[1]) for r in rows]), np.array([r[2] for r in rows]),
                                      np.array([r[0] for r in rows], np.int64)))
        gone = sorted(set(stored) - {int(r[0]) for r in rows})
        if gone:
            cur.execute(self._q("DELETE FROM {s}.templates WHERE person_id = ANY(%s)"), (gone,))
        if sum(len(p[0]) for p in parts):
            write_templates(cur, self.schema, *(np.concatenate([p[i] for p in parts]) for i in range(3)))

    def _list_samples(self, collection: str, person: str | int | None) -> list[Sample]:
        with self._tx() as cur:
            cid = self._collection_row(cur, collection)[0]
            q = ("SELECT id, person_id, image_sha256, source, box, quality, yaw, created_at FROM {s}.samples "
                 "WHERE collection_id=%s")
            args: tuple[Any, ...] = (cid,)
            if person is not None:
                q += " AND person_id=%s"
                args = (cid, self._person_row(cur, cid, person)[0])
            rows = cur.execute(self._q(q + " ORDER BY id"), args).fetchall()
            return [Sample(r[0], r[1], r[2], r[3], list(r[4]), r[5], r[6], _ts(r[7])) for r in rows]

    def _delete_sample(self, collection: str, sample_id: int) -> None:
        with self._tx() as cur:
            cid = self._collection_row(cur, collection)[0]
            row = cur.execute(self._q("DELETE FROM {s}.samples WHERE id=%s AND collection_id=%s RETURNING person_id"),
                              (sample_id, cid)).fetchone()
            if row is None:
                raise NotFoundError(f"sample {sample_id} does not exist in collection {collection!r}")
            self._update_templates(cur, cid, [int(row[0])])

    def _move_samples(self, collection: str, sample_ids: list[int], person: str | int) -> Person:
        with self._tx() as cur:
            cid = self._collection_row(cur, collection)[0]
            if isinstance(person, str):
                pid = self._ensure_persons(cur, cid, {person: None})[0][person]
            else:
                pid = self._person_row(cur, cid, person)[0]
            old = cur.execute(self._q("SELECT DISTINCT person_id FROM {s}.samples WHERE collection_id=%s "
                                      "AND id = ANY(%s)"), (cid, list(sample_ids))).fetchall()
            cur.execute(self._q("UPDATE {s}.samples SET person_id=%s WHERE collection_id=%s AND id = ANY(%s)"),
                        (pid, cid, list(sample_ids)))
            cur.execute(f"UPDATE {self._emb(cid)} SET person_id=%s WHERE sample_id = ANY(%s)", (pid, list(sample_ids)))
            self._update_templates(cur, cid, sorted({int(p) for (p,) in old} | {pid}))
            return self._person(cur, self._person_row(cur, cid, pid))

    def _vectors_where(self, cur: Any, cid: int, where: str, args: tuple[Any, ...]) -> list[tuple[int, np.ndarray]]:
        rows = cur.execute(f"SELECT sample_id, embedding FROM {self._emb(cid)} WHERE {where} ORDER BY sample_id",
                           args).fetchall()
        return [(int(r[0]), to_numpy(r[1])) for r in rows]

    def _sample_vectors(self, collection: str, sample_ids: list[int]) -> np.ndarray:
        with self._tx() as cur:
            row = self._collection_row(cur, collection)
            got = dict(self._vectors_where(cur, row[0], "sample_id = ANY(%s)", (list(sample_ids),)))
            missing = [s for s in sample_ids if s not in got]
            if missing:
                raise NotFoundError(f"sample {missing[0]} does not exist in collection {collection!r}")
            return np.stack([got[s] for s in sample_ids]) if sample_ids else np.zeros((0, row[4]), np.float32)

    def _person_vectors(self, collection: str, person: str | int) -> np.ndarray:
        with self._tx() as cur:
            row = self._collection_row(cur, collection)
            pid = self._person_row(cur, row[0], person)[0]
            got = self._vectors_where(cur, row[0], "person_id = %s", (pid,))
            return np.stack([v for _, v in got]) if got else np.zeros((0, row[4]), np.float32)

    def _person_template(self, collection: str, person: str | int) -> np.ndarray:
        with self._tx() as cur:
            cid = self._collection_row(cur, collection)[0]
            pid = self._person_row(cur, cid, person)[0]
            row = cur.execute(self._q("SELECT embedding FROM {s}.templates WHERE person_id=%s"), (pid,)).fetchone()
            if row is None:
                raise NotFoundError(f"person {person!r} has no samples")
            return np.frombuffer(row[0], np.float32).copy()

    def sample_meta(self, collection: str, sample_ids: list[int]) -> dict[int, dict[str, float]]:
        with self._tx() as cur:
            cid = self._collection_row(cur, collection)[0]
            rows = cur.execute(self._q("SELECT id, quality, yaw FROM {s}.samples WHERE collection_id=%s "
                                       "AND id = ANY(%s)"), (cid, list(sample_ids))).fetchall()
            return {int(r[0]): {"quality": float(r[1]), "yaw": float(r[2])} for r in rows}

    # -- search ---------------------------------------------------------------------------------
    def _cached(self, collection: str, fresh: bool = False) -> CollectionRow:
        """The collection's row as search needs it, kept ``COLLECTION_TTL_S`` (and dropped by this handle's
        ``update_settings`` / ``delete_collection``), so a search is one round trip."""
        c = self._colls.get(collection)
        if c is None or fresh or time.monotonic() - c.at > COLLECTION_TTL_S:
            row = self._db.execute(self._q(
                f"SELECT {self._COLS}, EXISTS(SELECT 1 FROM pg_indexes WHERE schemaname=%s "
                "AND indexname='emb_' || c.id || '_hnsw') FROM {s}.collections c WHERE name=%s"),
                (self.schema, collection)).fetchone()
            if row is None:
                raise NotFoundError(f"collection {collection!r} does not exist")
            settings = dict(row[5])
            c = self._colls[collection] = CollectionRow(
                int(row[0]), int(row[4]), str(row[7]), int(settings.get("index_ef", self.ef_search)),
                str(settings.get("index_iterative_scan", "relaxed_order")), bool(row[8]), time.monotonic())
        return c

    def search(self, collection: str, queries: np.ndarray, k: int = 1) -> list[list[SearchHit]]:
        """One statement per batch of queries (autocommit: no BEGIN/COMMIT), see :meth:`_search_sql`; a query
        whose window held fewer than ``k`` persons is asked again with a 4x window."""
        with self._lock:
            c = self._cached(collection)
            try:
                return self._search(c, queries, k)
            except self._psycopg.errors.UndefinedTable:  # deleted (and maybe re-created) by another client
                return self._search(self._cached(collection, fresh=True), queries, k)

    def _search(self, c: CollectionRow, queries: np.ndarray, k: int) -> list[list[SearchHit]]:
        q = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, c.dim)
        m = first_window(k)
        ef = str(min(1000, max(c.ef_search, m)))
        out: list[list[tuple[int, float, int]]] = [[] for _ in range(len(q))]
        names: dict[int, str] = {}
        todo = list(range(len(q)))
        while todo:
            window: dict[int, list[tuple[int, int, float]]] = {i: [] for i in todo}
            params = (ef, c.iterative, list(q[todo])) if c.indexed or c.id in self._indexed else (list(q[todo]),)
            sql = search_sql(self.schema, self._emb(c.id), c.storage, m, len(params) > 1)
            for qi, sid, pid, d, name in self._db.execute(sql, params, binary=True).fetchall():
                window[todo[qi - 1]].append((sid, pid, 1.0 - d))
                names[pid] = "?" if name is None else name
            for i, rows in window.items():
                out[i] = first_k_persons(rows, k)
            todo = [i for i, rows in window.items() if len(out[i]) < k and len(rows) >= m]
            m *= 4
        return [[SearchHit(pid, names.get(pid, "?"), score, sid) for pid, score, sid in hits] for hits in out]

    # -- export ---------------------------------------------------------------------------------
    def export_rows(self, collection: str) -> Iterator[ExportedPerson]:
        with self._tx() as cur:
            cid = self._collection_row(cur, collection)[0]
            persons = cur.execute(self._q("SELECT id, name, metadata FROM {s}.persons WHERE collection_id=%s "
                                          "ORDER BY name"), (cid,)).fetchall()
            docs: list[ExportedPerson] = []
            for pid, name, meta in persons:
                samples = cur.execute(
                    f"SELECT s.image_sha256, s.face_index, s.source, s.box, s.landmarks, s.quality, s.yaw, s.model, "
                    f"e.embedding FROM {self.schema}.samples s JOIN {self._emb(cid)} e ON e.sample_id = s.id "
                    "WHERE s.person_id=%s ORDER BY s.id", (pid,)).fetchall()
                docs.append({
                    "name": name, "metadata": stored_metadata(meta),
                    "samples": [{"image_sha256": s[0], "face_index": s[1], "source": s[2], "box": list(s[3]),
                                 "landmarks": list(s[4]), "quality": s[5], "yaw": s[6], "model": s[7],
                                 "embedding": to_numpy(s[8]).tolist()} for s in samples],
                })
        yield from docs
