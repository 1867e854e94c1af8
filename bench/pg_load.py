"""PgVectorStore against raw psycopg on the same server: bulk load (faces/s) and search latency (exact, HNSW).

    source .ci/start-postgres.sh
    nice -n 10 python bench/pg_load.py                      # 100k x 512, batches of 10k, 50 queries
    nice -n 10 python bench/pg_load.py --n 20000 --no-hnsw  # quicker

Data: synthetic face-like vectors (facewise.gallery.synthetic), 5 samples per identity; probes are new samples of
enrolled identities.

* load, store: ``PgVectorStore.add_samples`` in batches (each batch one transaction: persons, sample rows,
  vectors, templates), no HNSW index present (``index_min_rows`` out of reach); the index is built after by
  ``build_index`` and timed on its own.
* load, raw COPY: the same vectors by binary ``COPY`` into a bare table (``sample_id`` key, ``person_id``,
  ``embedding``) in one transaction: psycopg's ``write_row`` (pgvector's adapter), and the numpy-encoded stream
  the store uses (``gallery.pgsql.copy_vectors``), the floor for moving the vectors in.
* CPU s: the CPU time of this process plus that of the PostgreSQL backend serving the load (from /proc): on this
  shared box the wall time mostly measures the other jobs; faces per CPU second is what the work itself costs.
* search: ``store.search(collection, q, k)``, one query a call, against the raw statement
  ``SELECT sample_id, person_id, embedding <=> $1 AS d FROM emb ORDER BY d LIMIT k*8+16`` on the same table
  (autocommit, HNSW settings set once for the session), alternating which goes first; median and min ms, and the
  median of the per-query ratios.

Every ratio is between numbers measured in the same run. Prints a Markdown table (and --json).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from facewise.gallery.base import first_window
from facewise.gallery.pgsql import copy_vectors
from facewise.gallery.store import NewSample
from facewise.gallery.synthetic import face_like, probes

log = logging.getLogger("bench.pg_load")


def dsn() -> str:
    return os.environ.get("FACEWISE_PG_DSN") or Path("/tmp/facewise-pg/dsn").read_text().strip()


def cpu_seconds(backend_pid: int) -> float:
    """CPU time used so far by this process and by the PostgreSQL backend serving ``backend_pid``."""
    mine = os.times()
    fields = Path(f"/proc/{backend_pid}/stat").read_text().rsplit(")", 1)[1].split()
    server = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    return mine.user + mine.system + server


def store_load(store: Any, data: Any, batch: int) -> tuple[float, float]:
    samples = [NewSample(person=f"id{lab}", image_sha256=f"h{i}", embedding=v, model="bench")
               for i, (v, lab) in enumerate(zip(data.vectors, data.labels, strict=True))]
    c, t = cpu_seconds(store._db.info.backend_pid), time.perf_counter()
    for a in range(0, len(samples), batch):
        store.add_samples("bench", samples[a:a + batch])
    return time.perf_counter() - t, cpu_seconds(store._db.info.backend_pid) - c


def raw_load(db: Any, data: Any, how: str) -> tuple[float, float]:
    n, dim = data.vectors.shape
    db.execute("DROP TABLE IF EXISTS bench_raw")
    db.execute(f"CREATE TABLE bench_raw(sample_id BIGINT PRIMARY KEY, person_id BIGINT NOT NULL, "
               f"embedding vector({dim}) NOT NULL) WITH (toast_tuple_target = 8160)")  # as the store's tables
    ids, pids = np.arange(1, n + 1, dtype=np.int64), data.labels.astype(np.int64)
    c, t = cpu_seconds(db.info.backend_pid), time.perf_counter()
    with db.transaction(), db.cursor() as cur:
        if how == "numpy":
            copy_vectors(cur, "bench_raw", ids, pids, data.vectors, "vector")
        else:
            with cur.copy("COPY bench_raw(sample_id, person_id, embedding) FROM STDIN (FORMAT BINARY)") as cp:
                cp.set_types(["int8", "int8", "vector"])
                for i in range(n):
                    cp.write_row((int(ids[i]), int(pids[i]), data.vectors[i]))
    took, cpu = time.perf_counter() - t, cpu_seconds(db.info.backend_pid) - c
    db.execute("DROP TABLE bench_raw")
    return took, cpu


def search_pair(store: Any, db: Any, q: np.ndarray, k: int, label: str) -> dict[str, Any]:
    cid = store._cached("bench").id
    sql = (f"SELECT sample_id, person_id, embedding <=> %b AS d FROM {store.schema}.emb_{cid} "
           f"ORDER BY d LIMIT {first_window(k)}")
    store.search("bench", q[:1], k)  # warm-up (and the collection's row cached)
    db.execute(sql, (q[0],), binary=True).fetchall()
    ts, tr = [], []
    for i, vec in enumerate(q):  # who goes first alternates (the second may find the pages the first read)
        for who in ((0, 1) if i % 2 else (1, 0)):
            t = time.perf_counter()
            if who == 0:
                store.search("bench", vec[None, :], k)
            else:
                db.execute(sql, (vec,), binary=True).fetchall()
            (ts if who == 0 else tr).append(time.perf_counter() - t)
    return {"what": f"search {label}, k={k}", "store_ms": statistics.median(ts) * 1e3, "store_min_ms": min(ts) * 1e3,
            "raw_ms": statistics.median(tr) * 1e3, "raw_min_ms": min(tr) * 1e3,
            "ratio": statistics.median(a / b for a, b in zip(ts, tr, strict=True))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--batch", type=int, default=10_000, help="samples per add_samples call")
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--k", type=int, default=1)
    ap.add_argument("--no-hnsw", action="store_true", help="skip the HNSW build and its search")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    import psycopg
    from pgvector.psycopg import register_vector

    from facewise.gallery.pgvector import PgVectorStore

    data = face_like(args.n, args.dim, seed=args.n)
    q, _ = probes(data, args.queries, seed=1)
    db = psycopg.connect(dsn(), autocommit=True)
    register_vector(db)
    rows: list[dict[str, Any]] = []
    for how in ("write_row", "numpy"):
        took, cpu = raw_load(db, data, how)
        rows.append({"what": f"load, raw COPY ({how})", "s": took, "faces_s": args.n / took, "cpu_s": cpu})
        log.info("%s", rows[-1])
    store = PgVectorStore(dsn(), schema="bench_load", index_min_rows=1 << 62, ef_search=100)
    store.drop_schema()
    store = PgVectorStore(dsn(), schema="bench_load", index_min_rows=1 << 62, ef_search=100)
    try:
        store.ensure_collection("bench", "bench", "bench", args.dim)
        took, cpu = store_load(store, data, args.batch)
        rows.append({"what": f"load, store (batches of {args.batch:,})", "s": took, "faces_s": args.n / took,
                     "cpu_s": cpu})
        log.info("%s", rows[-1])
        db.execute(f"VACUUM ANALYZE {store.schema}.emb_{store._cached('bench').id}")
        rows.append(search_pair(store, db, q, args.k, "exact (no index)"))
        log.info("%s", rows[-1])
        if not args.no_hnsw:
            t = time.perf_counter()
            store.build_index("bench")
            rows.append({"what": "HNSW build (m 16, ef_construction 64)", "s": time.perf_counter() - t})
            log.info("%s", rows[-1])
            db.execute("SET hnsw.ef_search = 100")
            db.execute("SET hnsw.iterative_scan = relaxed_order")
            store._cached("bench", fresh=True)
            rows.append(search_pair(store, db, q, args.k, "HNSW (ef_search 100)"))
            log.info("%s", rows[-1])
    finally:
        store.drop_schema()
        store.close()
        db.close()
    nan = float("nan")
    print(f"N = {args.n:,} x {args.dim}\n")
    print("| what | s | faces/s | CPU s | faces per CPU s | store ms median (min) | raw ms median (min) | "
          "store / raw (median) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if "store_ms" not in r:
            cpu = r.get("cpu_s", nan)
            print(f"| {r['what']} | {r['s']:.2f} | {r.get('faces_s', nan):,.0f} | {cpu:.2f} | {args.n / cpu:,.0f} "
                  "| | | |")
        else:
            print(f"| {r['what']} | | | | | {r['store_ms']:.2f} ({r['store_min_ms']:.2f}) | "
                  f"{r['raw_ms']:.2f} ({r['raw_min_ms']:.2f}) | {r['ratio']:.2f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
