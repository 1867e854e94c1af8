"""Approximate (HNSW) search for large collections of the embedded gallery, with exact re-ranking.

Exact search over the float32 matrix (:class:`~facewise.gallery.index.VectorIndex`) stays the default:
it runs at memory bandwidth and is exact. A collection opts in to the HNSW index with its settings::

    store.update_settings("default", index="hnsw", index_min_size=100_000, index_storage="sq8")

and :meth:`SQLiteStore.search` then uses it once the collection holds ``index_min_size`` samples.

* Library: faiss (``faiss-cpu``) HNSW, chosen by measurement over usearch on this project's face-like
  data (docs/SCALE.md): at equal recall it built faster on two cores and searched as fast.
* Storage (``index_storage``): ``flat`` (float32 in the graph: scores are exact already), ``fp16`` or
  ``sq8`` (int8 scalar quantiser: a quarter of the memory). With ``fp16``/``sq8`` every candidate of the
  beam is re-scored exactly against float32 rows kept in a row-major, memory-mapped file next to the
  database (only the candidate rows are read).
* ``pq4``: no graph. Every sample's 4-bit PQ code (faiss fast-scan, OPQ-rotated, 32 B at 256-d) is scanned
  in full (SIMD look-ups) and the best ``index_ef`` (default ``PQ4_RERANK``) are re-scored exactly as above.
  A stranger's best impostor is a tail point of a ~100-dimensional score distribution that graph walks
  miss; the scan does not. At 1M samples it meets recall@1 ≥ 0.999 under 2 ms (docs/SCALE.md).
* Search answers the identification question: the best person and every person above the collection's
  threshold. The beam (``index_ef``, default :data:`DEFAULT_EF`, chosen with ``bench/search.py``) is
  re-scored exactly; a query is done once it holds ``k`` persons or reaches below the threshold, else
  the beam doubles (past :data:`MAX_EF`: exact search). Exact search stays for collections below
  ``index_min_size`` and for callers that use the exact index (``store.index(c).search``).
* Building: in a background thread (search stays exact meanwhile); saved next to the database
  (``<db>.ann/<collection>.*``) and reused by the next process when it matches the gallery.
* Consistency: new samples are added to the graph incrementally; deleted samples become tombstones,
  filtered out of the results, and the graph is rebuilt in the background once tombstones exceed
  ``REBUILD_FRACTION`` of it. The ANN follows the exact index, which follows the database (the
  ``generation`` counter), so other writers' changes reach it too.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from facewise.decision.matching import decide
from facewise.errors import FacewiseError, install_hint
from facewise.gallery.index import VectorIndex, distinct_persons
from facewise.models.profiles import load_profile

if TYPE_CHECKING:
    from facewise.gallery.sqlite import SQLiteStore

log = logging.getLogger(__name__)

REBUILD_FRACTION = 0.2
DEFAULT_MIN_SIZE = 50_000
DEFAULT_EF = 128  # measured at 100k (docs/SCALE.md): every mate found, 99.65 % of decisions as exact
MAX_EF = 2048  # a query still unanswered past this beam is searched exactly
PQ4_RERANK = 1000  # pq4's index_ef: codes re-scored exactly per query (1M × 256: recall@1 0.9993, SCALE.md)


@dataclass(frozen=True)
class AnnConfig:
    """HNSW settings of one collection (from its settings: ``index_*`` keys)."""

    storage: str = "sq8"  # flat | fp16 | sq8 | pq4 (no graph: a full scan of 4-bit codes)
    m: int = 48  # m 48 / efConstruction 200 over 32 / 80: above-threshold recall 0.995 vs 0.972 at efSearch
    ef_construction: int = 200  # 128, for 3.3x the build time (docs/SCALE.md)
    ef_search: int = DEFAULT_EF  # the first beam; it doubles while a query is not answered
    min_size: int = DEFAULT_MIN_SIZE

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> AnnConfig:
        storage = str(settings.get("index_storage", "sq8"))
        cfg = cls(storage=storage, m=int(settings.get("index_m", 48)),
                  ef_construction=int(settings.get("index_ef_construction", 200)),
                  ef_search=int(settings.get("index_ef", PQ4_RERANK if storage == "pq4" else DEFAULT_EF)),
                  min_size=int(settings.get("index_min_size", DEFAULT_MIN_SIZE)))
        if cfg.storage not in ("flat", "fp16", "sq8", "pq4"):
            raise ValueError(f"index_storage must be flat, fp16, sq8 or pq4, got {cfg.storage!r}")
        return cfg

    def key(self) -> str:
        return f"{self.storage}-m{self.m}-efc{self.ef_construction}"


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError(f"the HNSW index needs faiss: {install_hint('ann')}") from exc
    return faiss


class HnswIndex:
    """faiss HNSW (or, storage ``pq4``, fast-scan codes scanned in full) over (sample id → unit vector), with
    tombstones and exact re-ranking."""

    def __init__(self, dim: int, cfg: AnnConfig) -> None:
        faiss = _faiss()
        self.dim, self.cfg = dim, cfg
        if cfg.storage == "pq4":  # 4 dims per sub-quantizer, at most 64 of them (the scan's cost grows with them)
            sub = next(d for d in (64, 32, 16, 8, 4, 2, 1) if dim % d == 0 and (d * 4 <= dim or d == 1))
            base = faiss.index_factory(dim, f"OPQ{sub},PQ{sub}x4fs", faiss.METRIC_INNER_PRODUCT)
        elif cfg.storage == "flat":
            base = faiss.IndexHNSWFlat(dim, cfg.m, faiss.METRIC_INNER_PRODUCT)
        else:
            qt = faiss.ScalarQuantizer.QT_fp16 if cfg.storage == "fp16" else faiss.ScalarQuantizer.QT_8bit
            base = faiss.IndexHNSWSQ(dim, qt, cfg.m, faiss.METRIC_INNER_PRODUCT)
        if cfg.storage != "pq4":
            base.hnsw.efConstruction = cfg.ef_construction
        self.index = faiss.IndexIDMap2(base)
        self.ids = np.zeros(0, np.int64)  # sample ids in the graph, ascending; row i of `rows` is ids[i]
        self.tombstones: set[int] = set()
        self._rows = np.zeros((0, dim), np.float32)  # row-major float32 copy for re-ranking (capacity)
        self._lookup: np.ndarray | None = None  # sample id → row (dense ids), or empty: binary search
        self._person_key: tuple[int, int, int] | None = None  # (exact.serial, its version, rows) of _person_rows
        self._person_rows = np.zeros(0, np.int64)  # person of each row, from the exact index

    def __len__(self) -> int:
        return len(self.ids) - len(self.tombstones)

    @property
    def exact_scores(self) -> bool:
        """Flat storage: the graph's scores are the exact float32 inner products."""
        return self.cfg.storage == "flat"

    @property
    def rows(self) -> np.ndarray:
        return self._rows[: len(self.ids)]

    def build(self, sample_ids: np.ndarray, vectors: np.ndarray) -> None:
        base = self.index.index
        if not base.is_trained:
            pick = np.random.default_rng(0).choice(len(vectors), min(len(vectors), 50_000), replace=False)
            base.train(np.ascontiguousarray(vectors[np.sort(pick)], np.float32))
        self.add(sample_ids, vectors)

    def add(self, sample_ids: np.ndarray, vectors: np.ndarray) -> None:
        sids = np.asarray(sample_ids, np.int64)
        if len(sids) == 0:
            return
        vecs = np.ascontiguousarray(vectors, np.float32).reshape(-1, self.dim)
        for a in range(0, len(sids), 20_000):
            self.index.add_with_ids(vecs[a:a + 20_000], sids[a:a + 20_000])
        n, need = len(self.ids), len(self.ids) + len(sids)
        if not self.exact_scores:
            if need > len(self._rows) or not self._rows.flags.writeable:
                grown = np.zeros((max(need, 2 * len(self._rows), 64), self.dim), np.float32)
                grown[:n] = self._rows[:n]
                self._rows = grown
            self._rows[n:need] = vecs
        self.ids = np.concatenate([self.ids, sids])
        self._lookup = None
        if n and sids.min() <= self.ids[n - 1]:  # ids normally arrive ascending; keep them sorted
            order = np.argsort(self.ids, kind="stable")
            self.ids = self.ids[order]
            if not self.exact_scores:
                self._rows[:need] = self._rows[:need][order]

    def remove(self, sample_ids: np.ndarray) -> None:
        self.tombstones.update(int(s) for s in sample_ids)

    def search(self, queries: np.ndarray, k: int, exact: VectorIndex,
               threshold: float | None = None) -> list[list[tuple[int, float, int]]]:
        """Per query the best ``k`` persons, or fewer when every person above ``threshold`` is among them.

        The graph is walked with the collection's efSearch and every candidate of the beam is re-scored
        exactly; a query is answered once its candidates hold ``k`` distinct persons or reach below
        ``threshold`` (the persons that can still be missing cannot be accepted). Otherwise the beam
        doubles, and past ``MAX_EF`` the query falls back to exact search. Persons are looked up in
        ``exact`` (kept in step by the manager).
        """
        faiss = _faiss()
        q = np.ascontiguousarray(queries, np.float32).reshape(-1, self.dim)
        # OpenMP threads help only across queries; for one query they just wait for each other, and on a
        # loaded machine that costs milliseconds (the setting is per calling thread: builds are unaffected)
        faiss.omp_set_num_threads(max(1, min(len(q), os.cpu_count() or 1)))
        out: list[list[tuple[int, float, int]]] = [[] for _ in range(len(q))]
        todo = np.arange(len(q))
        scan = self.cfg.storage == "pq4"  # codes are approximate: their order says little near the threshold
        ef = max(self.cfg.ef_search, k)
        while len(todo):
            fetch = min(len(self.ids), ef + min(len(self.tombstones), 1000))
            params = None if scan else faiss.SearchParametersHNSW(efSearch=fetch)
            dist, labels = self.index.search(q[todo], fetch, params=params)
            again = []
            for j, qi in enumerate(todo):
                hits, low = self._answer(q[qi], labels[j], dist[j], k, exact)
                enough = len(hits) >= k or (threshold is not None and low < threshold and not scan)
                if enough or fetch >= len(self.ids):
                    out[qi] = hits
                else:
                    again.append(qi)
            ef *= 2
            if again and ef > MAX_EF:
                for qi, hits in zip(again, exact.search(q[again], k), strict=True):
                    out[qi] = hits
                break
            todo = np.asarray(again, np.int64)
        return out

    def _answer(self, q: np.ndarray, labels: np.ndarray, dist: np.ndarray, k: int,
                exact: VectorIndex) -> tuple[list[tuple[int, float, int]], float]:
        """The best ``k`` persons among one query's candidates (re-scored exactly) and the lowest score."""
        keep = labels >= 0
        cand, scores = labels[keep], dist[keep]
        if self.tombstones:
            live = np.array([int(c) not in self.tombstones for c in cand], bool)
            cand, scores = cand[live], scores[live]
        if len(cand) == 0:
            return [], -np.inf
        pos = self._positions(cand)
        srt = np.argsort(pos)  # ascending rows: a forward pass over the file
        pos, scores = pos[srt], scores[srt]
        if not self.exact_scores:  # einsum: one thread (BLAS wakes its pool past ~2,000 rows: ms on a busy box)
            scores = np.einsum("ij,j->i", self.rows[pos], q)
        order = np.argsort(-scores, kind="stable")
        return distinct_persons(order, scores[order], self._persons(exact)[pos[order]], self.ids[pos[order]],
                                k), float(scores.min())

    def _positions(self, sample_ids: np.ndarray) -> np.ndarray:
        """Rows of sample ids in the graph: one read each from a dense id → row table when the ids allow it
        (SQLite row ids do), else a binary search (≈ 0.5 ms per 1,000 ids at 1M: cache misses)."""
        lk = self._lookup
        if lk is None:
            n, top = len(self.ids), int(self.ids[-1])
            lk = np.zeros(0, np.int64)
            if self.ids[0] >= 0 and top < 4 * n + 1024:
                lk = np.zeros(top + 1, np.int64)
                lk[self.ids] = np.arange(n)
            self._lookup = lk
        return lk[sample_ids] if len(lk) else np.searchsorted(self.ids, sample_ids)

    def _persons(self, exact: VectorIndex) -> np.ndarray:
        """The person of each row, from the exact index (which follows moves), once per version of it."""
        key = (exact.serial, exact.version, len(self.ids))
        if self._person_key != key:
            at = np.minimum(np.searchsorted(exact.sample_ids, self.ids), max(0, len(exact) - 1))
            # rows not in the exact index are tombstones: filtered out before their person is read
            self._person_rows = exact.person_ids[at] if len(exact) else np.full(len(self.ids), -1, np.int64)
            self._person_key = key
        return self._person_rows

    # -- persistence ------------------------------------------------------------------------------
    _EXTS = (".faiss", ".ids.npy", ".rows.npy", ".json")

    def save(self, base: Path, tag: str) -> None:
        faiss = _faiss()
        base.parent.mkdir(parents=True, exist_ok=True)
        tmp = base.with_name(base.name + ".tmp")
        faiss.write_index(self.index, str(tmp) + ".faiss")
        np.save(str(tmp) + ".ids.npy", self.ids)
        if not self.exact_scores:
            np.save(str(tmp) + ".rows.npy", self.rows)
        meta = {"tag": tag, "config": self.cfg.key(), "tombstones": sorted(self.tombstones), "saved": time.time()}
        Path(str(tmp) + ".json").write_text(json.dumps(meta))
        for ext in self._EXTS:  # the .json goes last: it marks a complete set
            src = Path(str(tmp) + ext)
            if src.exists():
                src.replace(Path(str(base) + ext))

    @classmethod
    def load(cls, base: Path, dim: int, cfg: AnnConfig) -> tuple[HnswIndex, str] | None:
        """A saved index and its tag, or ``None`` (missing, other settings, unreadable)."""
        faiss = _faiss()
        if not Path(str(base) + ".json").exists():
            return None
        try:
            meta = json.loads(Path(str(base) + ".json").read_text())
            if meta.get("config") != cfg.key():
                return None
            ix = cls(dim, cfg)
            ix.index = faiss.read_index(str(base) + ".faiss")
            ix.ids = np.load(str(base) + ".ids.npy")
            if not ix.exact_scores:
                ix._rows = np.load(str(base) + ".rows.npy", mmap_mode="r")  # paged in per candidate row
            ix.tombstones = set(meta.get("tombstones", []))
            return ix, str(meta.get("tag", ""))
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            log.warning("ignoring saved HNSW index %s (%s)", base, exc)
            return None


