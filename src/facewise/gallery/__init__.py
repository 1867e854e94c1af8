"""Galleries: persons, samples and templates behind one :class:`Store` interface."""

from facewise.gallery.sqlite import SQLiteStore
from facewise.gallery.store import CollectionInfo, NewSample, SearchHit, Store

__all__ = ["CollectionInfo", "NewSample", "SQLiteStore", "SearchHit", "Store"]
