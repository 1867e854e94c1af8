"""Search latency and recall vs gallery size for every store, against the memory-bandwidth floor.

    python bench/search_stores.py                           # 10k, 100k, 1M exact; ANN/pgvector/Milvus to 100k
    python bench/search_stores.py --sizes 10000,100000,1000000 --ann-max 1000000 --server-max 100000
    python bench/search_stores.py --floor-dims 128,256,384,512  # exact search at 1M for each dimension

Data: synthetic face-like vectors (facewise.gallery.synthetic: identity centres + noise, mates ~0.6-0.8,
impostors ~0), 5 samples per identity; probes are new samples of enrolled identities.

* floor: the time to read the N x D float32 matrix once, at the memory bandwidth measured in this run
  (best of a 1-thread and a 2-thread ``np.sum`` over the same matrix: a plain streaming read).
* exact: ``VectorIndex.search`` (what ``SQLiteStore.search`` runs), one query at a time, median.
* hnsw: ``gallery.ann.HnswIndex`` (faiss HNSW, sq8 + exact re-rank), build time, latency and recall@10
  against exact search (top-10 persons, by sample id), for a sweep of efSearch.
* pgvector / milvus: the stores' ``search`` over a real server on 127.0.0.1 (PostgreSQL from
  .ci/start-postgres.sh, ``milvus-lite server`` started here), HNSW indexes, same recall measure.

Every ratio is between numbers measured in the same run. Prints a Markdown table (and --json).
The identification benchmark of the HNSW index (face-like anisotropic galleries, held-out probes,
recall at the threshold) is ``bench/search.py``; the recall@10 here is the older top-10-persons overlap.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from facewise.gallery.ann import AnnConfig, HnswIndex
from facewise.gallery.index import VectorIndex
from facewise.gallery.store import NewSample
from facewise.gallery.synthetic import face_like, probes

log = logging.getLogger("bench.search")
K = 10


def bandwidth(mat: np.ndarray, reps: int) -> tuple[float, float]:
    """Bytes/s of a plain streaming read of ``mat`` (the better of 1 and 2 threads): (median, best)."""
    halves = [mat[: len(mat) // 2], mat[len(mat) // 2 :]]
    times = []
    with ThreadPoolExecutor(2) as pool:
        for _ in range(reps):
            t = time.perf_counter()
            mat.sum()
            one = time.perf_counter() - t
            t = time.perf_counter()
            list(pool.map(np.sum, halves))
            times.append(min(one, time.perf_counter() - t))
    return mat.nbytes / statistics.median(times), mat.nbytes / min(times)


def timed(fn: Any, queries: np.ndarray) -> tuple[float, list[Any], float]:
    """Median seconds per single-query call, the results, and the fastest call (the shared 2-core
    machine this was written on had other jobs running: the minimum shows the code, the median the box)."""
    fn(queries[:1])  # warm-up
    times, out = [], []
    for q in queries:
        t = time.perf_counter()
        out.append(fn(q[None, :])[0])
        times.append(time.perf_counter() - t)
    return statistics.median(times), out, min(times)


def recall(approx: list[list[Any]], exact: list[list[tuple[int, float, int]]], sid: Any) -> float:
    return float(np.mean([len({sid(h) for h in a} & {e[2] for e in x}) / max(1, len(x))
                          for a, x in zip(approx, exact, strict=True)]))


def exact_row(n: int, dim: int, queries: int) -> tuple[dict[str, Any], VectorIndex, np.ndarray, Any]:
    data = face_like(n, dim, seed=n)
    ix = VectorIndex(dim)
    ix.reset(np.arange(n), data.labels, data.vectors)
    q, _ = probes(data, queries, seed=1)
    bw_med, bw_best = bandwidth(ix.columns, min(len(q), 30))
    t, _, t_min = timed(lambda x: ix.search(x, K), q)
    tb = time.perf_counter()
    ix.search(q[:64], K)
    batch = (time.perf_counter() - tb) / 64
    floor, floor_min = ix.columns.nbytes / bw_med, ix.columns.nbytes / bw_best
    row = {"store": "embedded exact", "n": n, "dim": dim, "ms": t * 1e3, "min_ms": t_min * 1e3,
           "floor_ms": floor * 1e3, "floor_min_ms": floor_min * 1e3, "ratio": t / floor, "ratio_min": t_min / floor_min,
           "bandwidth_gbs": bw_best / 1e9, "batch64_ms_per_query": batch * 1e3, "recall": 1.0}
    return row, ix, q, data


def hnsw_rows(ix: VectorIndex, q: np.ndarray, exact: list[Any], storage: str) -> list[dict[str, Any]]:
    n = len(ix)
    cfg = AnnConfig(storage=storage, m=32, ef_construction=80)
    ann = HnswIndex(ix.dim, cfg)
    t = time.perf_counter()
    ann.build(ix.sample_ids, np.ascontiguousarray(ix.matrix))
    build = time.perf_counter() - t
    rows = []
    for ef in (32, 64, 128, 256, 512):
        ann.cfg = AnnConfig(storage=storage, m=32, ef_construction=80, ef_search=ef)
        lat, res, lat_min = timed(lambda x, a=ann: a.search(x, K, ix), q)
        rows.append({"store": f"embedded hnsw-{storage} ef{ef}", "n": n, "dim": ix.dim, "ms": lat * 1e3,
                     "min_ms": lat_min * 1e3,
                     "recall": recall(res, exact, lambda h: h[2]), "build_s": build})
    return rows


def fill(store: Any, data: Any, n: int, batch: int = 5_000) -> float:
    t = time.perf_counter()
    for a in range(0, n, batch):
        part = range(a, min(n, a + batch))
        store.add_samples("bench", [NewSample(person=f"id{data.labels[i]}", image_sha256=f"h{i}",
                                              embedding=data.vectors[i], model="bench") for i in part])
    return time.perf_counter() - t


def server_rows(kind: str, data: Any, n: int, q: np.ndarray, exact_ix: VectorIndex) -> list[dict[str, Any]]:
    """pgvector or Milvus: load n vectors, build HNSW, search; recall against exact by sample id."""
    dim = data.vectors.shape[1]
    tmp = Path(tempfile.mkdtemp(prefix=f"fw-bench-{kind}-"))
    proc: Any = None
    if kind == "pgvector":
        from facewise.gallery.pgvector import PgVectorStore

        dsn = os.environ.get("FACEWISE_PG_DSN") or Path("/tmp/facewise-pg/dsn").read_text().strip()
        store: Any = PgVectorStore(dsn, schema=f"bench_{n}", index_min_rows=1 << 62, ef_search=100)
        store.drop_schema()
        store = PgVectorStore(dsn, schema=f"bench_{n}", index_min_rows=1 << 62, ef_search=100)
    else:
        from facewise.gallery.milvus import MilvusStore

        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from _servers import MilvusLiteServer  # starts `milvus-lite server` on 127.0.0.1 and waits for it

        proc = MilvusLiteServer(tmp / "data")
        store = MilvusStore(proc.uri, meta=tmp / "meta.db", prefix="bench")
    try:
        store.ensure_collection("bench", "bench", "bench", dim)
        load = fill(store, data, n)
        t = time.perf_counter()
        if kind == "pgvector":
            store.build_index("bench")
        else:
            store.client.flush(store.milvus_name("bench"))
            store.search("bench", q[:1], K)  # Milvus Lite builds segment indexes lazily
        build = time.perf_counter() - t
        exact = exact_ix.search(q, K)
        lat, res, lat_min = timed(lambda x: store.search("bench", x, K), q)
        # sample ids differ per store: map them back to rows through the image hash h<row>
        if kind == "pgvector":
            rows = dict(store._db.execute(f"SELECT id, image_sha256 FROM {store.schema}.samples").fetchall())
        else:
            rows = dict(store.meta._db.execute("SELECT id, image_sha256 FROM samples").fetchall())
        rec = recall(res, exact, lambda h: int(rows[h.sample_id][1:]))
        return [{"store": kind, "n": n, "dim": dim, "ms": lat * 1e3, "min_ms": lat_min * 1e3, "recall": rec,
                 "build_s": build,
                 "load_s": load}]
    finally:
        try:
            if kind == "pgvector":
                store.drop_schema()
            store.close()
        finally:
            if proc is not None:
                proc.stop()
            shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--ann-max", type=int, default=100_000, help="largest N for the HNSW build (slow on 2 cores)")
    ap.add_argument("--server-max", type=int, default=100_000, help="largest N for pgvector / Milvus")
    ap.add_argument("--stores", default="exact,hnsw,pgvector,milvus")
    ap.add_argument("--floor-dims", default="", help="also: exact at the largest size for these dims")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    stores = set(args.stores.split(","))
    rows: list[dict[str, Any]] = []
    for n in [int(x) for x in args.sizes.split(",")]:
        row, ix, q, data = exact_row(n, args.dim, args.queries)
        rows.append(row)
        log.info("%s", row)
        exact = ix.search(q, K)
        if "hnsw" in stores and n <= args.ann_max:
            for storage in ("sq8", "flat"):
                for r in hnsw_rows(ix, q, exact, storage):
                    rows.append(r)
                    log.info("%s", r)
        for kind in ("pgvector", "milvus"):
            if kind in stores and n <= args.server_max:
                try:
                    for r in server_rows(kind, data, n, q, ix):
                        rows.append(r)
                        log.info("%s", r)
                except Exception as exc:  # report and go on: one server must not sink the run
                    log.error("%s at %d failed: %s", kind, n, exc)
        del ix, data
    biggest = max(int(x) for x in args.sizes.split(","))
    for dim in [int(x) for x in args.floor_dims.split(",") if x]:
        row = exact_row(biggest, dim, args.queries)[0]
        rows.append(row)
        log.info("%s", row)
    nan = float("nan")
    print("| store | N | dim | ms/query median (min) | floor ms median (min) | ratio median (min) | recall@10 | "
          "build s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['store']} | {r['n']:,} | {r['dim']} | {r['ms']:.2f} ({r['min_ms']:.2f}) | "
              f"{r.get('floor_ms', nan):.2f} ({r.get('floor_min_ms', nan):.2f}) | "
              f"{r.get('ratio', nan):.2f} ({r.get('ratio_min', nan):.2f}) | {r['recall']:.3f} | "
              f"{r.get('build_s', nan):.1f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
