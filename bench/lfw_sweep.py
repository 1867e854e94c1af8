"""Choose profiles by measurement: per-model and fused LFW accuracy from cached per-model embeddings.

    python bench/lfw_embed_all.py --detector yunet-2023mar --models reid-0095,mobilefacenet-y1,mobilefacenet-128 --flip
    python bench/lfw_embed_all.py --detector yunet-2023mar --models dlib-resnet-v1 --flip
    python bench/lfw_embed_all.py --detector yunet-2023mar --models dlib-resnet-v1   # optional: dlib without flip
    python bench/lfw_embed_all.py --detector scrfd-2.5g --models reid-0095,mobilefacenet-y1 --flip   # optional
    python bench/lfw_sweep.py [--steps 10] [--low-far]
    python bench/lfw_sweep.py --from-profile accurate-commercial   # blocks from that profile's eval cache

Fusion is done in normalised units: each model's cosine becomes (cos - mean) / std of its impostor
cosines, both measured on the nine training folds. Fusion weights are chosen by AUC on the same nine
folds and the threshold by accuracy there; the tenth fold is only tested (no peeking). "fade" rows let
the named models' weights fall to zero between 30 and 60 degrees of the pair's worse |yaw|, as the
profiles' fusion rules do. Fixed-weight rows ("w=...") show a profile's shipped weights.

``--from-profile NAME`` reads the per-model blocks from the embedding cache that ``facewise calibrate`` or
``facewise eval pairs --profile NAME`` left (each block renormalised, so the profile's weights do not matter).

``--low-far`` adds TAR at FAR 1e-3 / 1e-4 / 1e-5 of fixed-weight three-model profiles on the protocol of
``facewise calibrate`` (all 8,101 genuine pairs of the 7,701 images, 2,000,000 random impostor pairs,
seed 0), scored by the profile code itself (shift/scale from the ``accurate`` profile, fade rules).
"""

from __future__ import annotations

import argparse
import itertools
import os
from pathlib import Path

import numpy as np

from facewise.decision.fusion import FusionScorer
from facewise.eval import metrics as mt
from facewise.eval.calibrate import labelled_scores
from facewise.eval.embed import EmbeddedImages
from facewise.eval.pairs import parse_lfw_pairs
from facewise.models.catalogue import cache_dir, card
from facewise.models.profiles import Profile, load_profile

