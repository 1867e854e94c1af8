"""Identification search at scale: exact vs the HNSW index vs the memory-bandwidth floor, on face-like galleries.

    python bench/search.py --n 100000 --json                       # ≈ 5 min on 2 cores
    python bench/search.py --n 1000000 --probes 5000 --strangers 5000 --indexes fastscan --index-dir ~/fw-ann --json

Gallery: ``--n`` samples, ``--per-identity`` per identity, drawn from a Gaussian model of real embeddings
(``facewise.gallery.synthetic.FaceModel``) fitted to LFW images embedded with the ``fast`` profile (people
with ≥ 2 images, ≤ 8 each; cached in $FACEWISE_EVAL_CACHE or ~/.cache/facewise/eval): anisotropic, with
LFW's impostor and mate score spreads. Probes are held out: ``--probes`` new samples of enrolled identities
and ``--strangers`` samples of identities not enrolled; never a gallery vector.

* threshold: the score at FAR 1e-5 of the gallery's impostor distribution, measured here (≥ 1e6
  pairs of gallery samples of different identities).
* ground truth: exact scores of every probe against every sample (batched); ``recall_at_1``: the share of
  probes whose first answer is the exact search's best person; ``recall_above_threshold``: the share of
  (probe, person) pairs of the exact top-10 persons at or above the threshold that the answer holds;
  ``knn_recall_at_10``: overlap of the raw graph's top-10 samples with the exact top-10 samples.
* exact_ms: ``VectorIndex.search`` (the store's exact path), one query at a time, median; floor_ms: the
  N × D float32 matrix read once at the bandwidth measured in this run (best of 1 and 2 threads).
* per ANN setting: ``ms`` (median, one query at a time, one thread, k=10, the collection threshold),
  ``build_s``, ``bytes_per_face`` (graph + codes in RAM; re-ranking reads float32 rows from a memory-mapped
  file, ``rerank_bytes_per_face``); ``raw_ms``: faiss alone at the same efSearch (k=1), no re-ranking.
  ``template``: one vector per person (the mean of its samples) in the graph; the persons found are
  re-scored exactly over all their samples. ``fastscan``: the store's ``index_storage="pq4"`` (no graph:
  every sample's 4-bit OPQ/PQ code scanned in full, the ``--rerank`` best re-scored exactly; in the
  rows, ``ef_search`` is that re-rank count).

``--index-dir DIR`` saves each built index (and the fitted model) there and loads it on the next run with
the same ``--n``, ``--per-identity``, ``--seed`` and graph settings. Every ratio is between numbers of one run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from facewise.gallery.ann import AnnConfig, HnswIndex, _faiss
from facewise.gallery.index import VectorIndex, distinct_persons
from facewise.gallery.synthetic import FaceLike, FaceModel

log = logging.getLogger("bench.search")
K = 10
FAR = 1e-5
DATA = Path(os.environ.get("FACEWISE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def score_stats(vectors: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Impostor and mate score statistics of labelled vectors (all pairs)."""
    s = vectors @ vectors.T
    iu = np.triu_indices(len(vectors), 1)
    same = (labels[:, None] == labels[None, :])[iu]
    imp, mate = s[iu][~same], s[iu][same]
    return {"impostor_mean": float(imp.mean()), "impostor_sd": float(imp.std()),
            "impostor_q1e-4": float(np.quantile(imp, 1 - 1e-4)), "mate_mean": float(mate.mean()),
            "mate_sd": float(mate.std())}


def check_model(cache: Path) -> dict[str, dict[str, float]]:
    """The fitted model against the LFW embeddings it was fitted to (``--check-model``)."""
    vectors, labels = lfw_embeddings(cache)
    model = FaceModel.fit(vectors, labels)
    fake = model.gallery(len(vectors), per_identity=3, seed=0)
    return {"lfw": score_stats(vectors, labels), "model": score_stats(fake.vectors, fake.labels)}


def lfw_model(cache: Path) -> FaceModel:
    """Fit the face model to LFW embedded with the ``fast`` profile (embeddings cached in ``cache``)."""
    vectors, labels = lfw_embeddings(cache)
    log.info("fitted the face model to %d LFW embeddings", len(vectors))
    return FaceModel.fit(vectors, labels)


