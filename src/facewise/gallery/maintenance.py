"""Right to erasure and retention of unknown-face records.

Erasure: deleting a person (or a sample) removes the samples, the template, the in-memory index
entries, every service thumbnail of those samples and the payloads of the audit-log events about
that person, in the same transaction. The gallery connection runs with ``secure_delete=ON`` (freed
cells and pages are overwritten with zeros) and the write-ahead log is checkpointed and truncated after
the delete, so the deleted vectors' bytes are gone from the file and from its ``-wal``.

Retention: an unnamed face record is a person of :mod:`facewise.batch.cluster` that nobody named yet
(``cluster-NNNNNN``, or the ``~unclustered`` faces waiting to be clustered), or a person whose metadata says
``{"kind": "unknown"}`` or ``{"kind": "cluster"}`` (a stranger seen by a camera...). A collection setting
``retention_days`` makes ``facewise retention`` (or :func:`apply_retention`) erase such samples older
than that many days, and such persons once they have no sample left. Named people are never expired.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from facewise.errors import FacewiseError

log = logging.getLogger(__name__)

UNKNOWN_KINDS = frozenset({"unknown", "cluster"})
RETENTION_SETTING = "retention_days"
ERASED = json.dumps({"erased": True})


def _has_table(cur: sqlite3.Cursor, name: str) -> bool:
    return cur.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone() is not None


def erase_linked_rows(cur: sqlite3.Cursor, collection: str, person_id: int | None, sample_ids: list[int]) -> None:
    """Inside the deleting transaction: drop the thumbnails of ``sample_ids`` and blank the audit payloads
    about ``person_id`` (the service's tables, where they exist in the same file)."""
    if sample_ids and _has_table(cur, "service_thumbnails"):
        cur.executemany("DELETE FROM service_thumbnails WHERE sample_id=?", [(i,) for i in sample_ids])
    if _has_table(cur, "service_audit"):
        if person_id is not None:  # person.create / rename / delete and face.enroll name the person's id
            cur.execute("UPDATE service_audit SET detail=? WHERE collection=? AND target=? AND "
                        "(action LIKE 'person.%' OR action = 'face.enroll')", (ERASED, collection, str(person_id)))
        cur.executemany("UPDATE service_audit SET detail=? WHERE collection=? AND target=? AND action = 'face.delete'",
                        [(ERASED, collection, str(sid)) for sid in sample_ids])


def erase_collection_rows(cur: sqlite3.Cursor, collection: str) -> None:
    """Inside the transaction deleting a collection: its thumbnails and its audit payloads about people and faces."""
    if _has_table(cur, "service_thumbnails"):
        cur.execute("DELETE FROM service_thumbnails WHERE collection=?", (collection,))
    if _has_table(cur, "service_audit"):
        cur.execute("UPDATE service_audit SET detail=? WHERE collection=? AND (action LIKE 'person.%' OR "
                    "action LIKE 'face.%')", (ERASED, collection))


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
