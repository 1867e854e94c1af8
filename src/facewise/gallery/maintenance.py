"""Right to erasure and retention of unknown-face records.

Erasure: deleting a person (or a sample, or a collection) removes the samples, the template and the
in-memory index entries in one transaction (the store), then the collection's cached files next to the
database (``<db>.ann/``: memory-mapped matrix, saved HNSW graph; rebuilt on next use). The gallery
connection runs with ``secure_delete=ON`` (freed cells and pages are overwritten with zeros) and the
write-ahead log is checkpointed and truncated after the delete, so the deleted vectors' bytes are gone
from the file and from its ``-wal``.

What other rooms derive from the gallery (the service's thumbnails, audit payloads and video jobs) is
theirs to erase: the gallery knows none of it. :class:`ErasureHooks` is the seam: a door that deletes
(``FaceWise`` with ``erasure=``) tells the hooks what was erased, and each room registers a listener
for its own data (``facewise.service.erasure``). Tables that live in the gallery's own SQLite file can
instead follow the delete inside its transaction through triggers the owning room installs.

Retention: an unnamed face record is a person of :mod:`facewise.batch.cluster` that nobody named yet
(``cluster-NNNNNN``, or the ``~unclustered`` faces waiting to be clustered), or a person whose metadata says
``{"kind": "unknown"}`` or ``{"kind": "cluster"}`` (a stranger seen by a camera...). A collection setting
``retention_days`` makes ``facewise retention`` (or :func:`apply_retention`) erase such samples older
than that many days, and such persons once they have no sample left. Named people are never expired.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from facewise.errors import FacewiseError

log = logging.getLogger(__name__)

UNKNOWN_KINDS = frozenset({"unknown", "cluster"})
RETENTION_SETTING = "retention_days"
ERASED = json.dumps({"erased": True})


@dataclass(frozen=True)
class Erasure:
    """What was erased from ``collection``: the whole collection, one person (with ``sample_ids``, their
    samples at the time), or single samples (``person_id`` ``None``)."""

    collection: str
    person_id: int | None = None
    person_name: str | None = None
    sample_ids: tuple[int, ...] = ()
    whole_collection: bool = False


ErasureListener = Callable[[Erasure], None]


class ErasureHooks:
    """A small listener registry: ``subscribe(fn)``; a door calls ``emit(Erasure(...))`` after the store
    committed the delete. Every listener runs even when one fails; the first failure is raised afterwards,
    as a :class:`FacewiseError` naming it (what the gallery erased stays erased)."""

    def __init__(self) -> None:
        self._listeners: list[ErasureListener] = []
        self._lock = threading.Lock()

    def subscribe(self, listener: ErasureListener) -> Callable[[], None]:
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def emit(self, event: Erasure) -> None:
        with self._lock:
            listeners = list(self._listeners)
        failed: list[str] = []
        for listener in listeners:
            try:
                listener(event)
            except Exception as exc:  # one room's failure must not stop the others' erasure
                log.exception("erasure listener %r failed for %s", listener, event)
                failed.append(f"{getattr(listener, '__qualname__', listener)}: {exc}")
        if failed:
            raise FacewiseError(f"erased from the gallery, but derived data may remain: {'; '.join(failed)}")


def cached_files(db_path: str, collection: str) -> list[Path]:
    """The collection's files next to a SQLite gallery (``<db>.ann/<collection>.matrix``, ``…-<hnsw>.*``)."""
    if db_path == ":memory:":
        return []
    folder = Path(db_path + ".ann")
    if not folder.is_dir():
        return []
    safe = re.escape("".join(c if c.isalnum() or c in "-_" else "_" for c in collection))
    mine = re.compile(rf"{safe}\.matrix(\.tmp)?|{safe}-\w+-m\d+-efc\d+(\.tmp)?\.(faiss|ids\.npy|rows\.npy|json)")
    return [p for p in folder.iterdir() if mine.fullmatch(p.name)]


def erase_cached_files(db_path: str, collection: str) -> int:
    """Remove the collection's cached matrix and saved HNSW graph (they hold its vectors in plaintext);
    the next search rebuilds them from the database. Returns the number of paths removed."""
    n = 0
    for path in cached_files(db_path, collection):
        try:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
            n += 1
        except FileNotFoundError:
            continue
    if n:
        log.info("erased %d cached index file(s) of collection %r", n, collection)
    return n


