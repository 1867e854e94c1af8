"""Open a gallery from one string: a SQLite path, or a URL whose scheme names a store."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from facewise.gallery.sqlite import SQLiteStore
from facewise.gallery.store import Store
from facewise.models.registry import resolve_class

# URL schemes → "module:Class"; the class builds itself with ``from_url(url)``. A new store is one module in
# gallery/ (a StoreBase subclass with its storage hooks and declared capabilities) and one line here.
STORES: dict[str, str] = {
    "postgresql": "facewise.gallery.pgvector:PgVectorStore",
    "postgres": "facewise.gallery.pgvector:PgVectorStore",
    "milvus": "facewise.gallery.milvus:MilvusStore",
    "milvus+http": "facewise.gallery.milvus:MilvusStore",
    "milvus+https": "facewise.gallery.milvus:MilvusStore",
}


def open_store(spec: str | os.PathLike[str]) -> Store:
    """``facewise.db`` → :class:`SQLiteStore`; ``postgresql://…`` → :class:`PgVectorStore` (query
    ``?schema=…&halfvec=1`` read by facewise, the rest passed to libpq); ``milvus://host:port?meta=side.db
    &token=…&prefix=…`` (``milvus+https://`` for TLS) → :class:`MilvusStore`."""
    text = os.fspath(spec)
    scheme = urlsplit(text).scheme if "://" in text else ""
    target = STORES.get(scheme)
    if target is None:
        return SQLiteStore(text)
    store: Store = resolve_class(target).from_url(text)
    return store
