"""Models and galleries shared by every request: one pipeline per profile, one store, one CPU pool.

Model backends are loaded once per process (the registry caches them) and are thread-safe, so
requests only need their own light :class:`~facewise.collection.Collection` (or
:class:`~facewise.api.FaceWise`) handle, bound to a collection and reusing the profile's
:class:`~facewise.core.engine.FaceEngine` (one per profile, built once).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import io
import logging
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np
from PIL import Image

from facewise.api import FaceWise
from facewise.collection import Collection
from facewise.core.analysis import Analyzer
from facewise.core.engine import FaceEngine
from facewise.core.pipeline import Pipeline
from facewise.errors import ConflictError, FacewiseError, NotFoundError, ValidationError
from facewise.gallery.crypto import is_sealed, thumbnail_aad
from facewise.gallery.maintenance import Erasure, ErasureHooks
from facewise.gallery.names import check_collection_name
from facewise.gallery.open import open_store
from facewise.gallery.store import CollectionInfo, Store
from facewise.models import attributes
from facewise.models.profiles import Profile, load_profile, profile_names
from facewise.service.erasure import install_triggers
from facewise.types import Face

log = logging.getLogger(__name__)
T = TypeVar("T")

THUMB_SIZE = 112
THUMB_SCHEMA = """
CREATE TABLE IF NOT EXISTS service_thumbnails(
  sample_id INTEGER NOT NULL, image_sha256 TEXT NOT NULL, collection TEXT NOT NULL, jpeg BLOB NOT NULL,
  PRIMARY KEY(sample_id, image_sha256));
