"""The one place that holds the gallery's rules; stores (sqlite, pgvector, milvus) add only storage hooks.

:class:`StoreBase` implements the public :class:`~facewise.gallery.store.Store` methods that carry a rule and
hands the checked values to a protected hook (``_add_samples``, ``_get_person``...):

* identity: a person reference is an id in 1..2**63-1 or a name; ``True``, 0, negatives, huge numbers and
  non-integers name nothing (:func:`~facewise.gallery.names.person_ref`); a sample given ``person_id`` is stored
  for that person only if it still exists, checked inside the storing transaction (the hook's job);
* names: :func:`~facewise.gallery.names.check_name` for every name that is stored;
* vectors: float32, finite, the collection's dimension (:func:`check_vector`);
* templates: the quality-weighted mean of a person's sample vectors, unit length (:func:`template_of`);
* search: the best ``k`` distinct persons from a widening window of nearest samples (:func:`first_k_persons`);
* capabilities: what a store does beyond the core is declared in ``capabilities``; asking a store for one it
  lacks raises :class:`~facewise.errors.CapabilityError` naming the store and the capability;
* addresses: the URL ``schemes`` a store opens, each read by its :meth:`StoreBase.from_url`
  (:mod:`facewise.gallery.open` derives its table from them).

Every storage hook and every method without a rule of its own is abstract: a store that misses one cannot be
made, and mypy checks each against the :class:`~facewise.gallery.store.Store` protocol StoreBase implements.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar, Self

import numpy as np

from facewise.errors import CapabilityError, FacewiseError, NotFoundError, ProfileMismatchError
from facewise.gallery.names import check_id, check_metadata, check_name, person_ref, person_target
from facewise.gallery.store import CollectionInfo, ExportedPerson, NewSample, SearchHit, Store
from facewise.types import Person, Sample

# Every capability a store may declare, and what it means.
CAPABILITIES: dict[str, str] = {
    "encryption": "seal vectors (and blobs kept beside them) at rest with the gallery key",
    "move_samples": "re-assign samples to another person in one transaction",
    "ann": "search through an approximate nearest-neighbour index",
    "integrity_check": "check the stored data's integrity",
    "sync": "re-create the vector engine's rows from the source of truth",
}

# The methods a store that declares a capability overrides (StoreBase's own refuse: the store lacks it).
CAPABILITY_METHODS: dict[str, tuple[str, ...]] = {
    "encryption": ("seal_blob", "unseal_blob"),
    "move_samples": ("_move_samples",),
    "integrity_check": ("integrity_check",),
    "sync": ("sync",),
}

MIN_WEIGHT = 0.05  # a sample's weight in its person's template: its quality, at least this


def check_vector(s: NewSample, dim: int, collection: str) -> np.ndarray:
    """The sample's vector as contiguous float32 of the collection's dimension, finite; or a clear error."""
    vec = np.ascontiguousarray(s.embedding, dtype=np.float32).reshape(-1)
    who = s.source or s.person or f"person {s.person_id}"
    if vec.shape[0] != dim:
        raise ProfileMismatchError(f"sample of {who!r} has {vec.shape[0]} dimensions; collection {collection!r} "
                                   f"holds {dim}-d vectors")
    if not np.isfinite(vec).all():
        raise FacewiseError(f"sample of {who!r} has a non-finite vector")
    return vec


def check_vectors(samples: list[NewSample], dim: int, collection: str) -> np.ndarray:
    """:func:`check_vector` over a batch at once: an ``(n, dim)`` float32 matrix, or the first bad sample's error."""
    try:
        mat = np.stack([np.asarray(s.embedding, dtype=np.float32).reshape(-1) for s in samples]) if samples else \
            np.zeros((0, dim), np.float32)
    except ValueError:  # vectors of different lengths: let the per-sample check name the first wrong one
        mat = None
    if mat is None or mat.shape[1] != dim or not np.isfinite(mat).all():
        for s in samples:
            check_vector(s, dim, collection)
    assert mat is not None
    return np.ascontiguousarray(mat)


def template_of(vectors: np.ndarray, qualities: Iterable[float]) -> np.ndarray:
    """A person's template: the quality-weighted (at least :data:`MIN_WEIGHT`) mean of the vectors, unit length."""
    w = np.array([max(float(q), MIN_WEIGHT) for q in qualities], np.float32)
    t: np.ndarray = (np.asarray(vectors, np.float32) * w[:, None]).sum(0)
    t /= max(float(np.linalg.norm(t)), 1e-12)
    return t.astype(np.float32)


def templates_of(vectors: np.ndarray, qualities: np.ndarray, persons: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                                         np.ndarray]:
    """:func:`template_of` for many persons at once: rows of ``vectors`` belong to ``persons`` (ids) →
    ``(person ids ascending, their templates, how many vectors each)``."""
    order = np.argsort(persons, kind="stable")
    pids, starts, counts = np.unique(np.asarray(persons)[order], return_index=True, return_counts=True)
    w = np.maximum(np.asarray(qualities, np.float32)[order], np.float32(MIN_WEIGHT))
    sums = np.add.reduceat(np.asarray(vectors, np.float32)[order] * w[:, None], starts, axis=0) if len(order) else \
        np.zeros((0, np.shape(vectors)[1]), np.float32)
    sums /= np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), np.float32(1e-12))
    return pids, sums.astype(np.float32), counts


