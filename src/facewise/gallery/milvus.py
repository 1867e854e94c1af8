"""Milvus gallery: vectors searched in Milvus, persons and samples in a small SQLite side file.

Milvus is a vector engine, not a transactional database: it has no unique constraints (the
duplicate-image rule), no joins and no multi-row transactions. So the facts that need them live in
a side :class:`~facewise.gallery.SQLiteStore` (collections, persons, samples with their metadata and a
copy of each vector, templates: the source of truth), and Milvus holds one collection per facewise
collection with ``sample_id`` (primary key), ``person_id`` and the ``embedding`` under an HNSW
(``COSINE``) index. New samples go to Milvus inside the side file's transaction, so a failed Milvus write
stores nothing; deletes go to the side file, then to Milvus. :meth:`MilvusStore.sync` re-creates missing or
stray Milvus rows from the side file (after a crash between the two writes, or to move to another Milvus).
The rules (identity, names, vectors, templates) are :mod:`facewise.gallery.base`'s, applied once.

Only the ``MilvusClient`` calls that both Milvus Lite (``milvus-lite server``) and a Milvus
standalone or cluster serve are used; ``uri``/``token`` select the server (see docs/SCALE.md).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import numpy as np

from facewise.errors import FacewiseError, install_hint
from facewise.gallery.base import StoreBase, first_k_persons, first_window
from facewise.gallery.sqlite import Added, SQLiteStore
from facewise.gallery.store import CollectionInfo, ExportedPerson, NewSample, SearchHit
from facewise.types import Person, Sample

log = logging.getLogger(__name__)

_MAX_LIMIT = 16_384  # Milvus' largest top-k
_BATCH = 2_000  # rows per insert request (keeps gRPC messages small)


class MilvusStore(StoreBase):
    """A gallery whose vector search runs in Milvus.

    ``uri``: ``http://host:19530`` (standalone, cluster, or ``milvus-lite server``); ``token``:
    ``user:password`` or an API key. ``meta``: the side SQLite file (persons, samples). ``prefix``
    names the Milvus collections ``<prefix>_<id>`` so several galleries can share one Milvus.
    ``index_params``: the HNSW settings; ``ef``: the search breadth.
    """

    schemes: ClassVar[tuple[str, ...]] = ("milvus", "milvus+http", "milvus+https")

    @classmethod
    def from_url(cls, url: str) -> MilvusStore:
        """``milvus://host:port?meta=side.db&token=…&prefix=…`` (``milvus+https://`` for TLS)."""
        parts = urlsplit(url)
        first = {k: v[0] for k, v in parse_qs(parts.query).items()}
        scheme = "https" if parts.scheme.endswith("https") else "http"
        return cls(f"{scheme}://{parts.netloc}", meta=first.get("meta", "facewise-milvus.db"),
                   token=first.get("token", ""), prefix=first.get("prefix", "facewise"))

    # (the side file may be encrypted with FACEWISE_KEY, but Milvus holds plaintext vectors: no "encryption")
    capabilities: ClassVar[frozenset[str]] = frozenset({"move_samples", "ann", "sync"})

    def __init__(self, uri: str, meta: str | os.PathLike[str] = "facewise-milvus.db", *, token: str = "",
                 prefix: str = "facewise", index_params: dict[str, Any] | None = None, ef: int = 128) -> None:
        try:
            from pymilvus import MilvusClient
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise FacewiseError(f"MilvusStore needs pymilvus: {install_hint('milvus')}") from exc
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,100}", prefix):
            raise FacewiseError(f"prefix {prefix!r}: letters, digits and _ only")
        self.uri = uri
        self.prefix = prefix
        self.ef = ef
        self.index_params = index_params or {"index_type": "HNSW", "M": 16, "efConstruction": 128}
        try:
            self.client = MilvusClient(uri=uri, token=token)
        except Exception as exc:
            raise FacewiseError(f"cannot connect to Milvus at {uri} ({exc})") from None
        self.meta = SQLiteStore(Path(meta) if str(meta) != ":memory:" else ":memory:")

    # -- plumbing -----------------------------------------------------------------------------
    def _cid(self, collection: str) -> tuple[int, int]:
        return self.meta.collection_key(collection)

    def milvus_name(self, collection: str) -> str:
        return f"{self.prefix}_{self._cid(collection)[0]}"

    def _create(self, name: str, dim: int) -> None:
        from pymilvus import DataType, MilvusClient

        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("sample_id", DataType.INT64, is_primary=True)
        schema.add_field("person_id", DataType.INT64)
        schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=dim)
        ip = self.client.prepare_index_params()
        params = {k: v for k, v in self.index_params.items() if k != "index_type"}
        ip.add_index(field_name="embedding", index_type=self.index_params.get("index_type", "HNSW"),
                     metric_type="COSINE", params=params)
        self.client.create_collection(name, schema=schema, index_params=ip, consistency_level="Strong")

    def _insert(self, name: str, sample_ids: list[int], person_ids: list[int], vectors: np.ndarray) -> None:
        for a in range(0, len(sample_ids), _BATCH):
            rows = [{"sample_id": int(s), "person_id": int(p), "embedding": v}
                    for s, p, v in zip(sample_ids[a:a + _BATCH], person_ids[a:a + _BATCH], vectors[a:a + _BATCH],
                                       strict=True)]
            self.client.insert(name, rows)

    def _forget(self, collection: str, **which: Any) -> None:
        """Delete Milvus rows after the side file's delete committed. If Milvus fails, the delete still stands:
        search ignores rows of persons the side file no longer has, and :meth:`sync` removes them."""
        try:
            self.client.delete(self.milvus_name(collection), **which)
        except Exception as exc:
            log.error("milvus delete in %r failed (%s); `sync` removes the stray rows", collection, exc)

    def close(self) -> None:
        self.meta.close()
        try:
            self.client.close()
        except Exception:  # pragma: no cover - best effort
            pass

    # -- collections ----------------------------------------------------------------------------
    def ensure_collection(self, name: str, profile: str, signature: str, dim: int) -> CollectionInfo:
        info = self.meta.ensure_collection(name, profile, signature, dim)
        mname = self.milvus_name(name)
        if not self.client.has_collection(mname):
            self._create(mname, dim)
            if info.samples:
                self.sync(name)
        return info

    def get_collection(self, name: str) -> CollectionInfo:
        return self.meta.get_collection(name)

    def list_collections(self) -> list[CollectionInfo]:
        return self.meta.list_collections()

    def update_settings(self, collection: str, **settings: Any) -> CollectionInfo:
        return self.meta.update_settings(collection, **settings)

    def delete_collection(self, name: str) -> None:
        mname = self.milvus_name(name)
        if self.client.has_collection(mname):
            self.client.drop_collection(mname)
        self.meta.delete_collection(name)

    def sync(self, collection: str) -> tuple[int, int]:
        """Make Milvus hold exactly the side file's samples; returns (rows added, rows removed)."""
        mname = self.milvus_name(collection)
        dim = self._cid(collection)[1]
        if not self.client.has_collection(mname):
            self._create(mname, dim)
        want = self.meta.sample_persons(collection)
        have: dict[int, int] = {}
        it = self.client.query_iterator(mname, batch_size=4096, filter="sample_id >= 0",
                                        output_fields=["sample_id", "person_id"])
        try:
            while batch := it.next():
                have.update({int(r["sample_id"]): int(r["person_id"]) for r in batch})
        finally:
            it.close()
        stray = [s for s, p in have.items() if want.get(s) != p]
        if stray:
            self.client.delete(mname, ids=stray)
        missing = [s for s, p in want.items() if have.get(s) != p]
        if missing:
            self._insert(mname, missing, [want[s] for s in missing], self.meta.sample_vectors(collection, missing))
        log.info("milvus sync of %r: %d added, %d removed", collection, len(missing), len(stray))
        return len(missing), len(stray) - len(set(stray) & set(missing))

    def count(self, collection: str) -> int:
        """Rows in the Milvus collection (should equal the side file's samples)."""
        res = self.client.query(self.milvus_name(collection), filter="", output_fields=["count(*)"])
        return int(res[0]["count(*)"])

    # -- persons --------------------------------------------------------------------------------
    def _add_person(self, collection: str, name: str, metadata: dict[str, Any]) -> Person:
        return self.meta.add_person(collection, name, metadata)

    def _get_person(self, collection: str, person: str | int) -> Person:
        return self.meta.get_person(collection, person)

    def list_persons(self, collection: str, offset: int = 0, limit: int | None = None) -> list[Person]:
        return self.meta.list_persons(collection, offset, limit)

    def _rename_person(self, collection: str, person: str | int, new_name: str) -> Person:
        return self.meta.rename_person(collection, person, new_name)  # Milvus holds ids only

    def _delete_person(self, collection: str, person: str | int) -> int:
        pid = self.meta.get_person(collection, person).id
        n = self.meta.delete_person(collection, pid)
        self._forget(collection, filter=f"person_id == {int(pid)}")
        return n

    # -- samples --------------------------------------------------------------------------------
    def has_image(self, collection: str, image_sha256: str, face_index: int | None = None) -> bool:
        return self.meta.has_image(collection, image_sha256, face_index)

    def _add_samples(self, collection: str, samples: list[NewSample]) -> list[int | None]:
        mname = self.milvus_name(collection)

        def to_milvus(added: Added) -> None:  # inside the side file's transaction: failing here stores nothing
            sids = [a[0] for a in added]
            try:
                self._insert(mname, sids, [a[1] for a in added], np.stack([a[2] for a in added]))
            except Exception as exc:
                log.error("milvus insert into %r failed (%s); no sample stored", collection, exc)
                try:
                    self.client.delete(mname, ids=sids)  # rows of batches that went in before the failure
                except Exception:  # pragma: no cover - best effort; sync() removes strays
                    log.warning("stray Milvus rows in %r may remain; `sync` removes them", mname)
                raise FacewiseError(f"Milvus rejected the samples ({exc}); no sample was stored") from None

        return self.meta.add_samples_then(collection, samples, to_milvus)

    def _list_samples(self, collection: str, person: str | int | None) -> list[Sample]:
        return self.meta.list_samples(collection, person)

    def _delete_sample(self, collection: str, sample_id: int) -> None:
        self.meta.delete_sample(collection, sample_id)
        self._forget(collection, ids=[int(sample_id)])

    def _move_samples(self, collection: str, sample_ids: list[int], person: str | int) -> Person:
        p = self.meta.move_samples(collection, sample_ids, person)
        if sample_ids:
            vecs = self.meta.sample_vectors(collection, sample_ids)
            rows = [{"sample_id": int(s), "person_id": int(p.id), "embedding": v}
                    for s, v in zip(sample_ids, vecs, strict=True)]
            self.client.upsert(self.milvus_name(collection), rows)
        return p

    def _sample_vectors(self, collection: str, sample_ids: list[int]) -> np.ndarray:
        return self.meta.sample_vectors(collection, sample_ids)

    def sample_meta(self, collection: str, sample_ids: list[int]) -> dict[int, dict[str, float]]:
        return self.meta.sample_meta(collection, sample_ids)

    def _person_template(self, collection: str, person: str | int) -> np.ndarray:
        return self.meta.person_template(collection, person)

    def _person_vectors(self, collection: str, person: str | int) -> np.ndarray:
        return self.meta.person_vectors(collection, person)

    def export_rows(self, collection: str) -> Iterator[ExportedPerson]:
        return self.meta.export_rows(collection)

    # -- search ---------------------------------------------------------------------------------
    def search(self, collection: str, queries: np.ndarray, k: int = 1) -> list[list[SearchHit]]:
        dim = self._cid(collection)[1]
        q = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, dim)
        if len(q) == 0:
            return []
        mname = self.milvus_name(collection)
        m = min(_MAX_LIMIT, first_window(k))
        out: list[list[tuple[int, float, int]]] = [[] for _ in range(len(q))]
        todo = list(range(len(q)))
        while todo:
            res = self.client.search(mname, data=[q[i] for i in todo], anns_field="embedding", limit=m,
                                     output_fields=["person_id"], consistency_level="Session",  # read-your-writes
                                     search_params={"metric_type": "COSINE", "params": {"ef": max(self.ef, m)}})
            again = []
            for i, rows in zip(todo, res, strict=True):
                hits = first_k_persons(((int(r["id"] if "id" in r else r["sample_id"]), int(r["entity"]["person_id"]),
                                          float(r["distance"])) for r in rows), k)
                out[i] = hits
                if len(hits) < k and len(rows) == m and m < _MAX_LIMIT:
                    again.append(i)
            todo, m = again, min(_MAX_LIMIT, m * 4)
        names = self.meta.person_names(collection, sorted({p for hits in out for p, _, _ in hits}))
        # the side file is the truth: a row Milvus still holds for a deleted person (its delete failed after the side
        # file's commit; `sync` removes it) names nobody
        return [[SearchHit(pid, names[pid], score, sid) for pid, score, sid in hits if pid in names] for hits in out]

