"""Choose profiles by measurement: per-model and fused LFW accuracy from cached per-model embeddings.

    python bench/lfw_embed_all.py --detector yunet-2023mar --models reid-0095,mobilefacenet-y1,mobilefacenet-128
    python bench/lfw_embed_all.py --detector yunet-2023mar --models reid-0095,mobilefacenet-y1,mobilefacenet-128 --flip
    python bench/lfw_sweep.py

Fusion weights are chosen on nine folds and tested on the tenth (no peeking at the test fold).
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np

from facewise.eval import metrics as mt
from facewise.eval.pairs import parse_lfw_pairs
from facewise.models.catalogue import cache_dir, card

DATA = Path(os.environ.get("FACEWISE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
CACHE = Path(os.environ.get("FACEWISE_EVAL_CACHE", cache_dir().parent / "eval"))
MODELS = ["reid-0095", "mobilefacenet-y1", "mobilefacenet-128"]


def load_blocks(tag: str) -> tuple[dict[str, int], dict[str, np.ndarray], np.ndarray]:
    f = next(CACHE.glob(f"sweep-yunet-2023mar-{'-'.join(MODELS)}-{tag}-*.npz"))
    z = np.load(f)
    keys = [k.split("|")[0] for k in z["keys"]]
    where = {k: i for i, k in enumerate(keys)}
    vec = z["vectors"]
    blocks, start = {}, 0
    for m in MODELS:
        d = int(card(m).output_dim or 0)
        b = vec[:, start : start + d]
        blocks[m] = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
        start += d
    return where, blocks, z["yaw"]


def pair_scores(where: dict[str, int], blocks: dict[str, np.ndarray], pairs: list) -> dict[str, np.ndarray]:
    a = np.array([where[os.path.abspath(p.path1)] for p in pairs])
    b = np.array([where[os.path.abspath(p.path2)] for p in pairs])
    return {m: np.einsum("ij,ij->i", v[a], v[b]) for m, v in blocks.items()}


def fused_cv(s: dict[str, np.ndarray], labels: np.ndarray, folds: np.ndarray, models: list[str],
             grid: list[tuple[float, ...]]) -> tuple[float, float, tuple[float, ...]]:
    """10-fold accuracy where the fusion weights are also chosen on the nine training folds.

    Weights are chosen by AUC on the training folds (smoother than accuracy, which moves in steps).
    """
    accs, picks = [], []
    for k in np.unique(folds):
        tr, te = folds != k, folds == k
        best = max(grid, key=lambda w: mt.auc(
            sum(wi * s[m][tr] for wi, m in zip(w, models, strict=True)), labels[tr]))
        fused = sum(wi * s[m] for wi, m in zip(best, models, strict=True))
        thr = mt.best_accuracy_threshold(fused[tr], labels[tr]).threshold
        accs.append(float(((fused[te] >= thr) == labels[te]).mean()))
        picks.append(best)
    return float(np.mean(accs)), float(np.std(accs)), max(set(picks), key=picks.count)


def pose_rule_scores(s: dict[str, np.ndarray], w: tuple[float, ...], models: list[str], yaw: np.ndarray,
                     weak: str, full_until: float, zero_at: float) -> np.ndarray:
    """Fused scores where the weak model's weight fades with the worse |yaw| of the pair."""
    wts = np.tile(np.array(w, float), (len(yaw), 1))
    i = models.index(weak)
    wts[:, i] *= np.clip((zero_at - yaw) / (zero_at - full_until), 0, 1)
    wts /= wts.sum(1, keepdims=True)
    return sum(wts[:, j] * s[m] for j, m in enumerate(models))


def main() -> None:
    pairs = parse_lfw_pairs(DATA / "lfw" / "pairs.txt", DATA / "lfw" / "images")
    labels = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    print(f"{'variant':44s} {'acc %':>7s} {'±':>5s} {'AUC':>8s} {'TAR@1e-3':>9s}")
    for tag in ("noflip", "flip"):
        try:
            where, blocks, _ = load_blocks(tag)
        except StopIteration:
            continue
        s = pair_scores(where, blocks, pairs)
        for m in MODELS:
            r = mt.ten_fold_accuracy(s[m], labels, folds)
            print(f"{m + ' ' + tag:44s} {100 * r.mean:7.2f} {100 * r.std:5.2f} {mt.auc(s[m], labels):8.5f} "
                  f"{mt.tar_at_far(s[m], labels, 1e-3):9.4f}")
        a = np.array([where[os.path.abspath(p.path1)] for p in pairs])
        b = np.array([where[os.path.abspath(p.path2)] for p in pairs])
        yaw_all = load_blocks(tag)[2]
        pair_yaw = np.maximum(np.abs(yaw_all[a]), np.abs(yaw_all[b]))
        mid = ((pair_yaw >= 30) & (pair_yaw < 60)).sum()
        print(f"pairs by worse |yaw|: <30: {(pair_yaw < 30).sum()}, 30-60: {mid}, >=60: {(pair_yaw >= 60).sum()}")
        grid_w = [i / 10 for i in range(11)]
        for combo in (MODELS[:2], [MODELS[0], MODELS[2]], MODELS):
            grid = [w for w in itertools.product(grid_w, repeat=len(combo)) if abs(sum(w) - 1) < 1e-9]
            acc, std, w = fused_cv(s, labels, folds, combo, grid)
            fused = sum(wi * s[m] for wi, m in zip(w, combo, strict=True))
            name = "+".join(combo) + f" {tag} w={w}"
            print(f"{name:44s} {100 * acc:7.2f} {100 * std:5.2f} {mt.auc(fused, labels):8.5f} "
                  f"{mt.tar_at_far(fused, labels, 1e-3):9.4f}")
            if "mobilefacenet-y1" in combo:
                for full, zero in ((30, 60), (20, 45)):
                    f2 = pose_rule_scores(s, w, combo, pair_yaw, "mobilefacenet-y1", full, zero)
                    r = mt.ten_fold_accuracy(f2, labels, folds)
                    print(f"{'  + y1 fades ' + str(full) + '->' + str(zero) + ' deg':44s} {100 * r.mean:7.2f} "
                          f"{100 * r.std:5.2f} {mt.auc(f2, labels):8.5f} {mt.tar_at_far(f2, labels, 1e-3):9.4f}")


if __name__ == "__main__":
    main()
