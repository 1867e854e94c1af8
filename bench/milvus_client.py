"""MilvusStore against the raw pymilvus ``MilvusClient`` on the same standalone Milvus: load (faces/s), search latency.

    nice -n 5 python bench/milvus_client.py                  # 100k x 512, batches of 10k, 100 queries
    nice -n 5 python bench/milvus_client.py --n 10000
    nice -n 5 python bench/milvus_client.py --uri http://127.0.0.1:19530   # a Milvus that already runs

Server: without ``--uri``, the standalone Milvus of ``pip install milvus`` (``milvus-server``, a real Milvus with its
own etcd and MinIO-less local storage) is started on free ports by ``tests/_servers.py``'s
``MilvusStandaloneServer`` and stopped afterwards.

Data: synthetic face-like vectors (facewise.gallery.synthetic), 5 samples per identity; probes are new samples of
enrolled identities.

* load: ``MilvusStore.add_samples`` in batches (each batch: one side-file transaction, Milvus inserts of 2,000 rows
  inside it); the collection is created by the store (HNSW M 16, efConstruction 128, COSINE, loaded). Then
  ``flush``, the wait until the HNSW index covers every row, and a release + load (so every segment is searched
  through its index), timed on their own ("flush + index + load").
* search: ``store.search(collection, q, k)``, one query a call, against the raw
  ``MilvusClient.search(name, data=[q], anns_field="embedding", limit=k*8+16, output_fields=["person_id"],
  consistency_level="Session", search_params={"metric_type": "COSINE", "params": {"ef": 128}})`` (what the store
  asks Milvus for) from a second client on the same collection, alternating which goes first; median and min ms,
  and the median of the per-query ratios.
* recall@1: the top sample of each (the store's hit, the raw call's first row) against exact numpy search.

Every ratio is between numbers measured in the same run. Prints a Markdown table (and --json).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from facewise.gallery.base import first_window
from facewise.gallery.store import NewSample
from facewise.gallery.synthetic import face_like, probes

log = logging.getLogger("bench.milvus_client")


def store_load(store: Any, data: Any, batch: int) -> float:
    samples = [NewSample(person=f"id{lab}", image_sha256=f"h{i}", embedding=v, model="bench")
               for i, (v, lab) in enumerate(zip(data.vectors, data.labels, strict=True))]
    t = time.perf_counter()
    for a in range(0, len(samples), batch):
        store.add_samples("bench", samples[a:a + batch])
    return time.perf_counter() - t


def flush_and_index(store: Any, name: str, n: int, timeout: float = 1800) -> float:
    """Flush, wait until the HNSW index covers all n rows, then release and load the collection."""
    t = time.perf_counter()
    store.client.flush(name)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        d = store.client.describe_index(name, "embedding")
        if int(d.get("indexed_rows", 0)) >= n and int(d.get("pending_index_rows", 0)) == 0:
            break
        time.sleep(0.5)
    else:
        raise TimeoutError(f"index of {name} not built after {timeout} s: {d}")
    store.client.release_collection(name)  # load again: every sealed segment searched through its HNSW index
    store.client.load_collection(name)
    took = time.perf_counter() - t
    log.info("index: %s", d)
    return took


def search_pair(store: Any, raw: Any, name: str, q: np.ndarray, k: int) -> dict[str, Any]:
    limit = first_window(k)
    params = {"metric_type": "COSINE", "params": {"ef": max(store.ef, limit)}}

    def raw_search(vec: np.ndarray) -> list[Any]:
        return raw.search(name, data=[vec], anns_field="embedding", limit=limit, output_fields=["person_id"],
                          consistency_level="Session", search_params=params)[0]

    for _ in range(3):  # warm-up
        store.search("bench", q[:1], k)
        raw_search(q[0])
    ts: list[float] = []
    tr: list[float] = []
    top_s: list[int] = []
    top_r: list[int] = []
    for i, vec in enumerate(q):  # who goes first alternates
        for who in ((0, 1) if i % 2 else (1, 0)):
            t = time.perf_counter()
            if who == 0:
                res = store.search("bench", vec[None, :], k)
            else:
                rows = raw_search(vec)
            (ts if who == 0 else tr).append(time.perf_counter() - t)
        top_s.append(res[0][0].sample_id if res[0] else -1)
        top_r.append(int(rows[0]["id"]) if rows else -1)
    return {"store_ms": statistics.median(ts) * 1e3, "store_min_ms": min(ts) * 1e3,
            "raw_ms": statistics.median(tr) * 1e3, "raw_min_ms": min(tr) * 1e3,
            "ratio": statistics.median(a / b for a, b in zip(ts, tr, strict=True)), "top_store": top_s,
            "top_raw": top_r}


def run(args: argparse.Namespace, uri: str, tmp: Path) -> dict[str, Any]:
    from pymilvus import MilvusClient

    from facewise.gallery.milvus import MilvusStore

    data = face_like(args.n, args.dim, seed=args.n)
    q, _ = probes(data, args.queries, seed=1)
    exact = np.argmax(q @ data.vectors.T, axis=1)  # row of the true nearest sample
    store = MilvusStore(uri, meta=tmp / "meta.db", prefix="bench_client")
    raw = MilvusClient(uri=uri)
    try:
        store.ensure_collection("bench", "bench", "bench", args.dim)
        name = store.milvus_name("bench")
        load = store_load(store, data, args.batch)
        log.info("load %.1f s (%.0f faces/s)", load, args.n / load)
        build = flush_and_index(store, name, args.n)
        log.info("flush + index + load %.1f s", build)
        row_of = {int(s): int(h[1:]) for s, h in store.meta._db.execute("SELECT id, image_sha256 FROM samples")}
        pair = search_pair(store, raw, name, q, args.k)
        rec_s = float(np.mean([row_of.get(s, -1) == e for s, e in zip(pair.pop("top_store"), exact, strict=True)]))
        rec_r = float(np.mean([row_of.get(s, -1) == e for s, e in zip(pair.pop("top_raw"), exact, strict=True)]))
        out = {"n": args.n, "dim": args.dim, "batch": args.batch, "queries": args.queries, "k": args.k,
               "ef": store.ef, "load_s": load, "faces_s": args.n / load, "index_s": build, **pair,
               "recall_store": rec_s, "recall_raw": rec_r}
        log.info("%s", out)
        return out
    finally:
        try:
            store.delete_collection("bench")
        finally:
            store.close()
            raw.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--batch", type=int, default=10_000, help="samples per add_samples call")
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--k", type=int, default=1)
    ap.add_argument("--uri", default=None, help="a running Milvus (default: start milvus-server here)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    tmp = Path(tempfile.mkdtemp(prefix="fw-bench-milvus-"))
    server: Any = None
    try:
        uri = args.uri
        if uri is None:
            sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
            from _servers import MilvusStandaloneServer

            t = time.perf_counter()
            server = MilvusStandaloneServer(tmp)
            uri = server.uri
            log.info("milvus-server on %s after %.0f s", uri, time.perf_counter() - t)
        r = run(args, uri, tmp)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"N = {r['n']:,} x {r['dim']}, Milvus standalone, HNSW (M 16, efConstruction 128), ef {r['ef']}, "
          f"k = {r['k']}, {r['queries']} queries\n")
    print(f"| N | load faces/s (batches of {r['batch']:,}) | flush + index + load s | store ms median (min) | "
          "raw ms median (min) | store / raw (median) | recall@1 store / raw |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {r['n']:,} | {r['faces_s']:,.0f} | {r['index_s']:.1f} | {r['store_ms']:.2f} ({r['store_min_ms']:.2f}) | "
          f"{r['raw_ms']:.2f} ({r['raw_min_ms']:.2f}) | {r['ratio']:.2f} | {r['recall_store']:.3f} / "
          f"{r['recall_raw']:.3f} |")
    if args.json:
        args.json.write_text(json.dumps(r, indent=1))


if __name__ == "__main__":
    main()
