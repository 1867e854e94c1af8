"""The storage interface every gallery backend implements: SQLite (embedded), PostgreSQL + pgvector, Milvus.

The rules behind it (identity, names, vectors, templates, capabilities) live in :mod:`facewise.gallery.base`;
a store is a subclass of :class:`~facewise.gallery.base.StoreBase` (which implements this protocol) that adds
storage hooks, and :mod:`facewise.gallery.open` opens one from an address."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, Self, TypedDict, runtime_checkable

import numpy as np

from facewise.types import Person, Sample


@dataclass(frozen=True)
class CollectionInfo:
    name: str
    profile: str
    signature: str
    dim: int
    settings: dict[str, Any]
    created_at: str
    persons: int = 0
    samples: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "profile": self.profile, "signature": self.signature, "dim": self.dim,
            "settings": self.settings, "created_at": self.created_at, "persons": self.persons,
            "samples": self.samples,
        }


@dataclass
class NewSample:
    """A sample to store: one face of one image, with its fused profile vector.

    ``person_id`` set: the sample goes to that existing person (checked in the storing transaction; ``person`` is
    then only used in messages). Unset: to the person named ``person``, created when missing."""

    person: str
    image_sha256: str
    embedding: np.ndarray
    model: str
    face_index: int = 0
    source: str = ""
    box: list[float] = field(default_factory=list)
    landmarks: list[list[float]] = field(default_factory=list)
    quality: float = 1.0
    yaw: float = 0.0
    metadata: dict[str, Any] | None = None
    person_id: int | None = None


@dataclass(frozen=True)
class SearchHit:
    person_id: int
    name: str
    score: float
    sample_id: int


class ExportedSample(TypedDict):
    """One sample of an export file (``FaceWise.export``): what ``import`` needs to store it again."""

    image_sha256: str
    face_index: int
    source: str
    box: list[float]
    landmarks: list[list[float]]
    quality: float
    yaw: float
    model: str
    embedding: list[float]


class ExportedPerson(TypedDict):
    """One person of an export file, with every sample (:meth:`Store.export_rows`)."""

    name: str
    metadata: dict[str, Any]
    samples: list[ExportedSample]


@runtime_checkable
class Store(Protocol):
    """Collections of persons and samples, with exact or approximate vector search.

    Person references (``person``) are an id (1..2**63-1) or a name; anything else is a
    :class:`~facewise.errors.NotFoundError`. Ids are never reused. ``capabilities`` names what a store does beyond
    this core (see :data:`facewise.gallery.base.CAPABILITIES`); a method of a missing capability raises
    :class:`~facewise.errors.CapabilityError`.
    """

    capabilities: ClassVar[frozenset[str]]

    @property
    def encrypted(self) -> bool: ...  # vectors encrypted at rest

    @property
    def locked(self) -> bool: ...  # encrypted and no key at hand

    def require(self, capability: str, action: str) -> None: ...

    # collections
    def ensure_collection(self, name: str, profile: str, signature: str, dim: int) -> CollectionInfo: ...

    def get_collection(self, name: str) -> CollectionInfo: ...

    def list_collections(self) -> list[CollectionInfo]: ...

    def update_settings(self, collection: str, **settings: Any) -> CollectionInfo: ...

    def delete_collection(self, name: str) -> None: ...

    # persons
    def add_person(self, collection: str, name: str, metadata: dict[str, Any] | None = None) -> Person: ...

    def get_person(self, collection: str, person: str | int) -> Person: ...

    def list_persons(self, collection: str, offset: int = 0, limit: int | None = None) -> list[Person]: ...

    def rename_person(self, collection: str, person: str | int, new_name: str) -> Person: ...

    def delete_person(self, collection: str, person: str | int) -> int: ...

    # samples
    def has_image(self, collection: str, image_sha256: str, face_index: int | None = None) -> bool: ...

    def add_samples(self, collection: str, samples: list[NewSample]) -> list[int | None]: ...

    def list_samples(self, collection: str, person: str | int | None = None) -> list[Sample]: ...

    def delete_sample(self, collection: str, sample_id: int) -> None: ...

    def move_samples(self, collection: str, sample_ids: list[int], person: str | int) -> Person: ...

    def sample_vectors(self, collection: str, sample_ids: list[int]) -> np.ndarray: ...

    def sample_meta(self, collection: str, sample_ids: list[int]) -> dict[int, dict[str, float]]: ...

    def person_vectors(self, collection: str, person: str | int) -> np.ndarray: ...

    def person_template(self, collection: str, person: str | int) -> np.ndarray: ...

    # search, export
    def search(self, collection: str, queries: np.ndarray, k: int = 1) -> list[list[SearchHit]]: ...

    def export_rows(self, collection: str) -> Iterator[ExportedPerson]: ...

    # capabilities: "encryption", "integrity_check", "sync"
    def seal_blob(self, data: bytes, aad: bytes) -> bytes: ...

    def unseal_blob(self, blob: bytes, aad: bytes) -> bytes: ...

    def integrity_check(self) -> list[str]: ...

    def sync(self, collection: str) -> tuple[int, int]: ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...
