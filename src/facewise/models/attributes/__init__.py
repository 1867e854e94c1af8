"""Face attributes as plug-ins: what a face shows beyond identity (liveness, head pose, expression...).

An attribute is one class (subclass :class:`Attribute`) in one module and one line in the model registry
(:data:`facewise.models.registry.BACKENDS`: ``("attribute", name)`` → ``"module:Class"``).
:class:`facewise.core.analysis.Analyzer` loops over the requested plug-ins that are available and puts each
one's per-face result in ``face.attributes[name]``. Code outside the package (a deployment, a test) adds one at
run time with :func:`register`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from facewise.errors import ValidationError
from facewise.models import registry
from facewise.models.catalogue import is_available
from facewise.types import Face


class Attribute:
    """One attribute. Subclasses set ``name`` and implement :meth:`analyze`; the rest has defaults.

    The analyser makes one instance per :class:`~facewise.core.analysis.Analyzer`, asks :meth:`available`,
    calls :meth:`load` once before the first :meth:`analyze`, and appends :meth:`reason` (when not ``None``)
    to the face's quality reasons.
    """

    name: str = ""
    #: catalogue cards whose files the attribute needs; the default :meth:`available` checks them
    model_ids: tuple[str, ...] = ()
    #: extra words a request's ``what`` may carry for this attribute (liveness: ``"live_map"``)
    options: tuple[str, ...] = ()

    def available(self) -> bool:
        """Whether it can run here (its model files are present)."""
        return all(is_available(m) for m in self.model_ids)

    def load(self, threads: int) -> None:
        """Load the models (once, before the first :meth:`analyze`)."""

    def analyze(self, pixels: np.ndarray, faces: list[Face], what: tuple[str, ...]) -> list[dict[str, Any]]:
        """One result per face (JSON-able dict), for an RGB ``uint8`` image and its faces."""
        raise NotImplementedError

    def reason(self, result: dict[str, Any]) -> str | None:
        """A quality reason this result adds to the face (``"not live (...)"``), or ``None``."""
        return None


def register(name: str, target: str | type[Attribute]) -> None:
    """Add (or replace) an attribute: ``target`` is a :class:`Attribute` subclass or ``"module:Class"``."""
    if not name or not name.replace("_", "").isalnum():
        raise ValidationError(f"attribute name {name!r}: letters, digits and '_' only")
    registry.register("attribute", name, target)


def unregister(name: str) -> None:
    """Remove an attribute added with :func:`register` (unknown names are ignored)."""
    registry.unregister("attribute", name)


def names() -> tuple[str, ...]:
    """Every registered attribute, in registry order."""
    return registry.backends("attribute")


def options() -> tuple[str, ...]:
    """Every word ``what`` may name: the attributes and their options."""
    return names() + tuple(o for n in names() for o in attribute_class(n).options)


def attribute_class(name: str) -> type[Attribute]:
    """The class registered under ``name`` (imported on first use)."""
    if name not in names():
        raise ValidationError(f"unknown face attribute {name!r} (known: {', '.join(names())})")
    target = registry.backend_class("attribute", name)
    if not issubclass(target, Attribute):
        raise ValidationError(f"face attribute {name!r}: {target!r} is not an Attribute subclass")
    return target