def flush_erased(db: sqlite3.Connection, wait_ms: int = 2000) -> bool:
    """Checkpoint and truncate the write-ahead log after an erasure; ``True`` if it is now empty.

    Waits at most ``wait_ms`` for other connections (a busy gallery must not stall a delete): if readers
    keep old pages alive, the log is truncated by the next checkpoint instead, which is logged.
    """
    try:
        before = int(db.execute("PRAGMA busy_timeout").fetchone()[0])
        db.execute(f"PRAGMA busy_timeout={int(wait_ms)}")
        try:
            row = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            db.execute(f"PRAGMA busy_timeout={before}")
    except sqlite3.OperationalError as exc:
        log.warning("write-ahead log not truncated after an erasure (%s); the next checkpoint does it", exc)
        return False
    if row is not None and row[0]:
        log.warning("write-ahead log not truncated after an erasure (other connections busy); "
                    "the next checkpoint does it")
        return False
    return True


# -- retention --------------------------------------------------------------------------------------------
@dataclass
class RetentionReport:
    collection: str
    days: float
    cutoff: str
    samples_erased: int = 0
    persons_erased: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"collection": self.collection, "days": self.days, "cutoff": self.cutoff,
                "samples_erased": self.samples_erased, "persons_erased": self.persons_erased}


def is_unknown_record(name: str, metadata: dict[str, Any] | None) -> bool:
    """An unnamed cluster (or waiting face) of facewise.batch.cluster, or a person marked unknown in its metadata."""
    if isinstance(metadata, dict) and metadata.get("kind") in UNKNOWN_KINDS:
        return True
    try:
        from facewise.gallery.names import is_cluster_name
    except ImportError:  # pragma: no cover - builds without clustering
        return False
    return is_cluster_name(name)


def _parse_ts(ts: str) -> datetime:
    t = datetime.fromisoformat(ts)
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def retention_days(store: Any, collection: str) -> float | None:
    value = store.get_collection(collection).settings.get(RETENTION_SETTING)
    return None if value is None else float(value)


def set_retention(store: Any, collection: str, days: float | None) -> None:
    """Store (or clear, with ``None``) the collection's retention of unknown-face records."""
    if days is not None and not days > 0:
        raise FacewiseError(f"retention must be a positive number of days, got {days}")
    store.update_settings(collection, **{RETENTION_SETTING: days})
    if days is None:  # update_settings drops None only from the merged dict: rewrite without the key
        settings = {k: v for k, v in store.get_collection(collection).settings.items() if k != RETENTION_SETTING}
        store.update_settings(collection, **settings)


def apply_retention(store: Any, collection: str, days: float | None = None, now: datetime | None = None,
                    dry_run: bool = False) -> RetentionReport | None:
    """Erase unknown-face samples older than ``days`` (default: the collection's setting; ``None`` if unset).

    ``now`` replaces the clock (tests); with ``dry_run`` nothing is deleted and the report says what would be.
    """
    days = retention_days(store, collection) if days is None else float(days)
    if days is None:
        return None
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    report = RetentionReport(collection, days, cutoff.isoformat(timespec="seconds"))
    for person in store.list_persons(collection):
        if not is_unknown_record(person.name, person.metadata):
            continue
        samples = store.list_samples(collection, person.id)
        old = [s for s in samples if _parse_ts(s.created_at) < cutoff]
        if len(old) == len(samples) and _parse_ts(person.created_at) < cutoff:
            report.samples_erased += len(old)
            report.persons_erased.append(person.name)
            if not dry_run:
                store.delete_person(collection, person.id)
            continue
        report.samples_erased += len(old)
        if not dry_run:
            for s in old:
                store.delete_sample(collection, s.id)
    if report.samples_erased or report.persons_erased:
        log.info("retention %g days in %r: %d samples, %d unknown persons %s", days, collection,
                 report.samples_erased, len(report.persons_erased), "would be erased" if dry_run else "erased")
    return report
