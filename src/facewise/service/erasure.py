"""Erasure of what the service derived from the gallery: face thumbnails, audit payloads, video jobs.

The gallery knows nothing of these. Two mechanisms reach them, whichever door deletes:

* **In this process** the service's :class:`~facewise.api.FaceWise` handles share one
  :class:`~facewise.gallery.maintenance.ErasureHooks`; the service registers the thumbnails and the video
  jobs on it (``Thumbnails.erase``, ``JobManager.erase``), so a REST delete of a person, face or collection
  erases their thumbnails, de-identifies job results and drops the collection's jobs with their files under
  ``<db>.jobs/``.
* **In the gallery's own SQLite file** (the default: service tables beside the gallery) the service installs
  triggers on the gallery's tables (:func:`install_triggers`), so a delete by *any* process (``facewise
  people delete``, retention) removes thumbnails and blanks audit payloads inside the deleting transaction,
  under the gallery connection's ``secure_delete``. :func:`sweep_orphans` removes thumbnails of samples
  deleted before the triggers existed. Video jobs are in memory: they check the gallery again on every read
  (:class:`~facewise.service.jobs.JobManager`).
"""

from __future__ import annotations

import logging
import sqlite3

from facewise.gallery.maintenance import ERASED

log = logging.getLogger(__name__)

GALLERY_TABLES = ("collections", "persons", "samples")

# each: (table it needs besides the gallery's, trigger)
TRIGGERS = (
    ("service_thumbnails", """
CREATE TRIGGER IF NOT EXISTS service_thumbnails_erase_sample AFTER DELETE ON samples BEGIN
  DELETE FROM service_thumbnails WHERE sample_id = OLD.id;
END"""),
    ("service_thumbnails", """
CREATE TRIGGER IF NOT EXISTS service_thumbnails_erase_collection BEFORE DELETE ON collections BEGIN
  DELETE FROM service_thumbnails WHERE collection = OLD.name;
END"""),
    ("service_audit", f"""
CREATE TRIGGER IF NOT EXISTS service_audit_erase_person AFTER DELETE ON persons BEGIN
  UPDATE service_audit SET detail = '{ERASED}' WHERE target = CAST(OLD.id AS TEXT)
    AND (action LIKE 'person.%' OR action = 'face.enroll')
    AND collection = (SELECT name FROM collections WHERE id = OLD.collection_id);
END"""),
    ("service_audit", f"""
CREATE TRIGGER IF NOT EXISTS service_audit_erase_sample AFTER DELETE ON samples BEGIN
  UPDATE service_audit SET detail = '{ERASED}' WHERE target = CAST(OLD.id AS TEXT) AND action = 'face.delete'
    AND collection = (SELECT name FROM collections WHERE id = OLD.collection_id);
END"""),
    ("service_audit", f"""
CREATE TRIGGER IF NOT EXISTS service_audit_erase_collection BEFORE DELETE ON collections BEGIN
  UPDATE service_audit SET detail = '{ERASED}' WHERE collection = OLD.name
    AND (action LIKE 'person.%' OR action LIKE 'face.%');
END"""),
)


def _tables(db: sqlite3.Connection) -> set[str]:
    return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def install_triggers(db: sqlite3.Connection) -> bool:
    """Install the erasure triggers for the service tables present in a file that also holds the gallery;
    ``False`` (nothing installed) when the file holds no gallery (yet), or no service table."""
    tables = _tables(db)
    if not set(GALLERY_TABLES) <= tables:
        return False
    wanted = [sql for table, sql in TRIGGERS if table in tables]
    for sql in wanted:
        db.execute(sql)
    return bool(wanted)


def sweep_orphans(db: sqlite3.Connection) -> int:
    """Drop thumbnails whose sample is gone (deleted while no trigger was installed); returns how many."""
    tables = _tables(db)
    if "service_thumbnails" not in tables or "samples" not in tables:
        return 0
    cur = db.execute("DELETE FROM service_thumbnails WHERE sample_id NOT IN (SELECT id FROM samples)")
    if cur.rowcount:
        log.info("erased %d thumbnail(s) of samples deleted earlier", cur.rowcount)
    return int(cur.rowcount)


def prepare_file(path: str) -> None:
    """At service start: triggers for the service tables beside the gallery in ``path``, then the sweep."""
    db = sqlite3.connect(path, timeout=30.0, isolation_level=None)
    try:
        db.execute("PRAGMA busy_timeout=30000")
        db.execute("PRAGMA secure_delete=ON")
        if install_triggers(db):
            sweep_orphans(db)
    finally:
        db.close()
