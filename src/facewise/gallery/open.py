"""Open a gallery from one string: a SQLite path, a PostgreSQL DSN or a Milvus URI."""

from __future__ import annotations

import os
from urllib.parse import parse_qs, urlsplit, urlunsplit

from facewise.gallery.sqlite import SQLiteStore
from facewise.gallery.store import Store


def open_store(spec: str | os.PathLike[str]) -> Store:
    """``facewise.db`` → :class:`SQLiteStore`; ``postgresql://…`` → :class:`PgVectorStore` (query
    ``?schema=…&halfvec=1`` read by facewise, the rest passed to libpq); ``milvus://host:port?meta=side.db
    &token=…&prefix=…`` (``milvus+https://`` for TLS) → :class:`MilvusStore`."""
    text = os.fspath(spec)
    if text.startswith(("postgresql://", "postgres://")):
        from facewise.gallery.pgvector import PgVectorStore

        parts = urlsplit(text)
        query = parse_qs(parts.query)
        ours = {k: query.pop(k)[0] for k in ("schema", "halfvec") if k in query}
        rest = "&".join(f"{k}={v[0]}" for k, v in query.items())
        dsn = urlunsplit((parts.scheme, parts.netloc, parts.path, rest, ""))
        return PgVectorStore(dsn, schema=ours.get("schema", "facewise"), halfvec=ours.get("halfvec") in ("1", "true"))
    if text.startswith(("milvus://", "milvus+http://", "milvus+https://")):
        from facewise.gallery.milvus import MilvusStore

        parts = urlsplit(text)
        first = {k: v[0] for k, v in parse_qs(parts.query).items()}
        scheme = "https" if parts.scheme.endswith("https") else "http"
        return MilvusStore(f"{scheme}://{parts.netloc}", meta=first.get("meta", "facewise-milvus.db"),
                           token=first.get("token", ""), prefix=first.get("prefix", "facewise"))
    return SQLiteStore(text)
