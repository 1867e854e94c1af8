"""A toy gallery store, whole in one file: what "a new store is one file plus one registry line" means.

``ToyStore`` keeps its gallery in this process's memory. It subclasses :class:`~facewise.gallery.base.StoreBase`
(which applies the identity, name, vector and template rules before calling its hooks), declares its URL scheme
``toy`` and its capabilities, and builds itself with :meth:`ToyStore.from_url`. The registry line is
``facewise.gallery.open.register("toy_store:ToyStore")`` (or the same string in ``gallery.open.STORES``); then
``open_store("toy://name")`` opens it and tests/test_store_contract.py runs the whole contract over it.
Handles opened with the same ``toy://name`` share one gallery, as two processes share a SQLite file.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

import numpy as np

from facewise.errors import ConflictError, NotFoundError, ProfileMismatchError
from facewise.gallery.base import StoreBase, check_vectors, first_k_persons, template_of
from facewise.gallery.store import CollectionInfo, ExportedPerson, NewSample, SearchHit
from facewise.types import Person, Sample


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class _Person:
    collection: str
    name: str
    metadata: dict[str, Any]
    created_at: str


@dataclass
class _Sample:
    person_id: int
    collection: str
    sample: NewSample
    vector: np.ndarray
    created_at: str


@dataclass
class _Gallery:
    lock: threading.RLock = field(default_factory=threading.RLock)
    collections: dict[str, CollectionInfo] = field(default_factory=dict)  # (counts filled in when read)
    persons: dict[int, _Person] = field(default_factory=dict)
    samples: dict[int, _Sample] = field(default_factory=dict)
    last_person: int = 0  # ids are never reused
    last_sample: int = 0


_GALLERIES: dict[str, _Gallery] = {}
_GALLERIES_LOCK = threading.Lock()


class ToyStore(StoreBase):
    """A gallery in memory, shared by every handle of one ``toy://name``."""

    capabilities: ClassVar[frozenset[str]] = frozenset({"move_samples"})
    schemes: ClassVar[tuple[str, ...]] = ("toy",)

    @classmethod
    def from_url(cls, url: str) -> ToyStore:
        parts = urlsplit(url)
        return cls(parts.netloc + parts.path)

    def __init__(self, name: str) -> None:
        self.name = name
        with _GALLERIES_LOCK:
            self._g = _GALLERIES.setdefault(name, _Gallery())

    def close(self) -> None:
        pass

    # -- collections ------------------------------------------------------------------------------
    def _info(self, name: str) -> CollectionInfo:
        info = self._g.collections.get(name)
        if info is None:
            raise NotFoundError(f"collection {name!r} does not exist")
        return replace(info, persons=sum(p.collection == name for p in self._g.persons.values()),
                       samples=sum(s.collection == name for s in self._g.samples.values()))

    def ensure_collection(self, name: str, profile: str, signature: str, dim: int) -> CollectionInfo:
        with self._g.lock:
            info = self._g.collections.setdefault(name, CollectionInfo(name, profile, signature, dim, {}, _now()))
            if info.signature != signature or info.dim != dim:
                raise ProfileMismatchError(f"collection {name!r} holds {info.dim}-d vectors of profile "
                                           f"{info.profile!r}; it cannot be used with profile {profile!r}")
            return self._info(name)

    def get_collection(self, name: str) -> CollectionInfo:
        with self._g.lock:
            return self._info(name)

    def list_collections(self) -> list[CollectionInfo]:
        with self._g.lock:
            return [self._info(n) for n in sorted(self._g.collections)]

    def update_settings(self, collection: str, **settings: Any) -> CollectionInfo:
        with self._g.lock:
            info = self._info(collection)
            merged = {k: v for k, v in {**info.settings, **settings}.items() if v is not None}
            self._g.collections[collection] = replace(info, settings=merged)
            return self._info(collection)

    def delete_collection(self, name: str) -> None:
        with self._g.lock:
            self._info(name)
            del self._g.collections[name]
            self._g.persons = {i: p for i, p in self._g.persons.items() if p.collection != name}
            self._g.samples = {i: s for i, s in self._g.samples.items() if s.collection != name}

    # -- persons ----------------------------------------------------------------------------------
    def _pid(self, collection: str, person: int | str) -> int:
        self._info(collection)
        for pid, p in self._g.persons.items():
            if p.collection == collection and (pid == person if isinstance(person, int) else p.name == person):
                return pid
        raise NotFoundError(f"person {person!r} does not exist in this collection")

    def _person(self, pid: int) -> Person:
        p = self._g.persons[pid]
        return Person(pid, p.name, p.metadata, sum(s.person_id == pid for s in self._g.samples.values()),
                      p.created_at)

    def _new_person(self, collection: str, name: str, metadata: dict[str, Any]) -> int:
        if any(p.collection == collection and p.name == name for p in self._g.persons.values()):
            raise ConflictError(f"person {name!r} already exists in {collection!r}")
        self._g.last_person += 1
        self._g.persons[self._g.last_person] = _Person(collection, name, metadata, _now())
        return self._g.last_person

    def _add_person(self, collection: str, name: str, metadata: dict[str, Any]) -> Person:
        with self._g.lock:
            self._info(collection)
            return self._person(self._new_person(collection, name, metadata))

    def _get_person(self, collection: str, person: int | str) -> Person:
        with self._g.lock:
            return self._person(self._pid(collection, person))

    def list_persons(self, collection: str, offset: int = 0, limit: int | None = None) -> list[Person]:
        with self._g.lock:
            self._info(collection)
            pids = sorted((p.name, i) for i, p in self._g.persons.items() if p.collection == collection)
            end = None if limit is None else offset + limit
            return [self._person(i) for _, i in pids[offset:end]]

    def _rename_person(self, collection: str, person: int | str, new_name: str) -> Person:
        with self._g.lock:
            pid = self._pid(collection, person)
            if any(p.collection == collection and p.name == new_name and i != pid
                   for i, p in self._g.persons.items()):
                raise ConflictError(f"person {new_name!r} already exists in {collection!r}")
            self._g.persons[pid].name = new_name
            return self._person(pid)

    def _delete_person(self, collection: str, person: int | str) -> int:
        with self._g.lock:
            pid = self._pid(collection, person)
            gone = [i for i, s in self._g.samples.items() if s.person_id == pid]
            for i in gone:
                del self._g.samples[i]
            del self._g.persons[pid]
            return len(gone)

    # -- samples ----------------------------------------------------------------------------------
    def has_image(self, collection: str, image_sha256: str, face_index: int | None = None) -> bool:
        with self._g.lock:
            self._info(collection)
            return any(s.collection == collection and s.sample.image_sha256 == image_sha256
                       and face_index in (None, s.sample.face_index) for s in self._g.samples.values())

    def _add_samples(self, collection: str, samples: list[NewSample]) -> list[int | None]:
        """All or nothing: every check runs before the first write."""
        with self._g.lock:
            vectors = check_vectors(samples, self._info(collection).dim, collection)
            for s in samples:
                if s.person_id is not None and self._g.persons.get(s.person_id, _Person("", "", {}, "")).collection \
                        != collection:
                    raise NotFoundError(f"person {s.person_id} does not exist in collection {collection!r}; "
                                        "nothing stored")
            seen = {(s.sample.image_sha256, s.sample.face_index) for s in self._g.samples.values()
                    if s.collection == collection}
            ids: list[int | None] = []
            for s, vec in zip(samples, vectors, strict=True):
                if (s.image_sha256, s.face_index) in seen:
                    ids.append(None)
                    continue
                seen.add((s.image_sha256, s.face_index))
                pid = s.person_id
                if pid is None:
                    found = [i for i, p in self._g.persons.items() if p.collection == collection and p.name == s.person]
                    pid = found[0] if found else self._new_person(collection, s.person, s.metadata or {})
                self._g.last_sample += 1
                self._g.samples[self._g.last_sample] = _Sample(pid, collection, s, vec.copy(), _now())
                ids.append(self._g.last_sample)
            return ids

    def _sid(self, collection: str, sample_id: int) -> _Sample:
        s = self._g.samples.get(sample_id)
        if s is None or s.collection != collection:
            raise NotFoundError(f"sample {sample_id} does not exist in collection {collection!r}")
        return s

    def _list_samples(self, collection: str, person: int | str | None) -> list[Sample]:
        with self._g.lock:
            self._info(collection)
            pid = None if person is None else self._pid(collection, person)
            return [Sample(i, s.person_id, s.sample.image_sha256, s.sample.source, list(s.sample.box),
                           s.sample.quality, s.sample.yaw, s.created_at)
                    for i, s in sorted(self._g.samples.items())
                    if s.collection == collection and pid in (None, s.person_id)]

    def _delete_sample(self, collection: str, sample_id: int) -> None:
        with self._g.lock:
            self._sid(collection, sample_id)
            del self._g.samples[sample_id]

    def _move_samples(self, collection: str, sample_ids: list[int], person: int | str) -> Person:
        with self._g.lock:
            try:
                pid = self._pid(collection, person)
            except NotFoundError:
                if not isinstance(person, str):
                    raise
                pid = self._new_person(collection, person, {})
            for i in sample_ids:
                s = self._g.samples.get(i)
                if s is not None and s.collection == collection:
                    s.person_id = pid
            return self._person(pid)

    def _sample_vectors(self, collection: str, sample_ids: list[int]) -> np.ndarray:
        with self._g.lock:
            dim = self._info(collection).dim
            return np.stack([self._sid(collection, i).vector for i in sample_ids]) if sample_ids else \
                np.zeros((0, dim), np.float32)

    def sample_meta(self, collection: str, sample_ids: list[int]) -> dict[int, dict[str, float]]:
        with self._g.lock:
            self._info(collection)
            return {i: {"quality": float(s.sample.quality), "yaw": float(s.sample.yaw)}
                    for i in sample_ids if (s := self._g.samples.get(i)) is not None and s.collection == collection}

    def _person_vectors(self, collection: str, person: int | str) -> np.ndarray:
        with self._g.lock:
            dim = self._info(collection).dim
            pid = self._pid(collection, person)
            rows = [s.vector for _, s in sorted(self._g.samples.items()) if s.person_id == pid]
            return np.stack(rows) if rows else np.zeros((0, dim), np.float32)

    def _person_template(self, collection: str, person: int | str) -> np.ndarray:
        with self._g.lock:
            pid = self._pid(collection, person)
            mine = [s for s in self._g.samples.values() if s.person_id == pid]
            if not mine:
                raise NotFoundError(f"person {person!r} has no samples")
            return template_of(np.stack([s.vector for s in mine]), [s.sample.quality for s in mine])

    # -- search, export ---------------------------------------------------------------------------
    def search(self, collection: str, queries: np.ndarray, k: int = 1) -> list[list[SearchHit]]:
        """Exact search: every sample scored, the best ``k`` distinct persons."""
        with self._g.lock:
            dim = self._info(collection).dim
            q = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, dim)
            rows = [(i, s.person_id, s.vector) for i, s in self._g.samples.items() if s.collection == collection]
            names = {i: p.name for i, p in self._g.persons.items()}
        if not rows:
            return [[] for _ in q]
        scores = q @ np.stack([v for _, _, v in rows]).T
        out = []
        for row in scores:
            best = np.argsort(-row, kind="stable")
            hits = first_k_persons(((rows[j][0], rows[j][1], float(row[j])) for j in best), k)
            out.append([SearchHit(pid, names[pid], score, sid) for pid, score, sid in hits])
        return out

    def export_rows(self, collection: str) -> Iterator[ExportedPerson]:
        with self._g.lock:
            persons = self.list_persons(collection)
            docs: list[ExportedPerson] = [
                {"name": p.name, "metadata": p.metadata,
                 "samples": [{"image_sha256": s.sample.image_sha256, "face_index": s.sample.face_index,
                              "source": s.sample.source, "box": list(s.sample.box),
                              "landmarks": [list(pt) for pt in s.sample.landmarks], "quality": s.sample.quality,
                              "yaw": s.sample.yaw, "model": s.sample.model, "embedding": s.vector.tolist()}
                             for _, s in sorted(self._g.samples.items()) if s.person_id == p.id]}
                for p in persons]
        yield from docs
