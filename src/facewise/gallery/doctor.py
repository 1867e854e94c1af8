"""``facewise doctor``: is a gallery file healthy?

Checks, each reported as one line naming what is wrong:

* SQLite's own ``integrity_check`` and ``foreign_key_check``, and the vector sizes (``SQLiteStore.integrity_check``);
* the bookkeeping rows (schema version, generation counter) and the journal mode (WAL); no plaintext vector
  files (``<db>.ann/``) and no plaintext service thumbnails in an encrypted gallery;
* every sample belongs to a person of its own collection; every vector opens (the right key when encrypted,
  no plaintext in an encrypted gallery) and is finite;
* templates: one per person with samples, none for a person without, the sample count it was built from, and
  its vector equal to the quality-weighted mean of the person's samples;
* the search matrix: the one this process holds for the current generation equals the database (ids, persons,
  vectors), i.e. it is not stale;
* settings: the decision a collection stores (threshold, target FAR, its own calibration) passes the rule new
  settings pass (``facewise.decision.matching.check_decision``).

An empty list means healthy.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from facewise.errors import FacewiseError, InvalidNameError, NotFoundError
from facewise.gallery import SQLiteStore
from facewise.gallery.base import template_of
from facewise.gallery.crypto import is_sealed
from facewise.gallery.index import VectorIndex
from facewise.gallery.maintenance import cached_files
from facewise.gallery.names import check_name

log = logging.getLogger(__name__)

TEMPLATE_ATOL = 1e-4


def diagnose_path(path: str | Path) -> list[str]:
    """Open the gallery at ``path`` (never creating one) and diagnose it."""
    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f"{p}: no such gallery file")
    with SQLiteStore(p) as store:
        return diagnose(store)


def diagnose(store: SQLiteStore) -> list[str]:
    """Every problem found in ``store``'s file and in this process's search matrices."""
    problems = list(store.integrity_check())
    with store._lock:
        problems += _bookkeeping(store)
        if store.locked:
            from facewise.gallery.crypto import ENV_KEY, ENV_KEY_FILE

            return [*problems, f"the gallery is encrypted and no key is configured ({ENV_KEY} / {ENV_KEY_FILE}): "
                    "vectors, templates and the search matrix were not checked"]
        for (name,) in store._db.execute("SELECT name FROM collections ORDER BY name").fetchall():
            problems += [f"collection {name!r}: {p}" for p in _collection(store, name)]
    return problems


def _bookkeeping(store: SQLiteStore) -> list[str]:
    db = store._db
    out = []
    meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
    for key in ("schema_version", "generation"):
        if key not in meta:
            out.append(f"meta row {key!r} is missing")
        elif not str(meta[key]).lstrip("-").isdigit():
            out.append(f"meta row {key!r} is not an integer: {meta[key]!r}")
    if store.path != ":memory:":
        mode = db.execute("PRAGMA journal_mode").fetchone()[0]
        if str(mode).lower() != "wal":
            out.append(f"journal mode is {mode}, expected wal")
        side = Path(store.path + ".ann")  # memory-mapped matrices and HNSW graphs (gallery/ann.py) hold plaintext
        if store.encrypted and side.is_dir() and any(side.iterdir()):
            out.append(f"the gallery is encrypted but {side} holds plaintext vector files (collection settings "
                       "mmap / index=hnsw): delete them or turn those settings off")
    if store.encrypted and db.execute("SELECT 1 FROM sqlite_master WHERE name='service_thumbnails'").fetchone():
        plain = sum(not is_sealed(b) for (b,) in db.execute("SELECT jpeg FROM service_thumbnails"))
        if plain:
            out.append(f"the gallery is encrypted but {plain} service thumbnail(s) are plaintext: seal them with "
                       "facewise encrypt rotate --db … --new-key-file <the current key file>")
    return out


def _collection(store: SQLiteStore, name: str) -> list[str]:
    db = store._db
    cid, dim = db.execute("SELECT id, dim FROM collections WHERE name=?", (name,)).fetchone()
    out = []
    n = db.execute("SELECT COUNT(*) FROM samples s JOIN persons p ON p.id = s.person_id "
                   "WHERE s.collection_id = ? AND p.collection_id != s.collection_id", (cid,)).fetchone()[0]
    if n:
        out.append(f"{n} samples belong to a person of another collection")
    vectors, bad = _vectors(store, cid, dim)
    out += bad
    out += _templates(store, cid, dim, vectors)
    out += _index(store, name, vectors)
    out += _saved_files(store, name, vectors)
    out += _settings(store, name)
    out += _names(store, cid)
    return out


def _saved_files(store: SQLiteStore, name: str, vectors: dict[int, tuple[int, float, np.ndarray]]) -> list[str]:
    """Saved search files (``<db>.ann/``) that hold samples the database no longer has: erased vectors on disk."""
    out = []
    for path in cached_files(store.path, name):
        try:
            if path.name.endswith(".ids.npy"):
                ids = np.load(path)
            elif path.name.endswith(".matrix"):
                ids = VectorIndex.load(path, mmap=True).sample_ids
            else:
                continue
        except (OSError, ValueError, KeyError) as exc:
            out.append(f"saved search file {path} cannot be read ({exc}): delete it (rebuilt on next use)")
            continue
        gone = sorted(set(int(i) for i in ids) - set(vectors))
        if gone:
            out.append(f"saved search file {path} holds {len(gone)} vectors of samples no longer in the gallery "
                       f"(erased data on disk, e.g. sample {gone[0]}): delete {path.parent} (rebuilt on next use)")
    return out


def _names(store: SQLiteStore, cid: int) -> list[str]:
    """Names stored before today's name rules (gallery/names.py): still reachable by id, to be renamed."""
    out = []
    for pid, name in store._db.execute("SELECT id, name FROM persons WHERE collection_id=? ORDER BY id", (cid,)):
        try:
            check_name(name)
        except InvalidNameError as exc:
            out.append(f"person {pid}: {exc}; rename it: facewise people rename {pid} NEW_NAME")
    return out


