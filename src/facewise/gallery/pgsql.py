"""The PostgreSQL gallery's SQL: its schema (``MIGRATIONS``) and fast paths (used by
:class:`~facewise.gallery.pgvector.PgVectorStore`).

* :func:`copy_vectors`: vectors by binary ``COPY``, the rows encoded with numpy (no per-row Python);
* :func:`insert_samples`: a batch's sample rows by binary ``COPY`` and one ``INSERT … SELECT`` that skips stored
  faces;
* :func:`write_templates`: every touched person's template in one statement;
* :func:`search_sql`: a batch of queries in one statement (ANN or exact scan, each distance computed once, the
  person's name joined, the HNSW settings the statement's own).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from facewise.gallery.store import NewSample

SCHEMA_VERSION = 2  # MIGRATIONS run in order by PgVectorStore, each in its own transaction

MIGRATIONS: dict[int, str] = {
    1: """
CREATE TABLE {s}.collections(
  id BIGSERIAL PRIMARY KEY, name TEXT UNIQUE NOT NULL, profile TEXT NOT NULL, signature TEXT NOT NULL,
  dim INTEGER NOT NULL, settings JSONB NOT NULL DEFAULT '{{}}', storage TEXT NOT NULL DEFAULT 'vector',
  created_at TIMESTAMPTZ NOT NULL DEFAULT now());
CREATE TABLE {s}.persons(
  id BIGSERIAL PRIMARY KEY, collection_id BIGINT NOT NULL REFERENCES {s}.collections(id) ON DELETE CASCADE,
  name TEXT NOT NULL, metadata JSONB NOT NULL DEFAULT '{{}}', created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  UNIQUE(collection_id, name));
CREATE TABLE {s}.samples(
  id BIGSERIAL PRIMARY KEY, person_id BIGINT NOT NULL REFERENCES {s}.persons(id) ON DELETE CASCADE,
  collection_id BIGINT NOT NULL REFERENCES {s}.collections(id) ON DELETE CASCADE,
  image_sha256 TEXT NOT NULL, face_index INTEGER NOT NULL DEFAULT 0, source TEXT NOT NULL DEFAULT '',
  box JSONB NOT NULL DEFAULT '[]', landmarks JSONB NOT NULL DEFAULT '[]', quality REAL NOT NULL DEFAULT 1,
  yaw REAL NOT NULL DEFAULT 0, model TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  UNIQUE(collection_id, image_sha256, face_index));
CREATE INDEX samples_person ON {s}.samples(person_id);
CREATE TABLE {s}.templates(
  person_id BIGINT PRIMARY KEY REFERENCES {s}.persons(id) ON DELETE CASCADE,
  embedding BYTEA NOT NULL, n INTEGER NOT NULL, updated_at TIMESTAMPTZ NOT NULL DEFAULT now());
""",
    # vectors and templates kept in the row while it fits a page: a 512-d float32 is just over the 2 kB TOAST
    # threshold, and moving every vector out of line made COPY ~1.7x and the exact scan ~3x slower
    2: """
ALTER TABLE {s}.templates SET (toast_tuple_target = 8160);
DO $$ DECLARE r record; BEGIN
  FOR r IN SELECT id FROM {s}.collections LOOP
    IF to_regclass('{s}.emb_' || r.id) IS NOT NULL THEN
      EXECUTE format('ALTER TABLE {s}.emb_%s SET (toast_tuple_target = 8160)', r.id);
    END IF;
  END LOOP;
END $$;
""",
}

_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, header extension length
_COPY_CHUNK = 8192  # rows per buffer handed to COPY


@dataclass(frozen=True)
class CollectionRow:
    """What a search needs of a collection's row (cached by the store)."""

    id: int
    dim: int
    storage: str
    ef_search: int
    iterative: str
    indexed: bool
    at: float


def copy_vectors(cur: Any, table: str, sample_ids: np.ndarray, person_ids: np.ndarray, vectors: np.ndarray,
                 storage: str) -> None:
    """``COPY table(sample_id, person_id, embedding) FROM STDIN (FORMAT BINARY)``. Binary COPY is a header, then
    per row a field count and each field's length and big-endian value, then -1; pgvector's binary ``vector`` is
    ``int16 dim, int16 0, float32[dim]`` (``halfvec``: float16)."""
    n, dim = vectors.shape
    size = 2 if storage == "halfvec" else 4
    row = np.dtype([("fields", ">i2"), ("l1", ">i4"), ("sid", ">i8"), ("l2", ">i4"), ("pid", ">i8"), ("l3", ">i4"),
                    ("dim", ">u2"), ("unused", ">u2"), ("v", f">f{size}", (dim,))])
    with cur.copy(f"COPY {table}(sample_id, person_id, embedding) FROM STDIN (FORMAT BINARY)") as cp:
        cp.write(_COPY_HEADER)
        for a in range(0, n, _COPY_CHUNK):
            b = min(n, a + _COPY_CHUNK)
            rec = np.empty(b - a, row)
            rec["fields"], rec["l1"], rec["l2"], rec["l3"] = 3, 8, 8, 4 + size * dim
            rec["sid"], rec["pid"], rec["dim"], rec["unused"] = sample_ids[a:b], person_ids[a:b], dim, 0
            rec["v"] = vectors[a:b]
            cp.write(rec.tobytes())
        cp.write(b"\xff\xff")


