"""Calibration from a labelled folder: all genuine pairs and (sub-sampled) all impostor pairs.

The protocol used for the shipped profile calibrations: every image named by LFW View-2
``pairs.txt`` (7,701 images of 4,281 people), embedded with the profile; genuine = every pair of
images of one person; impostor = up to ``max_impostors`` random pairs of images of different
people (seeded). Thresholds at FAR 1e-1 … 1/n with bootstrap intervals come from
:class:`~facewise.eval.metrics.Calibration`.
"""

from __future__ import annotations

import numpy as np

from facewise.decision.calibration import Calibration
from facewise.decision.fusion import FusionScorer
from facewise.eval.embed import EmbeddedImages


def labelled_scores(emb: EmbeddedImages, labels: list[str], max_impostors: int = 2_000_000,
                    seed: int = 0, scorer: FusionScorer | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(genuine, impostor) scores of a labelled, embedded image set (unreadable images dropped).

    ``scorer`` applies a profile's pose/quality-aware fusion; without it scores are plain dot products.
    """
    ok = ~emb.failed
    vec, yaw, qual = emb.vectors[ok], emb.yaw[ok], emb.quality[ok]
    lab = np.asarray(labels)[ok]
    _, inv = np.unique(lab, return_inverse=True)

    def score(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if scorer is None or scorer.plain:
            return np.asarray(np.einsum("ij,ij->i", vec[a], vec[b]))
        return scorer.scores(vec[a], vec[b], yaw[a], yaw[b], qual[a], qual[b])

    genuine = []
    for ident in np.flatnonzero(np.bincount(inv) > 1):
        idx = np.flatnonzero(inv == ident)
        iu = np.triu_indices(len(idx), 1)
        genuine.append(score(idx[iu[0]], idx[iu[1]]))
    rng = np.random.default_rng(seed)
    n = len(vec)
    total_diff = n * (n - 1) // 2 - sum(len(g) for g in genuine)
    if total_diff <= max_impostors and (scorer is None or scorer.plain):
        s = vec @ vec.T
        iu = np.triu_indices(n, 1)
        diff = inv[iu[0]] != inv[iu[1]]
        impostor = s[iu][diff]
    else:
        chunks, have = [], 0
        while have < max_impostors:
            a = rng.integers(0, n, max_impostors)
            b = rng.integers(0, n, max_impostors)
            keep = inv[a] != inv[b]
            a, b = a[keep], b[keep]
            chunks.append(score(a, b))
            have += len(a)
        impostor = np.concatenate(chunks)[:max_impostors]
    gen = np.concatenate(genuine) if genuine else np.zeros(0)
    return gen.astype(np.float64), impostor.astype(np.float64)


def fit_calibration(emb: EmbeddedImages, labels: list[str], max_impostors: int = 2_000_000,
                    seed: int = 0, scorer: FusionScorer | None = None) -> Calibration:
    gen, imp = labelled_scores(emb, labels, max_impostors, seed, scorer)
    return Calibration.fit(imp, gen if len(gen) else None, seed=seed)
