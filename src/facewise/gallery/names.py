"""Name rules of the gallery: what a person's name may be, and the names the system reserves."""

from __future__ import annotations

from facewise.errors import FacewiseError

UNCLUSTERED = "~unclustered"  # the person unknown faces wait under until clustered
CLUSTER_PREFIX = "cluster-"


def is_cluster_name(name: str) -> bool:
    """A name the clustering step created (``cluster-…``) or the waiting room of unknown faces."""
    return name.startswith(CLUSTER_PREFIX) or name == UNCLUSTERED


def check_name(name: str) -> str:
    """The stored form of a person's name (stripped), or a :class:`FacewiseError` naming what is wrong."""
    if not isinstance(name, str) or not name.strip():
        raise FacewiseError("a person's name must be a non-empty string")
    name = name.strip()
    if len(name) > 200 or any(ord(c) < 32 or 0xD800 <= ord(c) <= 0xDFFF for c in name):  # control, lone surrogate
        raise FacewiseError(f"person name {name[:40]!r}…: at most 200 printable characters")
    return name
