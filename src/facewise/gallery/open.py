"""Open a gallery from one string: a SQLite path, or a URL whose scheme names a store.

Each store class declares the URL ``schemes`` it opens and builds itself with ``from_url(url)``
(:class:`~facewise.gallery.base.StoreBase`); the scheme table is derived from the classes listed in
:data:`STORES`, one line per store. Whether a string is a store's URL rather than a gallery file is decided once,
by :func:`is_server_address`, which every door asks.
"""

from __future__ import annotations

import os
import re

from facewise.errors import ValidationError
from facewise.gallery.base import StoreBase
from facewise.gallery.sqlite import SQLiteStore
from facewise.gallery.store import Store
from facewise.models.registry import resolve_class

__all__ = ["STORES", "is_server_address", "open_store", "register", "store_class", "store_classes", "url_scheme"]

# The stores that open URLs, one "module:Class" line each (a StoreBase subclass with its storage hooks, declared
# capabilities and URL schemes). Every address without a scheme is a SQLite gallery file (SQLiteStore).
STORES: list[str] = [
    "facewise.gallery.pgvector:PgVectorStore",
    "facewise.gallery.milvus:MilvusStore",
]

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")  # RFC 3986's scheme, then the authority's "//"


def url_scheme(address: object) -> str:
    """The lower-case URL scheme ``address`` starts with (``"postgresql"`` for ``postgresql://…``); ``""`` for a
    file path, ``:memory:``, a :class:`~os.PathLike` (a path, never a URL) or anything that is not text."""
    if not isinstance(address, str):
        return ""
    m = _SCHEME.match(address)
    return m.group(1).lower() if m else ""


def is_server_address(address: object) -> bool:
    """Whether ``address`` is a store's URL (``postgresql://…``, ``milvus://…``, any registered scheme) rather than
    a SQLite gallery file (a path or ``:memory:``). A URL of a scheme no store declares is one too: opening it
    is refused (:func:`store_class`), it is never taken for a file name."""
    return url_scheme(address) != ""


def _resolve(target: str) -> type[StoreBase]:
    cls = resolve_class(target)
    if not (isinstance(cls, type) and issubclass(cls, StoreBase)):
        raise TypeError(f"{target}: not a StoreBase subclass")
    return cls


def store_classes() -> dict[str, type[StoreBase]]:
    """URL scheme → store class, from each listed store's declared ``schemes`` (two stores may not share one)."""
    table: dict[str, type[StoreBase]] = {}
    for target in STORES:
        cls = _resolve(target)
        for scheme in cls.schemes:
            other = table.setdefault(scheme.lower(), cls)
            if other is not cls:
                raise TypeError(f"URL scheme {scheme!r} is declared by both {other.__name__} and {cls.__name__}")
    return table


def register(target: str) -> None:
    """Add a store at run time: ``"module:Class"`` (a :class:`StoreBase` subclass that declares its ``schemes``),
    as a line in :data:`STORES` would."""
    if target not in STORES:
        cls = _resolve(target)
        if not cls.schemes:
            raise TypeError(f"{target}: declares no URL schemes")
        STORES.append(target)


def store_class(address: str | os.PathLike[str]) -> type[StoreBase]:
    """The class that opens ``address``: the store declaring its URL scheme, :class:`SQLiteStore` for a path."""
    scheme = url_scheme(address)
    if not scheme:
        return SQLiteStore
    table = store_classes()
    cls = table.get(scheme)
    if cls is None:
        known = ", ".join(f"{s}://" for s in sorted(table))
        raise ValidationError(f"no gallery store opens {scheme}:// addresses (a file path, or one of {known})",
                              what="db", value=f"{scheme}://", valid=known)
    return cls


def open_store(spec: str | os.PathLike[str]) -> Store:
    """``facewise.db`` → :class:`SQLiteStore`; ``postgresql://…`` → :class:`PgVectorStore` (query
    ``?schema=…&halfvec=1`` read by facewise, the rest passed to libpq); ``milvus://host:port?meta=side.db
    &token=…&prefix=…`` (``milvus+https://`` for TLS) → :class:`MilvusStore`; another registered scheme → its
    store; an unknown scheme → :class:`~facewise.errors.ValidationError` (never a file of that name)."""
    text = os.fspath(spec)
    return store_class(text).from_url(text)
