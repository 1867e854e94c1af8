"""Galleries: persons, samples and templates behind one :class:`Store` interface."""

from .sqlite import SQLiteStore
from .store import CollectionInfo, NewSample, SearchHit, Store

__all__ = ["CollectionInfo", "NewSample", "SQLiteStore", "SearchHit", "Store"]