def first_window(k: int) -> int:
    """How many nearest samples a search asks for first to find ``k`` distinct persons (then ×4 while short)."""
    return k * 8 + 16


def first_k_persons(rows: Iterable[tuple[int, int, float]], k: int) -> list[tuple[int, float, int]]:
    """``(sample_id, person_id, score)`` rows, best first → the first ``k`` distinct ``(person_id, score,
    sample_id)``."""
    hits: list[tuple[int, float, int]] = []
    seen: set[int] = set()
    for sid, pid, score in rows:
        if pid in seen:
            continue
        seen.add(pid)
        hits.append((int(pid), float(score), int(sid)))
        if len(hits) == k:
            break
    return hits


def prepare(s: NewSample, names: dict[str, str] | None = None) -> NewSample:
    """A sample with the identity rules applied: a checked ``person_id``, or a checked name (``names``: names
    already checked in this batch, so a person's every face does not check the name again)."""
    if s.metadata is not None:
        check_metadata(s.metadata)
    if s.person_id is not None:
        pid = check_id(s.person_id)
        return s if type(s.person_id) is int and pid == s.person_id else dataclasses.replace(s, person_id=pid)
    if names is None or not isinstance(s.person, str):
        return dataclasses.replace(s, person=check_name(s.person))
    name = names.get(s.person)
    if name is None:
        name = names[s.person] = check_name(s.person)
    return s if name == s.person else dataclasses.replace(s, person=name)


