"""Galleries: persons, samples and templates behind one :class:`Store` interface; the rules in :mod:`.base`."""

from facewise.gallery.base import CAPABILITIES, StoreBase
from facewise.gallery.sqlite import SQLiteStore
from facewise.gallery.store import CollectionInfo, NewSample, SearchHit, Store

__all__ = ["CAPABILITIES", "CollectionInfo", "NewSample", "SQLiteStore", "SearchHit", "Store", "StoreBase"]