def lfw_embeddings(cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """LFW people with ≥ 2 images (≤ 8 each) embedded with the ``fast`` profile, and their names."""
    from facewise.core.pipeline import Pipeline
    from facewise.eval.embed import embed_images

    root = DATA / "lfw" / "images"
    paths = []
    for person in sorted(os.listdir(root)):
        files = sorted(os.listdir(root / person))
        if len(files) >= 2:
            paths += [str(root / person / f) for f in files[:8]]
    emb = embed_images(Pipeline("fast", threads=1).load(), paths, cache_dir=cache)
    ok = ~emb.no_face & ~emb.failed
    labels = np.array([Path(p).parent.name for p in emb.paths])
    return emb.vectors[ok], labels[ok]


def bandwidth(mat: np.ndarray, reps: int) -> float:
    """Bytes/s of a plain streaming read of ``mat`` (median of the better of 1 and 2 threads)."""
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
    return mat.nbytes / statistics.median(times)


def timed(fn: Any, queries: np.ndarray) -> tuple[float, list[Any]]:
    """Median milliseconds per single-query call, and the answers."""
    fn(queries[:1])  # warm-up
    times, out = [], []
    for q in queries:
        t = time.perf_counter()
        out.append(fn(q[None, :])[0])
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3, out


def impostor_threshold(data: FaceLike, seed: int) -> float:
    """The score at FAR 1e-5 among ≥ 1e6 pairs of gallery samples of different identities."""
    rng = np.random.default_rng(seed)
    scores = []
    for _ in range(4):
        a = rng.choice(len(data.vectors), 1_000, replace=False)
        b = rng.choice(len(data.vectors), 1_000, replace=False)
        s = data.vectors[a] @ data.vectors[b].T
        scores.append(s[data.labels[a][:, None] != data.labels[b][None, :]])
    return float(np.quantile(np.concatenate(scores), 1 - FAR))


def ground_truth(ix: VectorIndex, q: np.ndarray, threshold: float) -> tuple[np.ndarray, list[set[int]], np.ndarray]:
    """Per probe: the exact best person, the persons of the exact top-k (k = 10) at or above ``threshold`` (an
    answer holds k persons), the top-10 sample ids."""
    best, above, top = np.zeros(len(q), np.int64), [], np.zeros((len(q), K), np.int64)
    for a in range(0, len(q), 256):
        s = ix.scores(q[a:a + 256])
        for j, row in enumerate(s):
            t = np.argpartition(row, len(row) - K)[-K:]
            t = t[np.argsort(-row[t])]
            top[a + j] = ix.sample_ids[t]
            best[a + j] = ix.person_ids[t[0]]
            above.append({p for p, score, _ in ix._top_persons(row, K) if score >= threshold})
    return best, above, top


def grade(answers: list[list[tuple[int, float, int]]], best: np.ndarray, above: list[set[int]],
          mated: np.ndarray) -> dict[str, float]:
    """recall_at_1 over every probe, and over mated probes and strangers; the identification answers that
    agree with exact search (the best person at or above the threshold, or "unknown")."""
    hit = np.array([bool(a) and a[0][0] == b for a, b in zip(answers, best, strict=True)])
    want = sum(len(s) for s in above)
    got = sum(len(s & {h[0] for h in a}) for a, s in zip(answers, above, strict=True))
    decided = np.array([(b if b in s else -1) == (a[0][0] if a and a[0][0] in s else -1)
                        for a, b, s in zip(answers, best, above, strict=True)])
    return {"recall_at_1": float(hit.mean()), "recall_at_1_mated": float(hit[mated].mean()),
            "recall_at_1_strangers": float(hit[~mated].mean()) if (~mated).any() else float("nan"),
            "recall_above_threshold": got / max(1, want), "above_pairs": want,
            "same_decision": float(decided.mean())}


class TemplateIndex:
    """One vector per person (the normalised mean of its samples) in a faiss HNSW graph; the persons found
    are re-scored exactly over all their samples (max), as the store scores a person."""

    def __init__(self, ix: VectorIndex, cfg: AnnConfig) -> None:
        self.ix, self.cfg = ix, cfg
        order = np.argsort(ix.person_ids, kind="stable")
        self.order = order
        self.pids, self.start = np.unique(ix.person_ids[order], return_index=True)
        self.rows = np.ascontiguousarray(ix.matrix[order])
        sums = np.add.reduceat(self.rows, self.start, axis=0)
        self.templates = sums / np.linalg.norm(sums, axis=1, keepdims=True)
        self.ann = HnswIndex(ix.dim, cfg)
        self.ends = np.append(self.start[1:], len(order))

    def build(self) -> None:
        self.ann.build(np.arange(len(self.pids)), self.templates)

    def search(self, q: np.ndarray, k: int, threshold: float) -> list[list[tuple[int, float, int]]]:
        faiss = _faiss()
        faiss.omp_set_num_threads(1)
        ef = max(self.cfg.ef_search, k)
        _, labels = self.ann.index.search(q, ef, params=faiss.SearchParametersHNSW(efSearch=ef))
        out = []
        for qi in range(len(q)):
            cand = labels[qi][labels[qi] >= 0]
            lens = self.ends[cand] - self.start[cand]  # the found persons' samples: one gather, no loop
            idx = np.repeat(self.start[cand] - np.cumsum(lens) + lens, lens) + np.arange(lens.sum())
            s = self.rows[idx] @ q[qi]
            o = np.argsort(-s, kind="stable")
            out.append(distinct_persons(o, s[o], self.ix.person_ids[self.order[idx[o]]],
                                        self.ix.sample_ids[self.order[idx[o]]], k))
        return out


def graph_bytes(ann: HnswIndex) -> int:
    faiss = _faiss()
    return int(faiss.serialize_index(ann.index).nbytes)


def built(kind: str, ix: VectorIndex, cfg: AnnConfig, where: Path | None) -> tuple[Any, float]:
    """A built (or loaded) HNSW or template index and its build seconds (from the saved run if loaded)."""
    base = where / f"{kind}-{cfg.key()}" if where else None
    obj: Any = TemplateIndex(ix, cfg) if kind == "template" else None
    if base is not None and Path(str(base) + ".json").exists():
        loaded = HnswIndex.load(base, ix.dim, cfg)
        if loaded is not None:
            if obj is None:
                obj = loaded[0]
            else:
                obj.ann = loaded[0]
            log.info("loaded %s", base)
            return obj, float(json.loads(loaded[1] or "{}").get("build_s", float("nan")))
    t = time.perf_counter()
    if obj is None:
        obj = HnswIndex(ix.dim, cfg)
        obj.build(ix.sample_ids, np.ascontiguousarray(ix.matrix))
    else:
        obj.build()
    secs = time.perf_counter() - t
    log.info("built %s %s in %.1f s", kind, cfg.key(), secs)
    if base is not None:
        (obj if kind == "hnsw" else obj.ann).save(base, json.dumps({"build_s": secs}))
    return obj, secs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--per-identity", type=int, default=5)
    ap.add_argument("--probes", type=int, default=1_000, help="mated probes (new samples of enrolled people)")
    ap.add_argument("--strangers", type=int, default=1_000, help="non-mated probes (people not enrolled)")
    ap.add_argument("--exact-timed", type=int, default=200, help="probes timed one by one on the exact path")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--storage", default="sq8", help="comma list of flat, fp16, sq8")
    ap.add_argument("--m", type=int, default=48, help="HNSW M (the store's default)")
    ap.add_argument("--ef-construction", type=int, default=200, help="efConstruction (the store's default)")
    ap.add_argument("--efs", default="16,24,32,48,64,96", help="efSearch values to measure")
    ap.add_argument("--indexes", default="hnsw",
                    help="hnsw (one vector per sample), template (per person), fastscan (PQ codes, full scan)")
    ap.add_argument("--rerank", default="500,1000,1500,2000", help="fastscan: codes re-scored exactly (index_ef)")
    ap.add_argument("--model", type=Path, default=None, help="a saved FaceModel (.npz) instead of fitting to LFW")
    ap.add_argument("--index-dir", type=Path, default=None, help="save built indexes here and reuse them")
    ap.add_argument("--json", action="store_true", help="print one JSON object (else a Markdown table)")
    ap.add_argument("--check-model", action="store_true", help="only compare the model's scores with LFW's")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    if args.check_model:
        from facewise.models.catalogue import cache_dir

        print(json.dumps(check_model(Path(os.environ.get("FACEWISE_EVAL_CACHE", cache_dir().parent / "eval"))),
                         indent=1))
        return

    where = args.index_dir / f"n{args.n}-p{args.per_identity}-s{args.seed}" if args.index_dir else None
    if where is not None:
        where.mkdir(parents=True, exist_ok=True)
    model_file = args.model or (where / "model.npz" if where else None)
    if model_file is not None and model_file.exists():
        model = FaceModel.load(str(model_file))
    else:
        from facewise.models.catalogue import cache_dir

        model = lfw_model(Path(os.environ.get("FACEWISE_EVAL_CACHE", cache_dir().parent / "eval")))
        if model_file is not None:
            model.save(str(model_file))
    data = model.gallery(args.n, args.per_identity, seed=args.seed)
    q, qlab = model.probes(data, args.probes, args.strangers, seed=args.seed + 1)
    ix = VectorIndex(model.dim)
    ix.reset(np.arange(args.n), data.labels, data.vectors)
    threshold = impostor_threshold(data, args.seed + 2)
    best, above, top = ground_truth(ix, q, threshold)
    mated = qlab >= 0
    out: dict[str, Any] = {
        "n": args.n, "dim": model.dim, "per_identity": args.per_identity, "probes": len(q),
        "mated_probes": int(mated.sum()), "threshold": threshold, "far": FAR, "k": K,
        "exact_rank1_mated": float(np.mean(best[mated] == qlab[mated])),
        "strangers_above_threshold": float(np.mean([bool(above[i]) for i in np.flatnonzero(~mated)] or [0])),
    }
    floor_ms = ix.columns.nbytes / bandwidth(ix.columns, 20) * 1e3
    exact_ms, _ = timed(lambda x: ix.search(x, K), q[: args.exact_timed])
    out.update(exact_ms=exact_ms, floor_ms=floor_ms, exact_vs_floor=exact_ms / floor_ms, ann=[])
    log.info("%s", {k: v for k, v in out.items() if k != "ann"})
    faiss = _faiss()
    kinds = args.indexes.split(",")
    runs = [("hnsw", "pq4")] if "fastscan" in kinds else []  # the store's pq4 path: no graph, --rerank for efs
    runs += [(kind, storage) for storage in args.storage.split(",") for kind in kinds if kind != "fastscan"]
    for kind, storage in runs:
        cfg = AnnConfig(storage=storage, m=args.m, ef_construction=args.ef_construction)
        faiss.omp_set_num_threads(1)  # builds too: the machine is shared
        obj, build_s = built(kind, ix, cfg, where)
        ann = obj if kind == "hnsw" else obj.ann
        gbytes = graph_bytes(ann)
        scan = storage == "pq4"
        for ef in [int(x) for x in (args.rerank if scan else args.efs).split(",")]:
            ann.cfg = obj.cfg = AnnConfig(storage=storage, m=args.m, ef_construction=args.ef_construction,
                                          ef_search=ef)
            if kind == "hnsw":
                ms, res = timed(lambda x, a=ann: a.search(x, K, ix, threshold), q)
            else:
                ms, res = timed(lambda x, o=obj: o.search(x, K, threshold), q)
            params = None if scan else faiss.SearchParametersHNSW(efSearch=ef)
            faiss.omp_set_num_threads(1)
            raw_ms, _ = timed(lambda x, a=ann, p=params, r=ef if scan else 1: a.index.search(x, r, params=p)[1],
                              q)
            row: dict[str, Any] = {"index": "fastscan" if scan else kind, "storage": storage, "m": args.m,
                                   "ef_construction": args.ef_construction, "ef_search": ef, "ms": ms,
                                   "raw_ms": raw_ms, **grade(res, best, above, mated), "build_s": build_s,
                                   "bytes_per_face": gbytes / args.n,
                                   "rerank_bytes_per_face": 0 if ann.exact_scores else 4 * model.dim}
            if kind == "hnsw" and not scan:
                _, lab = ann.index.search(q, K, params=faiss.SearchParametersHNSW(efSearch=max(ef, K)))
                row["knn_recall_at_10"] = float(np.mean([len(set(a) & set(b)) / K for a, b in zip(lab, top,
                                                                                                 strict=True)]))
            log.info("%s", row)
            out["ann"].append(row)
    if args.json:
        print(json.dumps(out, indent=1))
        return
    print(f"N={args.n:,} dim={model.dim} threshold={threshold:.3f} (FAR {FAR:g}) exact {exact_ms:.2f} ms, "
          f"floor {floor_ms:.2f} ms")
    print("| index | storage | efSearch / rerank | ms | raw ms | recall@1 | recall@1 mated | above-threshold | "
          "same decision | kNN@10 | build s | B/face |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in out["ann"]:
        print(f"| {r['index']} | {r['storage']} | {r['ef_search']} | {r['ms']:.3f} | "
              f"{r['raw_ms']:.3f} | {r['recall_at_1']:.4f} | {r['recall_at_1_mated']:.4f} | "
              f"{r['recall_above_threshold']:.4f} | {r['same_decision']:.4f} | "
              f"{r.get('knn_recall_at_10', float('nan')):.3f} | {r['build_s']:.1f} | {r['bytes_per_face']:.0f} |")


if __name__ == "__main__":
    main()