def insert_samples(cur: Any, schema: str, cid: int, samples: list[NewSample], pids: np.ndarray) -> list[Any]:
    """The sample rows (each person's id in ``pids``): binary ``COPY`` into a temporary table (dropped at commit),
    then one ``INSERT … SELECT`` in key order that skips a face already stored. → ``(id, image_sha256,
    face_index)`` of the rows stored."""
    cur.execute("CREATE TEMP TABLE fw_new_samples(p BIGINT, h TEXT, f INT, src TEXT, b TEXT, l TEXT, q REAL, "
                "y REAL, m TEXT) ON COMMIT DROP")
    with cur.copy("COPY fw_new_samples FROM STDIN (FORMAT BINARY)") as cp:
        cp.set_types(["int8", "text", "int4", "text", "text", "text", "float4", "float4", "text"])
        for s, p in zip(samples, pids.tolist(), strict=True):
            cp.write_row((p, s.image_sha256, int(s.face_index), s.source, _json_list(s.box),
                          _json_list(s.landmarks), float(s.quality), float(s.yaw), s.model))
    return list(cur.execute(
        f"INSERT INTO {schema}.samples(person_id, collection_id, image_sha256, face_index, source, box, landmarks, "
        "quality, yaw, model) SELECT p, %s, h, f, src, b::jsonb, l::jsonb, q, y, m FROM fw_new_samples "
        "ORDER BY h COLLATE \"C\", f "  # key order: concurrent loads of the same faces queue instead of deadlocking
        "ON CONFLICT (collection_id, image_sha256, face_index) DO NOTHING RETURNING id, image_sha256, face_index",
        (cid,)).fetchall())


def write_templates(cur: Any, schema: str, pids: np.ndarray, temps: np.ndarray, counts: np.ndarray) -> None:
    """Upsert templates (float32 rows, stored as little-endian bytes) in one statement: one ``bytea`` holds them
    all, each row takes its slice."""
    order = np.argsort(pids)  # (rows locked in id order)
    size = temps.shape[1] * 4
    cur.execute(
        f"INSERT INTO {schema}.templates(person_id, embedding, n) SELECT u.p, "
        "substring(%b FROM ((u.o - 1) * %s + 1)::int FOR %s), u.n "
        "FROM unnest(%b::bigint[], %b::int[]) WITH ORDINALITY AS u(p, n, o) ON CONFLICT (person_id) "
        "DO UPDATE SET embedding=EXCLUDED.embedding, n=EXCLUDED.n, updated_at=now()",
        (np.ascontiguousarray(temps[order], "<f4").tobytes(), size, size, pids[order].tolist(),
         counts[order].tolist()))


def search_sql(schema: str, table: str, storage: str, m: int, hnsw: bool) -> str:
    """Each query's ``m`` nearest samples in ``table``, the distance computed once (ordered by its alias), with the
    person's name (looked up by key for each row found, whatever the planner's estimates). Parameters:
    ``(ef_search, iterative_scan, queries)`` with ``hnsw``, else ``(queries,)``.

    With an HNSW index, ``set_config(…, true)`` sets ``hnsw.ef_search`` and ``hnsw.iterative_scan`` for this
    statement only, in a one-time filter that runs before each index scan; without one the statement calls nothing
    parallel-unsafe, so PostgreSQL may scan in parallel."""
    cfg, gate = "", ""
    if hnsw:
        cfg = ("(SELECT set_config('hnsw.ef_search', %s, true) AS ef, "
               "set_config('hnsw.iterative_scan', %s, true) AS it) cfg CROSS JOIN ")
        gate = "WHERE cfg.ef IS NOT NULL AND cfg.it IS NOT NULL "
    cast = "::halfvec[]" if storage == "halfvec" else ""
    return (f"SELECT q.i, w.sample_id, w.person_id, w.d, (SELECT p.name FROM {schema}.persons p WHERE p.id = "
            f"w.person_id) FROM {cfg}unnest(%b::vector[]{cast}) WITH ORDINALITY AS q(v, i) CROSS JOIN LATERAL ("
            f"SELECT e.sample_id, e.person_id, e.embedding <=> q.v AS d FROM {table} e {gate}"
            f"ORDER BY d LIMIT {int(m)}) w ORDER BY q.i, w.d")


def _json_list(value: list[Any]) -> str:
    return json.dumps(value) if value else "[]"


def to_numpy(value: Any) -> np.ndarray:
    arr = value.to_numpy() if hasattr(value, "to_numpy") else np.asarray(value)
    return np.asarray(arr, np.float32)