class _SaveGuard:
    """Erasure vs. the background save, for one collection of one database file in this process: a delete
    counts itself and removes the saved files while holding ``lock``; a build saves only if no delete came
    after its snapshot, also while holding it. Shared by every manager (and store) of that collection."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.erasures = 0


_GUARDS: dict[tuple[str, str], _SaveGuard] = {}
_GUARDS_LOCK = threading.Lock()


def _guard(db_path: str, collection: str) -> _SaveGuard:
    with _GUARDS_LOCK:
        return _GUARDS.setdefault((os.path.realpath(db_path), _safe(collection)), _SaveGuard())


def erase_saved(db_path: str, collection: str, erase: Callable[[], object]) -> None:
    """Run ``erase`` (removing ``collection``'s saved files) so that no HNSW build of it that started before
    can save its snapshot after: the snapshot may hold the vectors just erased."""
    if db_path == ":memory:":
        erase()
        return
    guard = _guard(db_path, collection)
    with guard.lock:
        guard.erasures += 1
        erase()


def _safe(collection: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in collection)


class AnnManager:
    """Keeps one collection's HNSW index in step with its exact index; builds it in the background."""

    def __init__(self, dim: int, cfg: AnnConfig, path: Path | None, guard: _SaveGuard | None = None) -> None:
        self.dim, self.cfg, self.path = dim, cfg, path
        self.ann: HnswIndex | None = None
        self._synced: tuple[int, int] | None = None  # (serial of the exact index, its version) the ANN reflects
        self._lock = threading.Lock()
        self._builder: threading.Thread | None = None
        self.builds = 0
        self._loaded = False  # loaded from disk and not yet checked against the gallery
        self._removed_seen: tuple[int, int] = (0, 0)  # (serial of the exact index, removals it logged) already applied
        self._guard = guard or _SaveGuard()
        self.saves_skipped = 0
        if path is not None:
            loaded = HnswIndex.load(path, dim, cfg)
            if loaded is not None:
                self.ann, self._loaded = loaded[0], True
                log.info("loaded HNSW index %s (%d vectors)", path, len(self.ann))

    @property
    def building(self) -> bool:
        return self._builder is not None and self._builder.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a background build; True when none is running any more."""
        b = self._builder
        if b is not None:
            b.join(timeout)
        return not self.building

    def start_build(self, exact: VectorIndex) -> None:
        if self.building:
            return
        snap = (exact.sample_ids.copy(), np.ascontiguousarray(exact.matrix))
        mark = (exact.serial, len(exact.removed))  # removals after the snapshot still have to be applied
        epoch = self._guard.erasures

        def run() -> None:
            t = time.perf_counter()
            ann = HnswIndex(self.dim, self.cfg)
            ann.build(*snap)
            with self._lock:
                # the next search catches up with later writes, and checks the snapshot's vectors first
                self.ann, self._synced, self._loaded = ann, None, True
                self._removed_seen = mark
                self.builds += 1
            log.info("built HNSW index of %d vectors in %.1f s", len(snap[0]), time.perf_counter() - t)
            if self.path is not None:
                with self._guard.lock:
                    if self._guard.erasures == epoch:
                        ann.save(self.path, "")
                    else:  # the snapshot holds vectors erased since: never write them to disk
                        self.saves_skipped += 1
                        log.info("not saving HNSW index %s: samples were erased while it was built", self.path)

        self._builder = threading.Thread(target=run, name="facewise-hnsw-build", daemon=True)
        self._builder.start()

    @staticmethod
    def _matches(ann: HnswIndex, exact: VectorIndex) -> bool:
        """Do the samples both hold have the same vectors? (Another process may have deleted a sample and
        stored a new one under the same id while this index sat on disk.) Reads every shared vector once."""
        live = ann.ids if not ann.tombstones else ann.ids[~np.isin(ann.ids, list(ann.tombstones))]
        common = np.intersect1d(live, exact.sample_ids, assume_unique=True)
        if len(common) == 0:
            return True
        mine = np.searchsorted(exact.sample_ids, common)
        if ann.exact_scores:  # flat storage: the float32 vectors are in the graph
            theirs = ann.index.reconstruct_batch(common)
        else:
            theirs = np.asarray(ann.rows[np.searchsorted(ann.ids, common)])
        step, ok = 65_536, True
        for a in range(0, len(common), step):
            ok = ok and np.array_equal(theirs[a:a + step], exact.columns[:, mine[a:a + step]].T)
        return bool(ok)

    def catch_up(self, exact: VectorIndex) -> HnswIndex | None:
        """The ANN, updated to hold exactly the exact index's samples (adds and tombstones)."""
        with self._lock:
            ann = self.ann
            if ann is None:
                return None
            key = (exact.serial, exact.version)
            if self._synced == key:
                return ann
            if self._synced is not None and self._synced[0] != key[0]:
                self._loaded = True  # a new exact index (another process wrote): check the vectors again
            if self._loaded and not self._matches(ann, exact):
                log.info("saved HNSW index %s disagrees with the gallery: rebuilding", self.path)
                self.ann, self._loaded = None, False
                self.start_build(exact)
                return None
            self._loaded = False
            live = ann.ids if not ann.tombstones else ann.ids[~np.isin(ann.ids, list(ann.tombstones))]
            gone = np.setdiff1d(live, exact.sample_ids, assume_unique=True)
            seen = self._removed_seen[1] if self._removed_seen[0] == exact.serial else 0
            if len(exact.removed) > seen:  # removed, and perhaps stored again under the same id, since then
                recent = np.asarray(exact.removed[seen:], np.int64)
                gone = np.union1d(gone, np.intersect1d(live, recent))
            self._removed_seen = (exact.serial, len(exact.removed))
            live = np.setdiff1d(live, gone, assume_unique=True)
            new_mask = ~np.isin(exact.sample_ids, live, assume_unique=True)
            ann.remove(gone)
            if new_mask.any():
                if np.isin(exact.sample_ids[new_mask], ann.ids).any():
                    # a deleted sample's id was used again (SQLite may re-use the largest rowid): the graph
                    # cannot take a second vector under one id, so search exactly until a rebuild is done
                    self.ann = None
                    self.start_build(exact)
                    return None
                ann.add(exact.sample_ids[new_mask], exact.matrix[new_mask])
            self._synced = key  # (not saved here: a reopened gallery catches up the same way)
            if len(ann.tombstones) > REBUILD_FRACTION * max(1, len(ann.ids)):
                log.info("HNSW index has %d tombstones: rebuilding in the background", len(ann.tombstones))
                self.start_build(exact)
            return ann


INDEX_SETTINGS = ("auto", "exact", "hnsw")


@lru_cache(maxsize=1)
def _has_faiss() -> bool:
    import importlib.util

    return importlib.util.find_spec("faiss") is not None


def hnsw_enabled(settings: dict[str, Any]) -> bool:
    """Setting ``index``: ``hnsw``, ``exact``, or ``auto`` (the default): HNSW where faiss is installed, from
    ``index_min_size`` faces (:data:`DEFAULT_MIN_SIZE`); exact search below, and always without faiss."""
    kind = str(settings.get("index", "auto")).lower()
    return kind == "hnsw" or (kind == "auto" and _has_faiss())


def index_in_force(settings: dict[str, Any], faces: int) -> dict[str, Any]:
    """Which search a SQLite collection of ``faces`` samples runs and why: ``{"index", "setting", "reason"}``."""
    kind = str(settings.get("index", "auto")).lower()
    try:
        cfg = AnnConfig.from_settings(settings)
    except (TypeError, ValueError) as exc:
        return {"index": "exact", "setting": kind, "reason": f"the index settings are not usable ({exc})"}
    if kind == "exact":
        return {"index": "exact", "setting": kind, "reason": "set to exact search"}
    if kind == "auto" and not _has_faiss():
        return {"index": "exact", "setting": kind, "reason": "auto: faiss is not installed, so exact search"}
    if faces < cfg.min_size:
        return {"index": "exact", "setting": kind,
                "reason": f"{kind}: {faces:,} faces, exact search below {cfg.min_size:,}"}
    return {"index": "hnsw", "setting": kind,
            "reason": f"{kind}: {faces:,} faces >= {cfg.min_size:,}: HNSW ({cfg.storage}, efSearch {cfg.ef_search}; "
                      "exact search until the graph is built)"}


def ann_search(managers: dict[str, AnnManager], db_path: str, collection: str, settings: dict[str, Any],
               exact: VectorIndex, persist: bool = True) -> AnnManager | None:
    """The collection's ANN manager when its settings enable HNSW and it is large enough, else ``None``.

    Starts a background build the first time (search stays exact until it is ready). ``managers``
    is the store's per-collection cache; ``db_path`` places the saved index next to the database.
    ``persist=False`` (an encrypted gallery) keeps the graph in memory only: it holds plaintext vectors.
    """
    if not hnsw_enabled(settings):
        managers.pop(collection, None)
        return None
    cfg = AnnConfig.from_settings(settings)
    if len(exact) < cfg.min_size:
        return None
    mgr = managers.get(collection)
    if mgr is None or mgr.cfg != cfg:
        path, guard = None, None
        if db_path != ":memory:" and persist:
            path = Path(db_path + ".ann") / f"{_safe(collection)}-{cfg.key()}"
            guard = _guard(db_path, collection)
        mgr = managers[collection] = AnnManager(exact.dim, cfg, path, guard)
    if mgr.ann is None and not mgr.building:
        mgr.start_build(exact)
    return mgr


@lru_cache(maxsize=64)
def _threshold(profile: str, settings_json: str) -> float | None:
    """The collection's decision threshold (``decision.matching.decide``), or ``None`` if unknown."""
    settings = json.loads(settings_json)
    try:
        return decide(load_profile(profile), settings).threshold
    except FacewiseError:  # a collection of a profile this install does not know: only an explicit one
        return float(settings["threshold"]) if settings.get("threshold") is not None else None


def search(managers: dict[str, AnnManager], db_path: str, collection: str, settings: dict[str, Any],
           exact: VectorIndex, queries: np.ndarray, k: int, persist: bool = True,
           profile: str | None = None) -> list[list[tuple[int, float, int]]]:
    """``SQLiteStore.search``'s hook: HNSW when enabled, large enough and built; else exact search.

    With the collection's ``profile`` the HNSW search stops as soon as its candidates reach below the
    collection's threshold (see :meth:`HnswIndex.search`); without, once ``k`` persons are found.
    """
    mgr = ann_search(managers, db_path, collection, settings, exact, persist)
    ann = mgr.catch_up(exact) if mgr is not None else None
    if ann is None or len(exact) == 0:
        return exact.search(queries, k)
    threshold = _threshold(profile, json.dumps(settings, sort_keys=True)) if profile else None
    return ann.search(queries, k, exact, threshold)


def exact_index(store: SQLiteStore, collection: str, generation: int) -> VectorIndex:
    """``SQLiteStore.index``'s hook: the exact matrix, memory-mapped from ``<db>.ann/`` with setting ``mmap``.

    The file is tagged with the gallery generation; a stale or missing one is rebuilt from the
    database (as without ``mmap``) and written once, so the next process maps it instead of reading
    every vector from SQLite, and processes on one machine share its pages. An encrypted gallery never
    writes that plaintext file: its matrix is read into memory as without ``mmap``.
    """
    row = store._collection_row(collection)
    settings = json.loads(row[5])
    if not settings.get("mmap") or store.path == ":memory:":
        return store._load_index(collection)
    if store.encrypted:
        log.info("%s is encrypted at rest: collection %r's matrix stays in memory (no plaintext mmap file)",
                 store.path, collection)
        return store._load_index(collection)
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in collection)
    path = Path(store.path + ".ann") / f"{safe}.matrix"
    tag = f"{row[0]}:{generation}"
    if VectorIndex.read_tag(path) != tag:
        path.parent.mkdir(parents=True, exist_ok=True)
        store._load_index(collection).save(path, tag)
    return VectorIndex.load(path, mmap=True)