def _settings(store: SQLiteStore, name: str) -> list[str]:
    """The stored decision settings, checked by the rule that refuses invalid new ones."""
    from facewise.decision.matching import decide
    from facewise.models.profiles import load_profile

    info = store.get_collection(name)
    try:
        profile = load_profile(info.profile)
    except FacewiseError:  # a profile from a JSON file elsewhere: its calibration is not known here
        log.info("collection %r: profile %r is not a shipped one; decision settings not checked", name, info.profile)
        return []
    try:
        decide(profile, info.settings)  # verification
        decide(profile, info.settings, info.persons)  # identification (a stored target FPIR)
    except FacewiseError as exc:
        return [f"invalid decision setting: {exc} (set a valid one: facewise threshold --db … -c {name} --fpir P, "
                "--far F or --score S)"]
    return []


def _vectors(store: SQLiteStore, cid: int, dim: int) -> tuple[dict[int, tuple[int, float, np.ndarray]], list[str]]:
    """sample id -> (person id, quality, vector), and the problems of the ones that do not open."""
    from facewise.gallery.crypto import sample_aad

    good: dict[int, tuple[int, float, np.ndarray]] = {}
    unreadable: list[str] = []
    nonfinite = 0
    rows = store._db.execute("SELECT id, person_id, quality, image_sha256, face_index, embedding FROM samples "
                             "WHERE collection_id=? ORDER BY id", (cid,)).fetchall()
    for sid, pid, quality, sha, face_index, blob in rows:
        try:
            vec = store._vec(blob, sample_aad(cid, sha, face_index))
        except FacewiseError as exc:
            unreadable.append(f"sample {sid}: {exc}")
            continue
        if vec.shape != (dim,):
            continue  # reported by integrity_check (wrong vector size)
        if not np.isfinite(vec).all():
            nonfinite += 1
            continue
        good[int(sid)] = (int(pid), float(quality), vec)
    out = unreadable[:5]
    if len(unreadable) > 5:
        out.append(f"... and {len(unreadable) - 5} more samples whose vector does not open")
    if nonfinite:
        out.append(f"{nonfinite} samples with non-finite vectors")
    return good, out


def _templates(store: SQLiteStore, cid: int, dim: int, vectors: dict[int, tuple[int, float, np.ndarray]]) -> list[str]:
    from facewise.gallery.crypto import template_aad

    db = store._db
    out = []
    by_person: dict[int, list[tuple[float, np.ndarray]]] = {}
    for pid, quality, vec in vectors.values():
        by_person.setdefault(pid, []).append((quality, vec))
    counts = dict(db.execute("SELECT person_id, COUNT(*) FROM samples WHERE collection_id=? GROUP BY person_id",
                             (cid,)).fetchall())
    templates = {r[0]: (r[1], r[2]) for r in db.execute(
        "SELECT t.person_id, t.embedding, t.n FROM templates t JOIN persons p ON p.id = t.person_id "
        "WHERE p.collection_id=?", (cid,)).fetchall()}
    names = dict(db.execute("SELECT id, name FROM persons WHERE collection_id=?", (cid,)).fetchall())
    for pid, name in sorted(names.items()):
        n = counts.get(pid, 0)
        if pid not in templates:
            if n:
                out.append(f"person {name!r} has {n} samples but no template")
            continue
        blob, tn = templates[pid]
        if not n:
            out.append(f"person {name!r} has a template but no samples")
            continue
        if tn != n:
            out.append(f"person {name!r}: template built from {tn} samples, the person has {n}")
        try:
            t = store._vec(blob, template_aad(pid))
        except FacewiseError as exc:
            out.append(f"person {name!r}: template does not open: {exc}")
            continue
        items = by_person.get(pid, [])
        if t.shape != (dim,) or len(items) != n:
            if t.shape != (dim,):
                out.append(f"person {name!r}: template has {t.size} values, expected {dim}")
            continue
        mean = template_of(np.stack([v for _, v in items]), [q for q, _ in items])  # the stores' own rule
        if not np.allclose(t, mean, atol=TEMPLATE_ATOL):
            out.append(f"person {name!r}: template differs from the mean of the samples "
                       f"(max |d| {float(np.abs(t - mean).max()):.2e})")
    return out


def _index(store: SQLiteStore, name: str, vectors: dict[int, tuple[int, float, np.ndarray]]) -> list[str]:
    """The matrix this process would search now (cached or rebuilt) against the database rows."""
    try:
        ix: Any = store.index(name)
    except FacewiseError as exc:
        return [f"search matrix cannot be built: {exc}"]
    ids = [int(i) for i in ix.sample_ids]
    if sorted(ids) != sorted(vectors) or len(ids) != len(set(ids)):
        missing, extra = set(vectors) - set(ids), set(ids) - set(vectors)
        return [f"search matrix is stale: {len(missing)} samples missing, {len(extra)} not in the database"]
    mat = ix.matrix
    out = []
    wrong = [sid for row, sid in enumerate(ids)
             if int(ix.person_ids[row]) != vectors[sid][0] or not np.array_equal(mat[row], vectors[sid][2])]
    if wrong:
        out.append(f"search matrix is stale: {len(wrong)} rows differ from the database (e.g. sample {wrong[0]})")
    return out