DATA = Path(os.environ.get("FACEWISE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
CACHE = Path(os.environ.get("FACEWISE_EVAL_CACHE", cache_dir().parent / "eval"))
# (label prefix, detector, the models embedded together by lfw_embed_all.py, flip)
SOURCES = [("", "yunet-2023mar", ["reid-0095", "mobilefacenet-y1", "mobilefacenet-128"], True),
           ("", "yunet-2023mar", ["dlib-resnet-v1"], True),
           ("noflip:", "yunet-2023mar", ["dlib-resnet-v1"], False),
           ("scrfd:", "scrfd-2.5g", ["reid-0095", "mobilefacenet-y1"], True)]


PROFILE_SOURCE: list[str] = []  # --from-profile: read that profile's eval cache instead of SOURCES


def load_blocks() -> tuple[list[str], dict[str, np.ndarray], np.ndarray]:
    """Unit vectors of every cached source (label = prefix + model), rows in one image order, and the yaw of
    each image from the first YuNet cache."""
    keys: list[str] | None = None
    blocks: dict[str, np.ndarray] = {}
    yaw = np.zeros(0)
    sources = [(f"{p}-{'?' * 16}.npz", "", [e.model for e in load_profile(p).embedders]) for p in PROFILE_SOURCE]
    sources = sources or [(f"sweep-{d}-{'-'.join(ms)}-{'flip' if flip else 'noflip'}-*.npz", prefix, ms)
                          for prefix, d, ms, flip in SOURCES]
    for pattern, prefix, models in sources:
        found = sorted(CACHE.glob(pattern))
        if not found:
            print(f"(no cache {pattern} in {CACHE}: run bench/lfw_embed_all.py or facewise eval pairs)")
            continue
        z = np.load(found[0])
        these = [k.split("|")[0] for k in z["keys"]]
        if keys is None:
            keys, yaw = these, z["yaw"]
        where = {k: i for i, k in enumerate(these)}
        order = np.array([where[k] for k in keys])
        start = 0
        for m in models:
            d = int(card(m).output_dim or 0)
            v = z["vectors"][order, start:start + d]
            blocks[prefix + m] = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
            start += d
    return keys or [], blocks, yaw


def low_far_table(weights: list[tuple[float, float, float]]) -> None:
    keys, blocks, yaw = load_blocks()
    base = load_profile("accurate").to_dict()
    people = [Path(k).parent.name for k in keys]
    print("\n| reid-0095 / y1 / dlib weights (fade y1, dlib) | TAR@FAR 1e-3 | TAR@1e-4 | TAR@1e-5 |")
    print("|---|---|---|---|")
    old = {**base, "name": "two-model", "fusion": {"rules": base["fusion"]["rules"][:1]},
           "embedders": [{"model": "reid-0095", "weight": 0.6}, {"model": "mobilefacenet-y1", "weight": 0.4}]}
    cands = [("reid-0095 0.6 + y1 0.4 (`balanced`)", old)]
    for w in weights:
        emb = [{**e, "weight": wi} for e, wi in zip(base["embedders"], w, strict=True)]
        cands.append((f"{w[0]} / {w[1]} / {w[2]}", {**base, "embedders": emb}))
    for name, doc in cands:
        prof = Profile.from_dict(doc)
        vec = np.concatenate([blocks[e.model] * np.sqrt(e.weight) for e in prof.embedders], 1)
        n = len(keys)
        emb_ = EmbeddedImages(keys, vec, yaw, np.ones(n, np.float32), np.zeros(n, bool), np.zeros(n, bool))
        gen, imp = labelled_scores(emb_, people, scorer=FusionScorer(prof))
        sc, lab = np.r_[gen, imp], np.r_[np.ones(len(gen), bool), np.zeros(len(imp), bool)]
        print(f"| {name} | " + " | ".join(f"{mt.tar_at_far(sc, lab, f):.4f}" for f in (1e-3, 1e-4, 1e-5)) + " |")


def load_scores(pairs: list) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per-model cosine of every pair, and the pair's worse |yaw| (YuNet landmarks)."""
    keys, blocks, yaw = load_blocks()
    where = {k: i for i, k in enumerate(keys)}
    a = np.array([where[os.path.abspath(p.path1)] for p in pairs])
    b = np.array([where[os.path.abspath(p.path2)] for p in pairs])
    scores = {m: np.einsum("ij,ij->i", v[a], v[b]) for m, v in blocks.items()}
    return scores, np.maximum(np.abs(yaw[a]), np.abs(yaw[b]))


def fused_cv(s: dict[str, np.ndarray], labels: np.ndarray, folds: np.ndarray, yaw: np.ndarray, models: list[str],
             grid: list[tuple[float, ...]], fade: tuple[str, ...] = ()) -> tuple[float, float, tuple, np.ndarray]:
    """10-fold accuracy with normalisation, weights and threshold all fitted on the nine training folds."""
    accs, picks = [], []
    pooled = np.zeros(len(labels))
    fader = np.clip((60 - yaw) / 30, 0, 1)
    for k in np.unique(folds):
        tr, te = folds != k, folds == k
        z = {}
        for m in models:
            imp = s[m][tr & ~labels]
            z[m] = (s[m] - imp.mean()) / imp.std()

        def fuse(w: tuple[float, ...], z: dict[str, np.ndarray] = z) -> np.ndarray:
            wts = np.tile(np.array(w, float), (len(labels), 1))
            for i, m in enumerate(models):
                if m in fade:
                    wts[:, i] *= fader
            wts /= wts.sum(1, keepdims=True)
            return sum(wts[:, i] * z[m] for i, m in enumerate(models))

        best = grid[0] if len(grid) == 1 else max(grid, key=lambda w: mt.auc(fuse(w)[tr], labels[tr]))
        f = fuse(best)
        thr = mt.best_accuracy_threshold(f[tr], labels[tr]).threshold
        accs.append(float(((f[te] >= thr) == labels[te]).mean()))
        picks.append(best)
        pooled[te] = f[te]
    return float(np.mean(accs)), float(np.std(accs)), max(set(picks), key=picks.count), pooled


def row(name: str, acc: float, std: float, scores: np.ndarray, labels: np.ndarray) -> None:
    print(f"| {name} | {100 * acc:.2f} | {100 * std:.2f} | {mt.auc(scores, labels):.5f} | "
          f"{mt.tar_at_far(scores, labels, 1e-3):.4f} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=10, help="weight grid resolution (1/steps)")
    ap.add_argument("--low-far", action="store_true", help="also TAR at 1e-3..1e-5 on the calibration protocol")
    ap.add_argument("--from-profile", help="per-model blocks from this profile's `facewise eval` embedding cache")
    args = ap.parse_args()
    if args.from_profile:
        PROFILE_SOURCE.append(args.from_profile)
    pairs = parse_lfw_pairs(DATA / "lfw" / "pairs.txt", DATA / "lfw" / "images")
    labels = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    s, yaw = load_scores(pairs)
    print(f"pairs by worse |yaw|: <30: {(yaw < 30).sum()}, 30-60: {((yaw >= 30) & (yaw < 60)).sum()}, "
          f">=60: {(yaw >= 60).sum()}\n")
    print("| variant (flip TTA, YuNet alignment unless stated) | accuracy % | ± | AUC | TAR@FAR 1e-3 (pooled) |")
    print("|---|---|---|---|---|")
    for m, v in s.items():
        r = mt.ten_fold_accuracy(v, labels, folds)
        row(m, r.mean, r.std, v, labels)
    g = [i / args.steps for i in range(args.steps + 1)]
    r95, y1, dlib, m128 = "reid-0095", "mobilefacenet-y1", "dlib-resnet-v1", "mobilefacenet-128"
    variants: list[tuple[list[str], tuple[str, ...], tuple[float, ...] | None]] = [
        ([r95, y1], (y1,), None), ([r95, y1], (y1,), (0.6, 0.4)),
        ([r95, dlib], (dlib,), None), ([r95, dlib], (dlib,), (0.4, 0.6)), ([r95, y1, dlib], (y1, dlib), None),
        ([r95, y1, dlib, m128], (y1, dlib, m128), None), ([r95, y1, dlib], (y1, dlib), (0.3, 0.1, 0.6)),
        ([r95, y1, "noflip:" + dlib], (y1, "noflip:" + dlib), None), ([r95, "scrfd:" + r95], (), None),
    ]
    for combo, fade, fixed in variants:
        if not all(m in s for m in combo):
            continue
        grid = [fixed] if fixed else [w for w in itertools.product(g, repeat=len(combo))
                                      if abs(sum(w) - 1) < 1e-9 and w[0] > 0]
        acc, std, pick, pooled = fused_cv(s, labels, folds, yaw, combo, grid, fade)
        how = f"w={fixed}" if fixed else f"in-fold weights (modal pick {pick})"
        row(" + ".join(combo) + (f", fade {'/'.join(fade)}" if fade else "") + f", {how}", acc, std, pooled, labels)
    if args.low_far:
        low_far_table([(0.3, 0.1, 0.6), (0.4, 0.2, 0.4), (0.4, 0.3, 0.3), (0.5, 0.3, 0.2)])


if __name__ == "__main__":
    main()
