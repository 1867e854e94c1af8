"""Batch enrolment and indexing of large photo trees, on local processes or a Ray cluster.

``index_tree`` walks a tree of photos, detects and embeds faces on N workers (one model set per
worker: a local process, or a Ray actor), and streams the vectors into any gallery store in
batches (one transaction each). Two layouts, told apart per file:

* ``<root>/<person>/*.jpg`` — each photo's largest face is enrolled as ``<person>``;
* photos directly in ``<root>`` (or every photo, with ``layout="photos"``) — every face becomes an
  *unknown* sample in the ``unknown_collection`` (person :data:`facewise.batch.cluster.UNCLUSTERED`),
  for :mod:`facewise.batch.cluster` to group.

Resumable and idempotent: an image whose sha256 is already in the target collection is skipped
before it is decoded (the known hashes are read from the store once and shipped to the workers),
and the store ignores duplicates of (image, face) anyway. Kill it at any point and run it again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from facewise.core.imageio import is_image_path
from facewise.errors import FacewiseError, install_hint
from facewise.gallery.names import UNCLUSTERED
from facewise.gallery.store import NewSample, Store

log = logging.getLogger(__name__)

Layout = Literal["auto", "people", "photos"]


@dataclass(frozen=True)
class Item:
    """One photo to index: its path and the person it shows (``None``: unknown faces)."""

    path: str
    person: str | None


@dataclass
class FaceOut:
    index: int
    embedding: np.ndarray
    box: list[float]
    landmarks: list[list[float]]
    quality: float
    yaw: float


@dataclass
class ImageOut:
    """What a worker returns for one photo."""

    path: str
    person: str | None
    sha256: str = ""
    faces: list[FaceOut] = field(default_factory=list)
    skipped: bool = False
    error: str = ""


@dataclass
class IndexOptions:
    """How to index: model profile, collections, batching, workers and where they run."""

    profile: str = "default"
    collection: str = "default"
    unknown_collection: str = "unknown"
    layout: Layout = "auto"
    workers: int = 0  # 0: one per CPU
    ray_address: str | None = None  # None: local processes; "local": start a Ray node on 127.0.0.1
    batch_size: int = 256  # samples per store transaction
    chunk: int = 8  # photos per worker task
    min_quality: float | None = None
    actor_timeout: float = 300.0  # Ray: seconds for the workers to be placed and load their models
    task_timeout: float = 900.0  # Ray: seconds without any result before the run stops (resumable)
    flush_seconds: float = 10.0  # results are stored at least this often (a killed run loses no more)


@dataclass
class IndexReport:
    photos: int = 0
    skipped: int = 0  # already in the gallery (sha256)
    processed: int = 0
    faces_added: int = 0
    no_face: int = 0
    errors: int = 0
    seconds: float = 0.0
    engine: str = "processes"
    workers: int = 1
    error_samples: list[str] = field(default_factory=list)

    @property
    def images_per_s(self) -> float:
        return self.processed / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"photos": self.photos, "skipped": self.skipped, "processed": self.processed,
                "faces_added": self.faces_added, "no_face": self.no_face, "errors": self.errors,
                "seconds": round(self.seconds, 2), "images_per_s": round(self.images_per_s, 2),
                "engine": self.engine, "workers": self.workers}


# -- the tree --------------------------------------------------------------------------------------
def scan(root: str | os.PathLike[str], layout: Layout = "auto") -> list[Item]:
    """Photos under ``root``, sorted: sub-folder photos as people (``auto``/``people``), the rest unknown."""
    base = Path(root)
    if not base.is_dir():
        raise FacewiseError(f"{base}: not a folder")
    items: list[Item] = []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames.sort()
        d = Path(dirpath)
        rel = d.relative_to(base).parts
        for name in sorted(filenames):
            p = d / name
            if not is_image_path(p):
                continue
            person = rel[0] if rel and layout in ("auto", "people") else None
            if layout == "people" and person is None:
                continue  # loose photos in a people tree are not anyone's
            items.append(Item(str(p), person))
    return items


# -- the worker side -------------------------------------------------------------------------------
class FaceWorker:
    """One model set (single-threaded, so N workers use N cores); embeds the faces of photos."""

    def __init__(self, profile: str, known: frozenset[str] | set[str] = frozenset()) -> None:
        from facewise.core.engine import FaceEngine

        self.engine = FaceEngine(profile, threads=1).load()
        self.known = known

    def run(self, items: list[Item]) -> list[ImageOut]:
        return [self.one(it) for it in items]

    def ready(self) -> bool:
        """Answered once the models are loaded (Ray: the actor was placed and started)."""
        return True

    def one(self, item: Item) -> ImageOut:
        from facewise.core.imageio import decode_bytes

        out = ImageOut(item.path, item.person)
        try:
            data = Path(item.path).read_bytes()
            out.sha256 = hashlib.sha256(data).hexdigest()
            if out.sha256 in self.known:
                out.skipped = True
                return out
            img = decode_bytes(data, os.path.basename(item.path))
            _, faces = self.engine.embedded(img, embed=False)
            if item.person is not None and faces:
                faces = [max(faces, key=lambda f: f.box.area)]  # a person's photo: its largest face
            if faces:
                vecs = self.engine.embed(img.pixels, faces)
                out.faces = [FaceOut(f.index, v, f.box.as_list(), np.round(f.landmarks, 2).tolist(),
                                     float(f.quality.score), float(f.yaw)) for f, v in zip(faces, vecs, strict=True)]
        except Exception as exc:  # one bad photo must not stop a million-photo run
            out.error = f"{type(exc).__name__}: {exc}"
        return out


_WORKER: FaceWorker | None = None


def _init_process(profile: str, known: frozenset[str]) -> None:
    global _WORKER
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _WORKER = FaceWorker(profile, known)


def _run_in_process(items: list[Item]) -> list[ImageOut]:
    assert _WORKER is not None
    return _WORKER.run(items)


def _chunks(items: list[Item], n: int) -> Iterator[list[Item]]:
    for a in range(0, len(items), n):
        yield items[a:a + n]


def _local_results(items: list[Item], opts: IndexOptions, known: frozenset[str],
                   workers: int) -> Iterator[list[ImageOut]]:
    with ProcessPoolExecutor(workers, initializer=_init_process, initargs=(opts.profile, known)) as pool:
        pending: set[Future[list[ImageOut]]] = set()
        chunks = _chunks(items, opts.chunk)
        for chunk in chunks:  # keep a bounded number of tasks in flight
            pending.add(pool.submit(_run_in_process, chunk))
            if len(pending) >= 4 * workers:
                break
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                yield f.result()
                nxt = next(chunks, None)
                if nxt is not None:
                    pending.add(pool.submit(_run_in_process, nxt))


def _reachable(address: str, timeout: float) -> None:
    """Fail fast (``ray.init`` retries an unreachable address for minutes): open a TCP connection first."""
    hostport = address.split("://", 1)[-1].rsplit("/", 1)[0]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        return  # "auto" and other forms Ray resolves itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise FacewiseError(f"cannot reach the Ray cluster at {address}: {exc}") from exc


def _ray_init(ray: Any, address: str | None, workers: int, timeout: float) -> None:
    """Connect to a Ray cluster, or start a local one on 127.0.0.1 (one retry: on a busy machine the
    local raylet can miss its start-up deadline). Unreachable clusters and refused tokens are a
    :class:`FacewiseError` that says so."""
    from ray.exceptions import AuthenticationError

    local = address in (None, "", "local")
    if not local:
        _reachable(str(address), min(timeout, 10.0))
    for attempt in (1, 2):
        try:
            if local:
                ray.init(address="local", num_cpus=workers, include_dashboard=False, _node_ip_address="127.0.0.1",
                         log_to_driver=False, configure_logging=False)
            else:
                ray.init(address=address, log_to_driver=False, configure_logging=False)
            return
        except AuthenticationError as exc:
            ray.shutdown()
            raise FacewiseError(f"the Ray cluster at {address} refused the connection: {exc.message} (it uses "
                                "token authentication: set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN or "
                                "RAY_AUTH_TOKEN_PATH to the cluster's token)") from exc
        except (ConnectionError, OSError, ValueError) as exc:
            ray.shutdown()
            raise FacewiseError(f"cannot connect to the Ray cluster at {address}: {exc} (a cluster with token "
                                "authentication needs RAY_AUTH_MODE=token and its token in RAY_AUTH_TOKEN, "
                                "RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token)") from exc
        except RuntimeError as exc:
            ray.shutdown()
            if attempt == 2 or not local:
                raise FacewiseError(f"cannot start or reach Ray ({exc})") from exc
            log.warning("Ray did not start (%s); trying once more", exc)


def _ray_pool_size(ray: Any, requested: int) -> int:
    """Workers for the cluster's free CPUs (each actor takes one): an actor that cannot be placed would
    wait forever."""
    free = int(ray.available_resources().get("CPU", 0))
    total = int(ray.cluster_resources().get("CPU", 0))
    if free < 1:
        raise FacewiseError(f"the Ray cluster has no free CPU for a worker ({total} CPUs, all in use)")
    n = min(requested, free) if requested > 0 else free
    if n < requested:
        log.warning("the Ray cluster has %d free CPUs (of %d): %d workers, not %d", free, total, n, requested)
    return n


def _ray_results(items: list[Item], opts: IndexOptions, known: frozenset[str],
                 report: IndexReport) -> Iterator[list[ImageOut]]:
    try:
        import ray
        from ray.exceptions import GetTimeoutError, RayError
        from ray.util import ActorPool
    except ImportError as exc:
        raise FacewiseError(f"indexing on Ray needs the 'ray' extra: {install_hint('ray')}") from exc
    started = False
    if not ray.is_initialized():
        _ray_init(ray, opts.ray_address, max(1, opts.workers or (os.cpu_count() or 1)), opts.actor_timeout)
        started = True
    actors: list[Any] = []
    try:
        actor_cls = ray.remote(num_cpus=1)(FaceWorker)
        known_ref = ray.put(known)
        actors = [actor_cls.remote(opts.profile, known_ref) for _ in range(_ray_pool_size(ray, opts.workers))]
        waiting = {a.ready.remote(): a for a in actors}
        ready, late = ray.wait(list(waiting), num_returns=len(waiting), timeout=opts.actor_timeout)
        live, failures = [], []
        for ref in ready:
            try:
                ray.get(ref)
                live.append(waiting[ref])
            except RayError as exc:
                log.warning("a Ray worker failed to start: %s", exc)
                failures.append(str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__)
        for ref in late:
            log.warning("a Ray worker did not start within %.0f s: left out", opts.actor_timeout)
            ray.kill(waiting[ref])
        if not live:
            why = f"the workers failed: {failures[0]}" if failures else (
                f"none started within {opts.actor_timeout:.0f} s")
            raise FacewiseError(f"no Ray worker is running ({why}; each needs one free CPU, facewise and the "
                                "profile's models on its node)")
        report.workers = len(live)
        pool = ActorPool(live)
        for chunk in _chunks(items, opts.chunk):
            pool.submit(lambda a, c: a.run.remote(c), chunk)
        while pool.has_next():  # type: ignore[no-untyped-call]  # ray.util.ActorPool is untyped
            try:
                yield pool.get_next_unordered(timeout=opts.task_timeout)
            except (TimeoutError, GetTimeoutError) as exc:
                raise FacewiseError(f"no result from the Ray workers for {opts.task_timeout:.0f} s: stopped (what "
                                    "was indexed is stored; run again to resume)") from exc
            except RayError as exc:  # a worker died, or its task failed outside the per-photo handling
                raise FacewiseError(f"a Ray worker failed: {type(exc).__name__}: {exc} (what was indexed is "
                                    "stored; run again to resume)") from exc
    finally:
        for a in actors:
            try:
                ray.kill(a)
            except (RayError, ValueError) as exc:  # already gone with its node
                log.debug("could not kill a Ray worker: %s", exc)
        if started:
            ray.shutdown()


# -- the driver ------------------------------------------------------------------------------------
def known_hashes(store: Store, collections: Iterable[str]) -> frozenset[str]:
    """sha256 of every image already stored in these collections (missing collections: none)."""
    out: set[str] = set()
    for c in collections:
        try:
            out.update(s.image_sha256 for s in store.list_samples(c))
        except FacewiseError:
            continue
    return frozenset(out)


def index_tree(store: Store, root: str | os.PathLike[str], opts: IndexOptions | None = None,
               progress: Callable[[int, int], None] | None = None) -> IndexReport:
    """Index every photo under ``root`` into ``store`` (see the module doc); ``progress(done, total)``."""
    from facewise.models.profiles import load_profile

    opts = opts or IndexOptions()
    prof = load_profile(opts.profile)
    items = scan(root, opts.layout)
    workers = max(1, opts.workers or (os.cpu_count() or 1))
    report = IndexReport(photos=len(items), engine="ray" if opts.ray_address else "processes", workers=workers)
    targets = {opts.collection if it.person is not None else opts.unknown_collection for it in items}
    for c in sorted(targets):
        store.ensure_collection(c, prof.name, prof.signature, prof.dim)
    known = known_hashes(store, targets)
    t0 = last = time.perf_counter()
    buffers: dict[str, list[NewSample]] = {c: [] for c in targets}
    done = 0

    def flush(everything: bool) -> None:
        for c, buf in buffers.items():
            if buf and (everything or len(buf) >= opts.batch_size):
                report.faces_added += sum(i is not None for i in store.add_samples(c, buf))
                buffers[c] = []

    results = (_ray_results(items, opts, known, report) if opts.ray_address
               else _local_results(items, opts, known, workers))
    try:
        for batch in results:
            for r in batch:
                done += 1
                _account(r, report, opts, prof.signature, buffers)
            now = time.perf_counter()
            flush(everything=now - last >= opts.flush_seconds)
            if now - last >= opts.flush_seconds:
                last = now
            if progress:
                progress(done, len(items))
    finally:  # an engine error or an interrupt: keep what was received, so that a re-run skips it
        flush(everything=True)
    report.seconds = time.perf_counter() - t0
    log.info("indexed %d photos (%d skipped, %d faces added, %d without a face, %d errors) in %.1f s: "
             "%.1f images/s on %d %s workers", report.photos, report.skipped, report.faces_added, report.no_face,
             report.errors, report.seconds, report.images_per_s, workers, report.engine)
    return report


def _account(r: ImageOut, report: IndexReport, opts: IndexOptions, signature: str,
             buffers: dict[str, list[NewSample]]) -> None:
    if r.skipped:
        report.skipped += 1
        return
    report.processed += 1
    if r.error:
        report.errors += 1
        if len(report.error_samples) < 20:
            report.error_samples.append(f"{r.path}: {r.error}")
        log.warning("%s: %s", r.path, r.error)
        return
    faces = [f for f in r.faces if opts.min_quality is None or f.quality >= opts.min_quality]
    if not faces:
        report.no_face += 1
        return
    target = opts.collection if r.person is not None else opts.unknown_collection
    for f in faces:
        buffers[target].append(NewSample(
            person=r.person if r.person is not None else UNCLUSTERED, image_sha256=r.sha256,
            embedding=f.embedding, model=signature, face_index=f.index, source=os.path.basename(r.path),
            box=f.box, landmarks=f.landmarks, quality=f.quality, yaw=f.yaw))
