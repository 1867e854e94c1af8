"""The storage interface every gallery backend implements (embedded SQLite first; servers later)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

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
    """A sample to store: one face of one image, with its fused profile vector."""

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


@dataclass(frozen=True)
class SearchHit:
    person_id: int
    name: str
    score: float
    sample_id: int


@runtime_checkable
class Store(Protocol):
    """Collections of persons and samples, with exact or approximate vector search."""

    def ensure_collection(self, name: str, profile: str, signature: str, dim: int) -> CollectionInfo: ...

    def get_collection(self, name: str) -> CollectionInfo: ...

    def list_collections(self) -> list[CollectionInfo]: ...

    def update_settings(self, collection: str, **settings: Any) -> CollectionInfo: ...

    def delete_collection(self, name: str) -> None: ...

    def add_person(self, collection: str, name: str, metadata: dict[str, Any] | None = None) -> Person: ...

    def get_person(self, collection: str, person: str | int) -> Person: ...

    def list_persons(self, collection: str, offset: int = 0, limit: int | None = None) -> list[Person]: ...

    def rename_person(self, collection: str, person: str | int, new_name: str) -> Person: ...

    def delete_person(self, collection: str, person: str | int) -> int: ...

    def has_image(self, collection: str, image_sha256: str, face_index: int | None = None) -> bool: ...

    def add_samples(self, collection: str, samples: list[NewSample]) -> list[int | None]: ...

    def list_samples(self, collection: str, person: str | int | None = None) -> list[Sample]: ...

    def delete_sample(self, collection: str, sample_id: int) -> None: ...

    def sample_vectors(self, collection: str, sample_ids: list[int]) -> np.ndarray: ...

    def search(self, collection: str, queries: np.ndarray, k: int = 1) -> list[list[SearchHit]]: ...

    def close(self) -> None: ...
