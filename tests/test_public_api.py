"""The public API, pinned: an accidental change to what users import or call fails here.

A deliberate change edits the expectation below in the same commit (and says so in its message), so the
diff of this file is the API's changelog. Signatures are compared as ``inspect.signature`` strings with the
annotations shown as written in the source.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

import pytest

import facewise
from conftest import KNN, need
from facewise import FaceWise
from facewise.errors import FacewiseError

ALL = [
    "Box", "Collection", "Detection", "EnrollResult", "Face", "FaceEngine", "FaceWise", "FacewiseError",
    "Identification", "ImageError", "ModelNotFoundError", "MultipleFacesError", "NoFaceError", "NotFoundError",
    "Person", "Pipeline", "Profile", "ProfileMismatchError", "Quality", "Sample", "Verification", "load_image",
    "load_profile",
]

FACEWISE_METHODS = {
    "__enter__": "(self) -> FaceWise",
    "__exit__": "(self, *exc: object) -> None",
    "__init__": (
        "(self, db: str | os.PathLike[str] | Store | None = None, "
        "profile: str | Profile | None = 'default', collection: str = 'default', threads: int = 0, "
        "quality: QualityPolicy | None = None, *, create: bool = True, pipeline: Pipeline | None = None, "
        "analyzer: Analyzer | None = None, erasure: ErasureHooks | None = None) -> None"
    ),
    "add_person": "(self, name: str, metadata: dict[str, Any] | None = None) -> Person",
    "analyze": "(self, image: ImageInput, what: tuple[str, ...] | None = None) -> list[Face]",
    "close": "(self) -> None",
    "delete_collection": "(self) -> None",
    "delete_person": "(self, person: str | int) -> int",
    "delete_sample": "(self, sample_id: int) -> None",
    "detect": "(self, image: ImageInput) -> list[Face]",
    "enroll": (
        "(self, person: str, images: ImageInput | Iterable[ImageInput], *, face: FaceChoice = 'only', "
        "metadata: dict[str, Any] | None = None, gate: Gate | None = None, "
        "progress: Callable[[EnrollResult], None] | None = None, "
        "person_id: int | None = None) -> list[EnrollResult]"
    ),
    "enroll_folder": (
        "(self, root: str | os.PathLike[str], *, face: FaceChoice = 'only', gate: Gate | None = None, "
        "progress: Callable[[EnrollResult], None] | None = None) -> list[EnrollResult]"
    ),
    "enroll_items": (
        "(self, items: list[tuple[str, ImageInput]], *, face: FaceChoice = 'only', "
        "metadata: dict[str, Any] | None = None, gate: Gate | None = None, "
        "progress: Callable[[EnrollResult], None] | None = None, "
        "person_id: int | None = None) -> list[EnrollResult]"
    ),
    "export": "(self, path: str | os.PathLike[str]) -> int",
    "faces": "(self, image: ImageInput) -> list[Face]",
    "identify": "(self, image: ImageInput, top_k: int = 1) -> list[Identification]",
    "import_": "(self, path: str | os.PathLike[str]) -> int",
    "person": "(self, person: str | int) -> Person",
    "persons": "(self, offset: int = 0, limit: int | None = None) -> list[Person]",
    "rename_person": "(self, person: str | int, new_name: str) -> Person",
    "samples": "(self, person: str | int | None = None) -> list[Sample]",
    "set_calibration": "(self, calibration: dict[str, Any]) -> Decision",
    "index_info": "(self) -> dict[str, Any]",
    "set_threshold": ("(self, threshold: float | None = None, target_far: float | None = None, "
                      "target_fpir: float | None = None) -> Decision"),
    "verify": (
        "(self, a: ImageInput, b: ImageInput, face: FaceChoice = 'only', "
        "gate: Gate | None = None, *, other_face: FaceChoice | None = None) -> Verification"
    ),
    "verify_person": (
        "(self, image: ImageInput, person: str | int, face: FaceChoice = 'only', "
        "gate: Gate | None = None) -> Verification"
    ),
}

FACEWISE_PROPERTIES = ["decision", "info", "verification_decision"]

FUNCTIONS = {
    "load_image": "(source: ImageInput, limit: int | None = None) -> DecodedImage",
    "load_profile": "(name_or_path: str | Path) -> Profile",
}

RECORD_FIELDS = {
    "Box": ("x1", "y1", "x2", "y2"),
    "Detection": ("box", "landmarks", "score", "found_by"),
    "EnrollResult": ("source", "person", "status", "sample_id", "reason", "face", "code"),
    "Face": ("index", "box", "landmarks", "det_score", "quality", "yaw", "embedding", "attributes"),
    "Identification": ("face", "person", "person_id", "score", "far", "threshold", "candidates", "fpir", "searched"),
    "Person": ("id", "name", "metadata", "n_samples", "created_at"),
    "Profile": (
        "name", "description", "detector", "embedders", "landmarks", "detector_fallback", "detector_options",
        "detector_cascade", "yaw", "flip", "default_far", "fallback_threshold", "calibration", "fusion", "providers"
    ),
    "Quality": ("score", "reasons", "metrics"),
    "Sample": ("id", "person_id", "image_sha256", "source", "box", "quality", "yaw", "created_at"),
    "Verification": ("score", "same", "threshold", "far", "profile", "reason", "faces"),
}


class _Shown:
    """An annotation string that prints without quotes."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _sig(fn: Callable[..., Any]) -> str:
    s = inspect.signature(fn)

    def shown(a: object) -> object:
        return _Shown(a) if isinstance(a, str) else a

    params = [p.replace(annotation=shown(p.annotation)) for p in s.parameters.values()]
    return str(s.replace(parameters=params, return_annotation=shown(s.return_annotation)))


