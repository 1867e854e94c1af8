"""Indexing throughput (images/s): local processes vs a local Ray cluster, same photos, same run.

    python bench/indexing.py                      # 200 LFW photos, fast profile, 2 workers
    python bench/indexing.py --photos 1000 --workers 2 --profile default

Each engine indexes the same photo tree (LFW ``<person>/*.jpg``, symlinked into a temporary folder)
into its own fresh SQLite gallery; the throughput counts photos processed per second of wall time,
including the workers' start-up (model loading; Ray's start-up is reported separately). A third
pass re-runs the local engine on the already-indexed gallery to show the cost of a resumed run.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

from facewise.batch.indexing import IndexOptions, index_tree
from facewise.gallery import SQLiteStore

DATA = Path(os.environ.get("FACEWISE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def make_tree(n: int) -> Path:
    root = Path(tempfile.mkdtemp(prefix="fw-index-bench-"))
    people = sorted(d for d in (DATA / "lfw" / "images").iterdir() if d.is_dir())
    count = 0
    for d in people:
        files = sorted(d.glob("*.jpg"))[:4]
        (root / d.name).mkdir()
        for f in files:
            (root / d.name / f.name).symlink_to(f)
            count += 1
        if count >= n:
            break
    return root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--profile", default="fast")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    tree = make_tree(args.photos)
    out = []
    for engine in ("processes", "ray"):
        db = Path(tempfile.mkdtemp(prefix="fw-index-bench-db-")) / "g.db"
        store = SQLiteStore(db)
        ray_start = 0.0
        if engine == "ray":
            import ray

            t = time.perf_counter()
            ray.init(address="local", num_cpus=args.workers, include_dashboard=False, _node_ip_address="127.0.0.1",
                     log_to_driver=False)
            ray_start = time.perf_counter() - t
        addr = "local" if engine == "ray" else None
        opts = IndexOptions(profile=args.profile, workers=args.workers, ray_address=addr)
        t = time.perf_counter()
        rep = index_tree(store, tree, opts)
        wall = time.perf_counter() - t
        out.append((engine, rep.processed, wall, rep.processed / wall, ray_start, rep.faces_added))
        if engine == "ray":
            import ray

            ray.shutdown()
        else:
            t = time.perf_counter()
            again = index_tree(store, tree, opts)
            out.append(("processes, re-run", again.skipped, time.perf_counter() - t, float("nan"), 0.0, 0))
        store.close()
        shutil.rmtree(db.parent, ignore_errors=True)
    shutil.rmtree(tree, ignore_errors=True)
    base = out[0][3]
    print(f"{args.photos} LFW photos, profile {args.profile}, {args.workers} workers, {os.cpu_count()} CPUs")
    print("| engine | photos | wall s | images/s | vs processes | engine start s | faces |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for engine, n, wall, ips, start, faces in out:
        print(f"| {engine} | {n} | {wall:.1f} | {ips:.1f} | {ips / base:.2f} | {start:.1f} | {faces} |")


if __name__ == "__main__":
    main()
