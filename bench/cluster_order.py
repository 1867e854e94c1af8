"""How much the incremental clustering pass depends on the order faces arrive (docs/SCALE.md).

Indexes the LFW slice of ``tests/test_cluster.py`` once (``fast``, two workers), then replays ``Clusterer.assign``
on copies of that gallery with the waiting faces taken in file-name (sample id), sha256, best-quality-first and
four random orders, each followed by ``recluster`` (the ``--full`` pass), and prints pairwise precision / recall and
BCubed F of each::

    FACEWISE_MODEL_PATH=../shared/models FACEWISE_DATA=../shared/data .venv/bin/python bench/cluster_order.py
"""

from __future__ import annotations

import builtins
import random
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import facewise.batch.cluster as cluster_module
import test_cluster
from facewise.batch.cluster import Clusterer
from facewise.batch.indexing import IndexOptions, index_tree
from facewise.gallery import SQLiteStore
from facewise.settings import data_dir


def _orders(samples: list[Any]) -> dict[str, Callable[[Any], Any]]:
    out: dict[str, Callable[[Any], Any]] = {
        "file name (sample id)": lambda s: s.id,
        "sha256": lambda s: (s.image_sha256, s.id),
        "best quality first": lambda s: (-float(s.quality or 0), s.image_sha256, s.id),
    }
    for seed in range(4):
        rng = random.Random(seed)
        rank = {s.id: rng.random() for s in samples}
        out[f"random {seed}"] = lambda s, rank=rank: rank[s.id]
    return out


def main() -> None:
    data = data_dir()
    if data is None:
        sys.exit("set FACEWISE_DATA to the shared data folder (it holds lfw/images)")
    lfw = data / "lfw" / "images"
    tmp = Path(tempfile.mkdtemp(prefix="facewise-cluster-order-"))
    photos = tmp / "photos"
    photos.mkdir()
    people = sorted(d for d in lfw.iterdir() if d.is_dir() and len(list(d.glob("*.jpg"))) >= 4)
    for d in people[3::8][:55]:
        for f in sorted(d.glob("*.jpg"))[:6]:
            (photos / f.name).symlink_to(f)
    base = tmp / "g.db"
    with SQLiteStore(base) as store:
        index_tree(store, photos, IndexOptions(profile="fast", workers=2, layout="photos"))
        samples = store.list_samples("unknown")
    print("| order | incremental P / R / BCubed F | after recluster P / R / BCubed F |\n|---|---|---|")
    for name, key in _orders(samples).items():
        db = tmp / "run.db"
        shutil.copy(base, db)
        with SQLiteStore(db) as store:
            clusterer = Clusterer(store, "unknown")
            # the pass sorts the waiting faces by sample id: replay it in this order instead
            cluster_module.sorted = lambda items, key=None, _k=key: builtins.sorted(items, key=_k)  # type: ignore[attr-defined]
            try:
                clusterer.assign()
            finally:
                del cluster_module.sorted  # type: ignore[attr-defined]
            inc = test_cluster.scores(store)
            clusterer.recluster()
            full = test_cluster.scores(store)
        print(f"| {name} | {inc['pair_p']:.3f} / {inc['pair_r']:.3f} / {inc['bcubed_f']:.3f} | "
              f"{full['pair_p']:.3f} / {full['pair_r']:.3f} / {full['bcubed_f']:.3f} |", flush=True)
        db.unlink()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