class StoreBase(Store, abc.ABC):
    """Rules shared by every store; a store implements the abstract storage hooks and methods below.

    A store declares what it does beyond the core in ``capabilities`` (each one's methods in
    :data:`CAPABILITY_METHODS` overridden: checked when the class is made) and the URL schemes it opens in
    ``schemes`` (:mod:`facewise.gallery.open` derives its table from them); it builds itself from such a URL
    with :meth:`from_url`."""

    capabilities: ClassVar[frozenset[str]] = frozenset()
    schemes: ClassVar[tuple[str, ...]] = ()  # URL schemes this store opens ("postgresql" for postgresql://…)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for capability in cls.capabilities:
            if capability not in CAPABILITIES:
                raise TypeError(f"{cls.__name__} declares the unknown capability {capability!r}")
            for method in CAPABILITY_METHODS.get(capability, ()):
                if getattr(cls, method) is getattr(StoreBase, method):
                    raise TypeError(f"{cls.__name__} declares {capability!r} but does not implement {method}()")

    @classmethod
    @abc.abstractmethod
    def from_url(cls, url: str) -> Self:
        """The store an address names: one of its ``schemes``' URLs (a file path for the SQLite store)."""

    @property
    def store_name(self) -> str:
        return type(self).__name__

    @property
    def encrypted(self) -> bool:
        """Whether the vectors are encrypted at rest (stores with the ``encryption`` capability)."""
        return False

    @property
    def locked(self) -> bool:
        """Encrypted at rest and no key at hand: the vectors cannot be read or written."""
        return False

    def _lacks(self, capability: str, action: str) -> CapabilityError:
        return CapabilityError(f"{self.store_name} cannot {action}: it lacks the {capability!r} capability",
                               store=self.store_name, capability=capability)

    def require(self, capability: str, action: str) -> None:
        """Raise :class:`CapabilityError` unless this store declares ``capability``."""
        if capability not in CAPABILITIES:
            raise ValueError(f"unknown capability {capability!r}")
        if capability not in self.capabilities:
            raise self._lacks(capability, action)

    @abc.abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- collections (no rule of their own: each store's) ---------------------------------------
    @abc.abstractmethod
    def ensure_collection(self, name: str, profile: str, signature: str, dim: int) -> CollectionInfo: ...

    @abc.abstractmethod
    def get_collection(self, name: str) -> CollectionInfo: ...

    @abc.abstractmethod
    def list_collections(self) -> list[CollectionInfo]: ...

    @abc.abstractmethod
    def update_settings(self, collection: str, **settings: Any) -> CollectionInfo: ...

    @abc.abstractmethod
    def delete_collection(self, name: str) -> None: ...

    # -- persons --------------------------------------------------------------------------------
    def add_person(self, collection: str, name: str, metadata: dict[str, Any] | None = None) -> Person:
        return self._add_person(collection, check_name(name), dict(check_metadata(metadata)))

    def get_person(self, collection: str, person: str | int) -> Person:
        """The person ``person`` names. Digits are an id; a name stored before all-digit names were refused is
        still found by name when no id matches (then rename it: ``doctor`` lists such names)."""
        ref = person_ref(person)
        try:
            return self._get_person(collection, ref)
        except NotFoundError:  # a name stored before names were NFKC-normalised is found as it was written too
            if isinstance(person, str) and person.strip() and person.strip() != ref:
                return self._get_person(collection, person.strip())
            raise

    @abc.abstractmethod
    def list_persons(self, collection: str, offset: int = 0, limit: int | None = None) -> list[Person]: ...

    def rename_person(self, collection: str, person: str | int, new_name: str) -> Person:
        ref = person_ref(person)
        return self._rename_person(collection, ref, check_name(new_name))

    def delete_person(self, collection: str, person: str | int) -> int:
        """Delete a person with every sample and template; returns the number of samples removed."""
        return self._delete_person(collection, person_ref(person))

    # -- samples --------------------------------------------------------------------------------
    @abc.abstractmethod
    def has_image(self, collection: str, image_sha256: str, face_index: int | None = None) -> bool: ...

    def add_samples(self, collection: str, samples: list[NewSample]) -> list[int | None]:
        """Store samples in ONE transaction; duplicates give ``None``. A sample with ``person_id`` goes to that
        person if it exists when the transaction runs (else :class:`NotFoundError`, nothing stored); one with
        only a name goes to that person, created when missing."""
        names: dict[str, str] = {}
        return self._add_samples(collection, [prepare(s, names) for s in samples])

    def list_samples(self, collection: str, person: str | int | None = None) -> list[Sample]:
        return self._list_samples(collection, None if person is None else person_ref(person))

    def delete_sample(self, collection: str, sample_id: int) -> None:
        self._delete_sample(collection, check_id(sample_id, "sample"))

    def move_samples(self, collection: str, sample_ids: list[int], person: str | int) -> Person:
        """Re-assign samples to a person (created if ``person`` is a new name); one transaction."""
        self.require("move_samples", "move samples between people")
        target = person_target(person)
        return self._move_samples(collection, [check_id(i, "sample") for i in sample_ids], target)

    def sample_vectors(self, collection: str, sample_ids: list[int]) -> np.ndarray:
        """The vectors of these samples, in order; :class:`NotFoundError` for one that does not exist."""
        return self._sample_vectors(collection, [check_id(i, "sample") for i in sample_ids])

    @abc.abstractmethod
    def sample_meta(self, collection: str, sample_ids: list[int]) -> dict[int, dict[str, float]]: ...

    def person_vectors(self, collection: str, person: str | int) -> np.ndarray:
        return self._person_vectors(collection, person_ref(person))

    def person_template(self, collection: str, person: str | int) -> np.ndarray:
        return self._person_template(collection, person_ref(person))

    # -- search, export -------------------------------------------------------------------------
    @abc.abstractmethod
    def search(self, collection: str, queries: np.ndarray, k: int = 1) -> list[list[SearchHit]]: ...

    @abc.abstractmethod
    def export_rows(self, collection: str) -> Iterator[ExportedPerson]: ...

    # -- optional capabilities: a store that declares one overrides its methods (checked when the class is made),
    # so these run only in a store that lacks it ----------------------------------------------------------------
    def seal_blob(self, data: bytes, aad: bytes) -> bytes:
        raise self._lacks("encryption", "seal blobs with the gallery key")

    def unseal_blob(self, blob: bytes, aad: bytes) -> bytes:
        raise self._lacks("encryption", "open blobs sealed with the gallery key")

    def integrity_check(self) -> list[str]:
        raise self._lacks("integrity_check", "check its integrity")

    def sync(self, collection: str) -> tuple[int, int]:
        raise self._lacks("sync", "re-create its vector rows from the source of truth")

    # -- storage hooks: called with checked values ------------------------------------------------
    @abc.abstractmethod
    def _add_person(self, collection: str, name: str, metadata: dict[str, Any]) -> Person: ...

    @abc.abstractmethod
    def _get_person(self, collection: str, person: int | str) -> Person: ...

    @abc.abstractmethod
    def _rename_person(self, collection: str, person: int | str, new_name: str) -> Person: ...

    @abc.abstractmethod
    def _delete_person(self, collection: str, person: int | str) -> int: ...

    @abc.abstractmethod
    def _add_samples(self, collection: str, samples: list[NewSample]) -> list[int | None]: ...

    @abc.abstractmethod
    def _list_samples(self, collection: str, person: int | str | None) -> list[Sample]: ...

    @abc.abstractmethod
    def _delete_sample(self, collection: str, sample_id: int) -> None: ...

    def _move_samples(self, collection: str, sample_ids: list[int], person: int | str) -> Person:
        raise self._lacks("move_samples", "move samples between people")  # the "move_samples" capability's hook

    @abc.abstractmethod
    def _person_vectors(self, collection: str, person: int | str) -> np.ndarray: ...

    @abc.abstractmethod
    def _sample_vectors(self, collection: str, sample_ids: list[int]) -> np.ndarray: ...

    @abc.abstractmethod
    def _person_template(self, collection: str, person: int | str) -> np.ndarray: ...
