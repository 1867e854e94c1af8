"""Face attributes as plug-ins: what a face shows beyond identity (liveness, head pose, expression...).

An attribute is one class (subclass :class:`Attribute`) in one module and one line in the model registry
(:data:`facewise.models.registry.BACKENDS`: ``("attribute", name)`` → ``"module:Class"``).
:class:`facewise.core.analysis.Analyzer` loops over the requested plug-ins that are available and puts each
one's per-face result in ``face.attributes[name]``. Code outside the package (a deployment, a test) adds one at
run time with :func:`register`.
"""

from __future__ import annotations

from typing import Any, ClassVar
from typing import NotRequired as NotRequired  # for the plug-ins' result types

try:  # pydantic (the REST schema reads each attribute's result type) wants this TypedDict before Python 3.12
    from typing_extensions import TypedDict as TypedDict
except ImportError:  # pragma: no cover - no pydantic here, so no REST schema either
    from typing import TypedDict as TypedDict

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
    #: the shape of one face's result (a :class:`TypedDict`); the REST schema and its generated clients read it
    result: ClassVar[Any] = dict[str, Any]
    #: the CLI table's column header (default: ``name``)
    column: ClassVar[str] = ""

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

    @classmethod
    def summary(cls, result: dict[str, Any]) -> str:
        """One result in a table cell (the CLI's): its scalar values as ``key=value``."""
        cells = [f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()
                 if isinstance(v, str | int | float | bool)]
        return " ".join(cells)


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
