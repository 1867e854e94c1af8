"""Builds a backend from a model card: the only place that maps ``backend`` names to classes."""

from __future__ import annotations

import importlib
import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

from facewise.errors import FacewiseError
from facewise.models.catalogue import ModelCard, card, resolve
from facewise.models.protocols import Detector, Embedder, Landmarker
from facewise.models.runtime import requested

log = logging.getLogger(__name__)


def _card_and_files(model_id: str, task: str, role: str) -> tuple[ModelCard, list[Path]]:
    """The card of a model of ``task`` and its resolved files; warns once about non-commercial licences."""
    c = card(model_id)
    if c.task != task:
        raise ValueError(f"model {model_id!r} is a {c.task} model, not {role}")
    paths = resolve(model_id)
    if c.commercial != "yes":
        log.warning("model %s: licence %r, commercial use: %s (see its card)", c.id, c.licence, c.commercial)
    return c, paths


# what each detector backend lets a caller tune (besides threads): the score threshold, and the side range the
# image is scaled into (YuNet: min_side=0 and a small max_side detect on small crops as they are)
DETECTOR_KNOBS: dict[str, frozenset[str]] = {
    "yunet": frozenset({"score_threshold", "min_side", "max_side"}),
    "scrfd": frozenset({"score_threshold"}),
    "dlib_hog": frozenset(),
}


def detector_knobs(model_id: str) -> frozenset[str]:
    """The tuning :func:`load_detector` accepts for this detector (empty: none)."""
    return DETECTOR_KNOBS.get(card(model_id).backend, frozenset())


@lru_cache(maxsize=16)
def load_detector(model_id: str, threads: int = 0, options: tuple[tuple[str, Any], ...] = (), *,
                  score_threshold: float | None = None, min_side: int | None = None,
                  max_side: int | None = None, providers: tuple[str, ...] = ()) -> Detector:
    """A detector backend, loaded once per process and tuning (backends are thread-safe).

    ``options``: the profile's ``detector_options`` as sorted (name, value) pairs, passed to the backend.
    ``score_threshold``, ``min_side`` and ``max_side`` (video tracking) replace the backend's defaults where it
    has them (:func:`detector_knobs`); asking a backend for a knob it lacks is a ``ValueError``.
    ``providers``: the profile's execution providers (``runtime``; ``FACEWISE_PROVIDERS`` overrides them)."""
    with requested(providers):
        return _build_detector(model_id, threads, options, score_threshold, min_side, max_side)


def _build_detector(model_id: str, threads: int, options: tuple[tuple[str, Any], ...], score_threshold: float | None,
                    min_side: int | None, max_side: int | None) -> Detector:
    c, paths = _card_and_files(model_id, "detection", "a detector")
    tuning: dict[str, Any] = {k: v for k, v in (("score_threshold", score_threshold), ("min_side", min_side),
                                ("max_side", max_side)) if v is not None}
    unknown = set(tuning) - DETECTOR_KNOBS.get(c.backend, frozenset())
    if unknown:
        raise ValueError(f"detector {model_id!r} ({c.backend}) cannot be tuned by {', '.join(sorted(unknown))}")
    kwargs = {**dict(options), **tuning}
    if c.backend == "yunet":
        from facewise.models.detectors.yunet import YuNetDetector

        engine = kwargs.pop("engine", "opencv")
        try:
            if engine == "openvino":
                from facewise.models.detectors.yunet_ov import YuNetOpenVino

                return YuNetOpenVino(paths[0], model_id=c.id, threads=threads, **kwargs)
            if engine != "opencv":
                raise TypeError(f"engine must be opencv or openvino, got {engine!r}")
            return YuNetDetector(paths[0], model_id=c.id, **kwargs)
        except TypeError as exc:
            raise FacewiseError(f"model {model_id!r}: bad detector_options {kwargs}: {exc}") from None
    if c.backend == "yuface":
        from facewise.models.detectors.yuface import YuFaceDetector

        return YuFaceDetector(model_id=c.id, threads=threads or 1, **kwargs)
    if set(kwargs) - set(tuning):
        raise FacewiseError(f"model {model_id!r}: backend {c.backend!r} takes no detector_options, got {kwargs}")
    if c.backend == "dlib_hog":
        from facewise.models.detectors.dlib_hog import DlibHogDetector

        return DlibHogDetector(paths[0], model_id=c.id)
    if c.backend == "scrfd":
        from facewise.models.detectors.scrfd import ScrfdDetector

        return ScrfdDetector(paths[0], model_id=c.id, threads=threads, **tuning)
    raise ValueError(f"model {model_id!r}: unknown detector backend {c.backend!r}")


# Embedder backends: a card's "backend" → "module:Class"; the class builds itself with
# ``from_card(card, paths, threads)``. A new embedder backend is one module in models/embedders/ and one line here.
EMBEDDERS: dict[str, str] = {
    "dlib_resnet": "facewise.models.embedders.dlib_resnet:DlibResNetEmbedder",
    "onnx": "facewise.models.embedders.onnx:OnnxEmbedder",
    "openvino": "facewise.models.embedders.openvino:OpenVinoEmbedder",
}


def _class(target: str) -> Any:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


@lru_cache(maxsize=16)
def load_embedder(model_id: str, threads: int = 0, providers: tuple[str, ...] = ()) -> Embedder:
    """An embedder backend, loaded once per process and provider list (backends are thread-safe)."""
    c, paths = _card_and_files(model_id, "embedding", "an embedder")
    target = EMBEDDERS.get(c.backend)
    if target is None:
        raise ValueError(f"model {model_id!r}: unknown embedder backend {c.backend!r} (known: {', '.join(EMBEDDERS)})")
    with requested(providers):
        embedder: Embedder = _class(target).from_card(c, paths, threads)
    return embedder


@lru_cache(maxsize=8)
def load_landmarker(model_id: str, threads: int = 0, providers: tuple[str, ...] = ()) -> Landmarker:
    """A landmark refiner (re-estimates a detection's five points), loaded once per process."""
    c, paths = _card_and_files(model_id, "landmarks", "a landmark refiner")
    if c.backend == "openvino":
        from facewise.models.landmarks.landmarks0009 import Landmarks0009

        xml = next(p for p in paths if p.suffix == ".xml")
        with requested(providers):
            return Landmarks0009(xml, c.id, roi_scale=float(c.input.get("roi_scale", 1.15)), threads=threads)
    raise ValueError(f"model {model_id!r}: unknown landmark backend {c.backend!r}")
