"""The model registry: one table keyed by (task, backend), one ``"module:Class"`` resolver, one model cache.

Tasks: ``detection``, ``landmarks``, ``embedding``, ``headpose`` (a model card's ``task``; a card's ``backend``
picks the class) and ``attribute`` (face attribute plug-ins by name, :mod:`facewise.models.attributes`).

A model backend is one class that builds itself from its card::

    class MyDetector:
        options: ClassVar[frozenset[str]] = frozenset({"score_threshold"})  # what a profile or caller may tune

        @classmethod
        def from_card(cls, card: ModelCard, paths: list[Path], threads: int, **options: Any) -> MyDetector: ...

plus one line in :data:`BACKENDS` (or, from code outside the package, one :func:`register` call). A new model of
an existing backend is a card alone (``models/cards/``, or :func:`facewise.models.catalogue.add_card` at run
time). :func:`load` builds a model once per (card, threads, options, execution providers) and process; an option
the backend does not declare is refused by name before anything loads.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, cast

from facewise.errors import FacewiseError, ValidationError
from facewise.models.catalogue import ModelCard, card, resolve
from facewise.models.protocols import Detector, Embedder, HeadPoseModel, Landmarker
from facewise.models.runtime import requested

log = logging.getLogger(__name__)

TASKS = ("detection", "landmarks", "embedding", "headpose", "attribute")
_ROLE = {"detection": "a detector", "landmarks": "a landmark refiner", "embedding": "an embedder",
         "headpose": "a head-pose model"}

#: (task, backend) → ``"module:Class"`` (or the class itself, for one added at run time). Attributes are keyed
#: by their name; their order here is the order of the keys in ``face.attributes``.
BACKENDS: dict[tuple[str, str], str | type[Any]] = {
    ("detection", "yunet"): "facewise.models.detectors.yunet:YuNetDetector",
    ("detection", "yuface"): "facewise.models.detectors.yuface:YuFaceDetector",
    ("detection", "scrfd"): "facewise.models.detectors.scrfd:ScrfdDetector",
    ("detection", "dlib_hog"): "facewise.models.detectors.dlib_hog:DlibHogDetector",
    ("landmarks", "openvino"): "facewise.models.landmarks.landmarks0009:Landmarks0009",
    ("embedding", "dlib_resnet"): "facewise.models.embedders.dlib_resnet:DlibResNetEmbedder",
    ("embedding", "onnx"): "facewise.models.embedders.onnx:OnnxEmbedder",
    ("embedding", "openvino"): "facewise.models.embedders.openvino:OpenVinoEmbedder",
    ("headpose", "onnx"): "facewise.models.attributes.headpose:FSANet",
    ("attribute", "live"): "facewise.models.attributes.liveness:Liveness",
    ("attribute", "pose"): "facewise.models.attributes.headpose:HeadPose",
    ("attribute", "expression"): "facewise.models.attributes.expression:Expression",
}

# the detector options a caller tunes per use (video tracking): a score threshold and the side range the image is
# scaled into; a backend takes those of them its ``options`` declare (see :func:`detector_knobs`)
TUNING = frozenset({"score_threshold", "min_side", "max_side"})


class Backend(Protocol):
    """What a model backend class offers the registry (its instances implement the task's protocol)."""

    options: frozenset[str]

    @classmethod
    def from_card(cls, card: ModelCard, paths: list[Path], threads: int, **options: Any) -> Any: ...


def resolve_class(target: str | type[Any]) -> type[Any]:
    """The class a ``"module:Class"`` string names (imported on first use), or ``target`` when it is a class.

    The one resolver of the package: model backends, face attributes and gallery stores name their classes so.
    A malformed target or a module without that class is a :class:`ValidationError`; a module that cannot be
    imported raises its ``ImportError`` (an optional dependency that is not installed)."""
    if isinstance(target, type):
        return target
    module, sep, name = str(target).partition(":")
    if not (module and sep and name):
        raise ValidationError(f"{target!r} is not a \"module:Class\" name", what="target", value=str(target))
    found = getattr(importlib.import_module(module), name, None)
    if not isinstance(found, type):
        raise ValidationError(f"{target!r}: module {module!r} has no class {name!r}", what="target",
                              value=str(target))
    return found


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ValidationError(f"unknown model task {task!r} (known: {', '.join(TASKS)})", what="task", value=task,
                              valid=", ".join(TASKS))


def register(task: str, backend: str, target: str | type[Any]) -> None:
    """Add (or replace) a backend: ``target`` is the class or its ``"module:Class"`` name. A card of ``task`` whose
    ``backend`` is this name then loads through it; models already loaded are dropped from the cache."""
    _check_task(task)
    if not backend or not backend.replace("_", "").replace("-", "").isalnum():
        raise ValidationError(f"backend name {backend!r}: letters, digits, '-' and '_' only", what="backend",
                              value=backend)
    BACKENDS[(task, backend)] = target
    _load_cached.cache_clear()


def unregister(task: str, backend: str) -> None:
    """Remove a backend added with :func:`register` (unknown ones are ignored)."""
    if BACKENDS.pop((task, backend), None) is not None:
        _load_cached.cache_clear()


def backends(task: str) -> tuple[str, ...]:
    """The backends registered for ``task``, in registry order."""
    _check_task(task)
    return tuple(b for t, b in BACKENDS if t == task)


def backend_class(task: str, backend: str) -> type[Any]:
    """The class registered for (``task``, ``backend``), imported on first use."""
    _check_task(task)
    target = BACKENDS.get((task, backend))
    if target is None:
        raise ValidationError(f"unknown {task} backend {backend!r} (known: {', '.join(backends(task))})",
                              what="backend", value=backend, valid=", ".join(backends(task)))
    return resolve_class(target)


def backend_options(task: str, backend: str) -> frozenset[str]:
    """The options the backend declares (its ``options`` class variable; none when it declares none)."""
    return frozenset(getattr(backend_class(task, backend), "options", frozenset()))


def _card_and_files(model_id: str, task: str) -> tuple[ModelCard, list[Path]]:
    """The card of a model of ``task`` and its resolved files; warns once about non-commercial licences."""
    c = card(model_id)
    if c.task != task:
        raise ValueError(f"model {model_id!r} is a {c.task} model, not {_ROLE.get(task, task)}")
    paths = resolve(model_id)
    if c.commercial != "yes":
        log.warning("model %s: licence %r, commercial use: %s (see its card)", c.id, c.licence, c.commercial)
    return c, paths


def _hashable(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    return value


def load(task: str, model_id: str, threads: int = 0, options: Mapping[str, Any] | None = None,
         providers: tuple[str, ...] = ()) -> Any:
    """The model ``model_id`` (a card of ``task``) built by its backend, once per process and (threads, options,
    providers): backends are thread-safe and shared. An option the backend does not declare is a
    :class:`FacewiseError` naming it and the ones it takes."""
    _check_task(task)
    if task == "attribute":
        raise ValidationError("attributes are built by an Analyzer, not loaded from a card", what="task", value=task)
    frozen = tuple(sorted((str(k), _hashable(v)) for k, v in (options or {}).items()))
    return _load_cached(task, model_id, threads, frozen, tuple(providers))


@lru_cache(maxsize=32)
def _load_cached(task: str, model_id: str, threads: int, options: tuple[tuple[str, Any], ...],
                 providers: tuple[str, ...]) -> Any:
    c, paths = _card_and_files(model_id, task)
    cls = backend_class(task, c.backend)
    allowed = frozenset(getattr(cls, "options", frozenset()))
    unknown = sorted({k for k, _ in options} - allowed)
    if unknown:
        takes = ", ".join(sorted(allowed)) or "none"
        raise FacewiseError(f"model {model_id!r}: its {task} backend {c.backend!r} takes no option "
                            f"{', '.join(unknown)} (it takes: {takes}); options given: {dict(options)}")
    with requested(providers):
        return cast(Backend, cls).from_card(c, paths, threads, **dict(options))


def detector_knobs(model_id: str) -> frozenset[str]:
    """The per-use tuning (:data:`TUNING`) :func:`load_detector` accepts for this detector (empty: none)."""
    return TUNING & backend_options("detection", card(model_id).backend)


def load_detector(model_id: str, threads: int = 0, options: tuple[tuple[str, Any], ...] = (), *,
                  score_threshold: float | None = None, min_side: int | None = None,
                  max_side: int | None = None, providers: tuple[str, ...] = ()) -> Detector:
    """A detector, loaded once per process and tuning (backends are thread-safe).

    ``options``: the profile's ``detector_options`` as (name, value) pairs. ``score_threshold``, ``min_side`` and
    ``max_side`` (video tracking) replace the backend's defaults where it has them (:func:`detector_knobs`);
    asking a backend for a knob it lacks is a ``ValueError``. ``providers``: the profile's execution providers
    (``runtime``; ``FACEWISE_PROVIDERS`` overrides them)."""
    tuning = {k: v for k, v in (("score_threshold", score_threshold), ("min_side", min_side),
                                ("max_side", max_side)) if v is not None}
    c = card(model_id)
    if c.task != "detection":
        raise ValueError(f"model {model_id!r} is a {c.task} model, not a detector")
    unknown = set(tuning) - detector_knobs(model_id)
    if unknown:
        raise ValueError(f"detector {model_id!r} ({c.backend}) cannot be tuned by {', '.join(sorted(unknown))}")
    return cast(Detector, load("detection", model_id, threads, {**dict(options), **tuning}, providers))


def load_embedder(model_id: str, threads: int = 0, providers: tuple[str, ...] = ()) -> Embedder:
    """An embedder, loaded once per process and provider list."""
    return cast(Embedder, load("embedding", model_id, threads, None, providers))


def load_landmarker(model_id: str, threads: int = 0, providers: tuple[str, ...] = ()) -> Landmarker:
    """A landmark refiner (re-estimates a detection's five points), loaded once per process."""
    return cast(Landmarker, load("landmarks", model_id, threads, None, providers))


def load_headpose(model_id: str = "fsanet", threads: int = 1, providers: tuple[str, ...] = ()) -> HeadPoseModel:
    """A head-pose model (FSA-Net), loaded once per process: the pipeline's yaw and the ``pose`` attribute share
    it."""
    return cast(HeadPoseModel, load("headpose", model_id, threads, None, providers))


def clear_cache() -> None:
    """Forget every loaded model (the next :func:`load` builds it again)."""
    _load_cached.cache_clear()