def _public(cls: type) -> dict[str, Any]:
    return {name: member for name, member in inspect.getmembers(cls)
            if not name.startswith("_") or name in ("__init__", "__enter__", "__exit__")}


def test_all_is_pinned_and_importable() -> None:
    assert sorted(facewise.__all__) == ALL
    assert len(set(facewise.__all__)) == len(facewise.__all__)
    namespace: dict[str, object] = {}
    exec("from facewise import *", namespace)
    assert sorted(k for k in namespace if not k.startswith("__")) == ALL
    assert isinstance(facewise.__version__, str)


def test_facewise_methods_and_signatures_are_pinned() -> None:
    members = _public(FaceWise)
    props = sorted(n for n in members if isinstance(inspect.getattr_static(FaceWise, n), property))
    assert props == FACEWISE_PROPERTIES
    methods = {n: _sig(m) for n, m in members.items() if n not in props}
    assert sorted(methods) == sorted(FACEWISE_METHODS), "FaceWise gained or lost a public method"
    changed = {n: s for n, s in methods.items() if s != FACEWISE_METHODS[n]}
    assert changed == {}, "FaceWise signatures changed (update FACEWISE_METHODS deliberately)"


def test_functions_and_records_are_pinned() -> None:
    assert {n: _sig(getattr(facewise, n)) for n in FUNCTIONS} == FUNCTIONS
    records = {n: tuple(f.name for f in dataclasses.fields(getattr(facewise, n)))
               for n in ALL if dataclasses.is_dataclass(getattr(facewise, n))}
    assert records == RECORD_FIELDS


def test_every_public_callable_is_annotated() -> None:
    """Typed public API: every parameter and return of FaceWise's methods and the functions carries a type."""
    callables = [(n, m) for n, m in _public(FaceWise).items() if callable(m)]
    callables += [(n, getattr(facewise, n)) for n in FUNCTIONS]
    missing = []
    for name, fn in callables:
        s = inspect.signature(fn)
        missing += [f"{name}({p.name})" for p in s.parameters.values()
                    if p.name != "self" and p.annotation is inspect.Parameter.empty]
        if s.return_annotation is inspect.Signature.empty:
            missing.append(f"{name} -> ?")
    assert missing == []


def test_face_vector_is_the_embedding_or_a_clear_error() -> None:
    photo = need(KNN / "test" / "obama1.jpg")
    with FaceWise() as fw:
        detected = fw.detect(photo)[0]
        assert detected.embedding is None
        with pytest.raises(FacewiseError, match="has no embedding"):
            _ = detected.vector
        embedded = fw.faces(photo)[0]
        assert embedded.vector is embedded.embedding
        assert abs(float(embedded.vector @ embedded.vector) - 1.0) < 1e-4