"""


def face_thumbnail(pixels: np.ndarray, face: Face, size: int = THUMB_SIZE) -> bytes:
    """A small square JPEG around a face box (with some margin), for the web page."""
    h, w = pixels.shape[:2]
    cx, cy = face.box.center
    half = max(face.box.width, face.box.height) * 0.75
    x1, y1 = max(0, int(cx - half)), max(0, int(cy - half))
    x2, y2 = min(w, int(cx + half)), min(h, int(cy + half))
    crop = Image.fromarray(pixels[y1:max(y2, y1 + 1), x1:max(x2, x1 + 1)])
    crop.thumbnail((size, size))
    buf = io.BytesIO()
    crop.save(buf, format="JPEG", quality=80)
    return buf.getvalue()


class Thumbnails:
    """Face crops of enrolled samples, keyed by (sample id, image sha256) so a reused id never matches.

    ``store`` is the gallery in the same file: when it is encrypted at rest, thumbnails are sealed with its
    key too (a face crop is as personal as its vector). Plaintext thumbnails from before encryption are
    still served; ``facewise encrypt rotate`` seals them. In the gallery's file, triggers erase a deleted
    sample's or collection's thumbnails whichever process deletes (:mod:`facewise.service.erasure`);
    :meth:`erase` is the in-process listener for every gallery.
    """

    def __init__(self, path: str, store: Store | None = None, beside_gallery: bool = True) -> None:
        """``beside_gallery=False``: ``path`` is the service's own file and the gallery is elsewhere (a server
        store); its samples are then not looked up here, and only :meth:`erase` removes crops."""
        self._store = store
        self._beside = beside_gallery
        self._db = sqlite3.connect(path, timeout=30.0, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA busy_timeout=30000")
        self._db.execute("PRAGMA secure_delete=ON")
        self._lock = threading.Lock()
        with self._lock:
            self._db.executescript(THUMB_SCHEMA)
            self._triggers = beside_gallery and install_triggers(self._db)

    def put(self, collection: str, sample_id: int, sha256: str, jpeg: bytes) -> None:
        if self._store is not None:
            jpeg = self._store.seal_blob(jpeg, thumbnail_aad(sample_id, sha256))
        with self._lock:
            if self._beside and not self._triggers:  # the gallery's tables were created after this file was opened
                self._triggers = install_triggers(self._db)
            if not self._triggers:
                self._db.execute("INSERT OR REPLACE INTO service_thumbnails VALUES(?,?,?,?)",
                                 (sample_id, sha256, collection, jpeg))
                return
            # beside the gallery: only for a sample that still exists (a delete that won the race has run
            # its trigger already, and would leave this crop behind)
            self._db.execute("INSERT OR REPLACE INTO service_thumbnails SELECT ?,?,?,? "
                             "WHERE EXISTS (SELECT 1 FROM samples WHERE id=?)",
                             (sample_id, sha256, collection, jpeg, sample_id))

    def get(self, sample_id: int, sha256: str) -> bytes | None:
        with self._lock:
            row = self._db.execute("SELECT jpeg FROM service_thumbnails WHERE sample_id=? AND image_sha256=?",
                                   (sample_id, sha256)).fetchone()
        if row is None:
            return None
        blob = bytes(row[0])
        if not is_sealed(blob):
            return blob
        if self._store is None:
            raise FacewiseError("this thumbnail is encrypted at rest and no gallery key is at hand")
        return self._store.unseal_blob(blob, thumbnail_aad(sample_id, sha256))

    def drop(self, sample_ids: list[int]) -> None:
        with self._lock:
            self._db.executemany("DELETE FROM service_thumbnails WHERE sample_id=?", [(i,) for i in sample_ids])

    def drop_collection(self, collection: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM service_thumbnails WHERE collection=?", (collection,))

    def erase(self, event: Erasure) -> None:
        """Erasure listener: the thumbnails of the erased samples, or of the whole collection."""
        if event.whole_collection:
            self.drop_collection(event.collection)
        elif event.sample_ids:
            self.drop(list(event.sample_ids))

    def close(self) -> None:
        with self._lock:
            self._db.close()


class Engines:
    """Store, pipelines, optional analysers, erasure hooks and the CPU pool of one service process.

    ``db`` is anything :func:`~facewise.gallery.open.open_store` opens: a SQLite path, ``postgresql://…``
    or ``milvus://…``.
    """

    def __init__(self, db: str, default_profile: str, workers: int) -> None:
        self.store: Store = open_store(db)
        self.erasure = ErasureHooks()
        default = load_profile(default_profile)  # a shipped name or a profile .json
        self.default_profile = default.name
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="facewise-cpu")
        self._profiles: dict[str, Profile] = {default.name: default}
        self._pipelines: dict[str, Pipeline] = {}
        self._engines: dict[str, FaceEngine] = {}
        self._lock = threading.Lock()
        self._create_lock = threading.Lock()
        self.analysers = Analysers()
        self.max_faces: int | None = None  # faces analysed per image (the service's limit)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.store.close()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run CPU-bound work in the pool, off the event loop."""
        loop = asyncio.get_running_loop()  # the request's context variables go along (see core.pipeline)
        return await loop.run_in_executor(self.pool, contextvars.copy_context().run, functools.partial(fn, *args))

    # -- profiles -------------------------------------------------------------------------------
    def profile(self, name: str) -> Profile:
        with self._lock:
            if name not in self._profiles:
                if name not in profile_names():
                    known = ", ".join(profile_names())
                    raise ValidationError(f"unknown profile {name[:80]!r}; choose one of {known}", what="profile",
                                          value=name[:200], valid=known)
                self._profiles[name] = load_profile(name)
            return self._profiles[name]

    def pipeline(self, name: str) -> Pipeline:
        profile = self.profile(name)
        with self._lock:
            if name not in self._pipelines:
                self._pipelines[name] = Pipeline(profile, max_faces=self.max_faces, crowd_yield_s=1.0)
            return self._pipelines[name]

    def engine(self, name: str) -> FaceEngine:
        """The face engine of profile ``name``: its pipeline and the shared analysis models, built once."""
        pipeline = self.pipeline(name)
        with self._lock:
            if name not in self._engines:
                self._engines[name] = FaceEngine(pipeline.profile, pipeline=pipeline, analyzer=self.analysers.analyzer)
            return self._engines[name]

    def profiles(self) -> list[dict[str, Any]]:
        out = []
        for name in profile_names():
            p = load_profile(name)
            out.append({"name": p.name, "description": p.description, "available": p.available(),
                        "commercial_use": p.commercial_use, "default": p.name == self.default_profile})
        return out

    def warm_up(self) -> None:
        """Load the default profile's models now, so the first request is not slow."""
        self.pipeline(self.default_profile).load()

    def ready(self) -> bool:
        pipe = self._pipelines.get(self.default_profile)
        return pipe is not None and "detector" in pipe.__dict__ and "embedders" in pipe.__dict__

    # -- collections ----------------------------------------------------------------------------
    def create_collection(self, name: str, profile: str | None) -> CollectionInfo:
        prof = self.profile(profile or self.default_profile)
        if not prof.available():
            raise FacewiseError(f"profile {prof.name!r} cannot run here: its model files are missing")
        check_collection_name(name)
        with self._create_lock:
            if any(c.name == name for c in self.store.list_collections()):
                raise ConflictError(f"collection {name!r} already exists")
            return self.store.ensure_collection(name, prof.name, prof.signature, prof.dim)

    def collection(self, name: str) -> Collection:
        """An existing collection (404 if missing) with its profile's engine and the erasure hooks; it never
        creates one (a request or job in flight never brings a deleted collection back)."""
        info = self.store.get_collection(name)
        return Collection(self.engine(info.profile), self.store, name, create=False, erasure=self.erasure)

    def face_wise(self, collection: str) -> FaceWise:
        """A :class:`FaceWise` handle on an existing collection (404 if missing), sharing its profile's pipeline,
        the analysis models and the erasure hooks."""
        info = self.store.get_collection(collection)
        engine = self.engine(info.profile)
        return FaceWise(db=self.store, profile=engine.profile, collection=collection, pipeline=engine.pipeline,
                        analyzer=engine.analyzer, erasure=self.erasure, create=False)

    def delete_collection(self, name: str) -> None:
        """Delete a collection; the erasure listeners drop what the service derived from it."""
        self.collection(name).delete()

    # -- what video jobs check on every read (facewise.service.jobs.GalleryView) ---------------
    def collection_stamp(self, collection: str) -> str | None:
        try:
            return str(self.store.get_collection(collection).created_at)
        except NotFoundError:
            return None

    def person_exists(self, collection: str, person: str | int) -> bool:
        try:
            self.store.get_person(collection, person)
        except NotFoundError:
            return False
        return True

    def ensure_default_collection(self) -> None:
        """A fresh gallery gets a ``default`` collection with the server's profile."""
        if not self.store.list_collections():
            prof = self.profile(self.default_profile)
            self.store.ensure_collection("default", prof.name, prof.signature, prof.dim)
            log.info("created collection 'default' (profile %s)", prof.name)


class Analysers:
    """The registered face attributes (:mod:`facewise.models.attributes`, by their registry names) through
    :mod:`facewise.core.analysis`, each only where its model is here."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.analyzer = Analyzer()

    def available(self) -> dict[str, bool]:
        """Every registered face attribute, in registry order, and whether it runs here; loads each on first use
        (thread-safe)."""
        out: dict[str, bool] = {}
        with self._lock:
            for name in attributes.names():
                try:
                    out[name] = self.analyzer.attribute(name) is not None
                except (FacewiseError, OSError) as exc:
                    log.warning("face attribute %s unavailable: %s", name, exc)
                    out[name] = False
        return out

    def analyse(self, pixels: np.ndarray, faces: list[Face], what: tuple[str, ...] | None = None) -> list[str]:
        """Analyze: fill ``face.attributes`` with the registered attributes named in ``what`` (default: every
        one; an attribute's options, like ``live_map``, only when named), as
        :meth:`facewise.api.FaceWise.analyze` does; returns the attributes that ran."""
        available = self.available()
        wanted = attributes.names() if what is None else what
        if faces:
            self.analyzer.analyze(pixels, faces, wanted)
        return [n for n in attributes.names() if n in wanted and available.get(n)]
