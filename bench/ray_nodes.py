"""Indexing throughput on a real local Ray cluster of 1 and of 2 nodes (1 CPU each), same photos, same run.

    python bench/ray_nodes.py --photos 200            # fast profile, LFW <person>/*.jpg

Each cluster is started with ``ray start --block`` nodes on 127.0.0.1 (tests/_ray_cluster.py: token
authentication, ports of its own, stopped at the end) and indexes the same tree into a fresh SQLite
gallery with ``workers=0`` (one actor per free CPU). Wall time counts from connecting to the cluster to
the last sample stored, so it includes the actors' model loading.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

from facewise.batch.indexing import IndexOptions, index_tree
from facewise.gallery import SQLiteStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from indexing import make_tree

from _ray_cluster import ray_cluster


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=200)
    ap.add_argument("--profile", default="fast")
    ap.add_argument("--nodes", default="1,2")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    tree = make_tree(args.photos)
    out = []
    try:
        for nodes in [int(x) for x in args.nodes.split(",")]:
            with ray_cluster(nodes, os.environ) as address:  # before Ray is imported here
                tmp = Path(tempfile.mkdtemp(prefix="fw-ray-bench-"))
                store = SQLiteStore(tmp / "g.db")
                rep = index_tree(store, tree, IndexOptions(profile=args.profile, ray_address=address, chunk=4))
                store.close()
                shutil.rmtree(tmp, ignore_errors=True)
                out.append({"nodes": nodes, **rep.to_dict()})
                print(json.dumps(out[-1]), flush=True)
    finally:
        shutil.rmtree(tree, ignore_errors=True)
    base = out[0]["images_per_s"] or float("nan")
    for r in out:
        print(f"| {r['nodes']} | {r['workers']} | {r['processed']} | {r['seconds']:.1f} | {r['images_per_s']:.1f} | "
              f"{r['images_per_s'] / base:.2f} |")


if __name__ == "__main__":
    main()
