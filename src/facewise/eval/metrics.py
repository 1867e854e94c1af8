"""Model-free evaluation metrics for verification, identification, clustering and liveness.

Everything here works on plain score arrays (numpy only); nothing loads a model or an image.

Conventions used throughout the module
--------------------------------------
* **Scores**: higher means more similar (or, for liveness, more likely live).
* **Labels**: a boolean array, ``True`` = same person ("genuine" / "mated"), ``False`` = different
  people ("impostor").  Integer 0/1 labels are accepted and converted.
* **Decision rule**: a pair is declared "same" iff ``score >= threshold``.  Hence, for a threshold ``t``:

  - ``FAR(t) = #{impostor >= t} / n_impostor``  (false accept rate, a.k.a. FMR),
  - ``TAR(t) = #{genuine >= t} / n_genuine``    (true accept rate),
  - ``FRR(t) = 1 - TAR(t) = #{genuine < t} / n_genuine``.

* Functions returning a "threshold at a FAR" return the *smallest* float64 threshold whose FAR does not
  exceed the target (see :func:`threshold_at_far`), which gives the largest attainable TAR.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from facewise.decision.calibration import (
    BoolArray,
    Calibration,
    FarEstimate,
    FloatArray,
    ThresholdEstimate,
    as_bool,
    as_scores,
    check_rate,
    far_of_score,
    split_scores,
    threshold_at_far,
    threshold_from_sorted,
)

__all__ = [
    "PRF",
    "AccuracyThreshold",
    "Calibration",
    "Estimate",
    "FarEstimate",
    "FoldResult",
    "LivenessResult",
    "OpenSetCurve",
    "ThresholdEstimate",
    "apcer_bpcer_acer",
    "auc",
    "bcubed",
    "bcubed_f",
    "best_accuracy_threshold",
    "bootstrap_ci",
    "cmc",
    "eer",
    "far_of_score",
    "fnir_at_fpir",
    "fpir_fnir",
    "liveness_eer",
    "pairwise_precision_recall",
    "roc_curve",
    "tar_at_far",
    "tar_at_far_with_ci",
    "ten_fold_accuracy",
    "threshold_at_far",
]

logger = logging.getLogger(__name__)

ScoreFn = Callable[[FloatArray, BoolArray], float]


def roc_curve(scores: npt.ArrayLike, labels: npt.ArrayLike) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Exact ROC curve.

    Returns ``(far, tar, thresholds)`` with one point per *distinct* score (tied scores move FAR and TAR
    together, as one diagonal step), ordered by decreasing threshold.  The first point is
    ``(far, tar) = (0, 0)`` at ``threshold = +inf``; the last is ``(1, 1)`` at the minimum score.
    ``far[i]``/``tar[i]`` are the rates of the rule ``score >= thresholds[i]``.
    """
    s = as_scores(scores)
    lab = as_bool(labels, s.shape[0])
    n_gen = int(lab.sum())
    n_imp = s.size - n_gen
    if n_gen == 0 or n_imp == 0:
        raise ValueError(f"roc_curve needs both classes; got {n_gen} genuine and {n_imp} impostor")
    order = np.argsort(-s, kind="stable")
    s_sorted = s[order]
    l_sorted = lab[order]
    tp = np.cumsum(l_sorted)
    fp = np.cumsum(~l_sorted)
    # Last index of each run of equal scores (scores are sorted in decreasing order).
    last = np.r_[np.flatnonzero(np.diff(s_sorted) != 0), s.size - 1]
    far = np.r_[0.0, fp[last] / n_imp]
    tar = np.r_[0.0, tp[last] / n_gen]
    thresholds = np.r_[np.inf, s_sorted[last]]
    return far, tar, thresholds


def auc(scores: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """Area under the ROC curve.

    Computed exactly as the Mann-Whitney probability ``P(genuine > impostor) + 0.5 * P(genuine ==
    impostor)`` (average ranks), which equals the trapezoidal area under :func:`roc_curve`.
    """
    gen, imp = split_scores(scores, labels)
    values = np.concatenate([gen, imp])
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    avg_rank = np.cumsum(counts) - (counts - 1) / 2.0  # 1-based average rank of each distinct value
    rank_sum = float(avg_rank[inverse[: gen.size]].sum())
    n_g, n_i = gen.size, imp.size
    return (rank_sum - n_g * (n_g + 1) / 2.0) / (n_g * n_i)


def eer(scores: npt.ArrayLike, labels: npt.ArrayLike) -> tuple[float, float]:
    """Equal error rate and its threshold: ``(eer, threshold)``.

    Walks the ROC points (:func:`roc_curve`) by decreasing threshold; FAR rises and FRR falls.  At the
    first point where ``FAR >= FRR`` the crossing lies between it and the previous point, and both the
    rate and the threshold are linearly interpolated there (so FAR and FRR are equal on the
    interpolated segment).  If the previous point is the ``+inf`` start, the threshold of the first
    real point is returned.

    Reusable for liveness: with ``labels = True`` for bona fide and ``False`` for attacks, FAR is APCER
    and FRR is BPCER (see :func:`liveness_eer`).
    """
    far, tar, thr = roc_curve(scores, labels)
    diff = far - (1.0 - tar)  # -1 at the start, +1 at the end, non-decreasing
    i = int(np.argmax(diff >= 0.0))
    d0, d1 = diff[i - 1], diff[i]
    w = float(-d0 / (d1 - d0))  # in (0, 1]
    rate = float(far[i - 1] + w * (far[i] - far[i - 1]))
    threshold = float(thr[i - 1] + w * (thr[i] - thr[i - 1])) if np.isfinite(thr[i - 1]) else float(thr[i])
    return rate, threshold


def tar_at_far(scores: npt.ArrayLike, labels: npt.ArrayLike, far: float) -> float:
    """True accept rate at the threshold given by :func:`threshold_at_far` on the impostor scores."""
    gen, imp = split_scores(scores, labels)
    t = threshold_at_far(imp, far)
    return float(np.mean(gen >= t))


# --------------------------------------------------------------------------------------------------
# Bootstrap confidence intervals
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a confidence interval ``[low, high]``."""

    value: float
    low: float
    high: float


def bootstrap_ci(
    fn: ScoreFn,
    scores: npt.ArrayLike,
    labels: npt.ArrayLike,
    n: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float]:
    """Stratified percentile-bootstrap interval ``(low, high)`` of ``fn(scores, labels)``.

    Each of the ``n`` replicates resamples the genuine and the impostor scores *separately*, with
    replacement and at their original sizes, so every replicate keeps the class counts.  The interval
    is the ``alpha/2`` and ``1 - alpha/2`` quantiles of the replicate values.  Deterministic for a
    given ``seed``.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")
    gen, imp = split_scores(scores, labels)
    rng = np.random.default_rng(seed)
    boot_labels = np.r_[np.ones(gen.size, dtype=np.bool_), np.zeros(imp.size, dtype=np.bool_)]
    values = np.empty(n, dtype=np.float64)
    for b in range(n):
        g = gen[rng.integers(0, gen.size, size=gen.size)]
        i = imp[rng.integers(0, imp.size, size=imp.size)]
        values[b] = fn(np.concatenate([g, i]), boot_labels)
    low, high = np.quantile(values, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(low), float(high)


def tar_at_far_with_ci(
    scores: npt.ArrayLike,
    labels: npt.ArrayLike,
    far: float,
    n: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> Estimate:
    """:func:`tar_at_far` with a stratified bootstrap interval (:func:`bootstrap_ci`)."""
    check_rate(far, "far")
    value = tar_at_far(scores, labels, far)
    low, high = bootstrap_ci(
        lambda s, lab: tar_at_far(s, lab, far), scores, labels, n=n, seed=seed, alpha=alpha
    )
    return Estimate(value=value, low=low, high=high)


# --------------------------------------------------------------------------------------------------
# Accuracy with a tuned threshold (LFW protocol)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FoldResult:
    """Result of :func:`ten_fold_accuracy`.

    ``per_fold[i]`` is the test accuracy on fold ``fold_ids[i]`` at ``thresholds[i]`` (chosen on the
    other folds); ``std`` is the population standard deviation (``ddof=0``) of ``per_fold``.
    """

    mean: float
    std: float
    per_fold: FloatArray
    thresholds: FloatArray
    fold_ids: tuple[int, ...] = ()


class AccuracyThreshold(NamedTuple):
    """Best accuracy and its threshold; unpacks as ``accuracy, threshold`` (like ``eer``'s pair)."""

    accuracy: float
    threshold: float


def _best_threshold(s: FloatArray, lab: BoolArray) -> AccuracyThreshold:
    """Accuracy-maximising threshold of ``score >= t`` on ``(s, lab)``, with that accuracy.

    Candidates: the accept-everything threshold (the minimum score), every midpoint between consecutive
    distinct scores, and the reject-everything threshold (just above the maximum).  Ties between equally
    accurate candidates are broken by taking the middle one (the lower one of the two middle ones).
    """
    uniq, inverse = np.unique(s, return_inverse=True)
    m = uniq.size
    gen_counts = np.bincount(inverse[lab], minlength=m)
    imp_counts = np.bincount(inverse[~lab], minlength=m)
    # Candidate j (0..m) accepts the distinct values with index >= j.
    gen_below = np.r_[0, np.cumsum(gen_counts)]
    imp_below = np.r_[0, np.cumsum(imp_counts)]
    correct = (gen_counts.sum() - gen_below) + imp_below
    candidates = np.r_[uniq[0], (uniq[:-1] + uniq[1:]) / 2.0, np.nextafter(uniq[-1], np.inf)]
    best = np.flatnonzero(correct == correct.max())
    j = int(best[(best.size - 1) // 2])
    return AccuracyThreshold(accuracy=float(correct[j] / s.size), threshold=float(candidates[j]))


def best_accuracy_threshold(scores: npt.ArrayLike, labels: npt.ArrayLike) -> AccuracyThreshold:
    """``(accuracy, threshold)`` maximising the accuracy of ``score >= threshold`` on the given data.

    Returns a named tuple: ``acc, t = best_accuracy_threshold(...)`` or ``.accuracy`` / ``.threshold``
    (value first, threshold second, as in :func:`eer`).

    The search covers the midpoints between consecutive distinct scores plus the accept-all and
    reject-all thresholds; among equally good candidates the middle one is returned.
    """
    s = as_scores(scores)
    lab = as_bool(labels, s.shape[0])
    return _best_threshold(s, lab)


def ten_fold_accuracy(scores: npt.ArrayLike, labels: npt.ArrayLike, folds: npt.ArrayLike) -> FoldResult:
    """Verification accuracy under the LFW protocol (k-fold cross-validated threshold).

    For every fold id ``k`` (in increasing order), the threshold is chosen by
    :func:`best_accuracy_threshold` on all pairs *not* in fold ``k``, and the accuracy of
    ``score >= threshold`` is measured on fold ``k``.  ``folds`` is an integer fold id per pair (0..9
    for LFW).  Fully deterministic.
    """
    s = as_scores(scores)
    lab = as_bool(labels, s.shape[0])
    f = np.asarray(folds)
    if f.ndim != 1 or f.shape[0] != s.shape[0]:
        raise ValueError(f"folds must be a 1-D array of length {s.shape[0]}, got shape {f.shape}")
    if not np.issubdtype(f.dtype, np.integer):
        raise ValueError(f"folds must be integer fold ids, got dtype {f.dtype}")
    fold_ids = np.unique(f)
    if fold_ids.size < 2:
        raise ValueError(f"need at least 2 folds, got {fold_ids.size}")
    accs = np.empty(fold_ids.size)
    thresholds = np.empty(fold_ids.size)
    for idx, k in enumerate(fold_ids):
        test = f == k
        train_acc, t = _best_threshold(s[~test], lab[~test])
        accs[idx] = np.mean((s[test] >= t) == lab[test])
        thresholds[idx] = t
        logger.debug("fold %d: threshold %.6g (train acc %.4f), test acc %.4f", k, t, train_acc, accs[idx])
    accs.setflags(write=False)
    thresholds.setflags(write=False)
    return FoldResult(
        mean=float(accs.mean()),
        std=float(accs.std()),
        per_fold=accs,
        thresholds=thresholds,
        fold_ids=tuple(int(k) for k in fold_ids),
    )


# --------------------------------------------------------------------------------------------------
# Identification (closed- and open-set)
# --------------------------------------------------------------------------------------------------


def cmc(
    similarity_matrix: npt.ArrayLike,
    probe_labels: npt.ArrayLike,
    gallery_labels: npt.ArrayLike,
    max_rank: int | None = None,
) -> FloatArray:
    """Cumulative match characteristic over the mated probes.

    ``similarity_matrix`` is ``(n_probes, n_gallery)``.  Gallery entries are grouped by identity and an
    identity scores the maximum over its entries.  A mated probe (label present in the gallery) has
    rank ``1 + #{other identities scoring >= its mate}`` (ties count against the probe).  Returns
    ``rates`` of length ``max_rank`` (default: number of gallery identities) where ``rates[k-1]`` is the
    share of mated probes with rank <= k.  Non-mated probes are ignored.
    """
    sim = np.asarray(similarity_matrix, dtype=np.float64)
    probes = np.asarray(probe_labels)
    gallery = np.asarray(gallery_labels)
    if sim.ndim != 2 or sim.shape != (probes.size, gallery.size) or probes.ndim != 1 or gallery.ndim != 1:
        raise ValueError(
            f"similarity_matrix shape {sim.shape} must be (len(probe_labels), len(gallery_labels)) = "
            f"({probes.size}, {gallery.size})"
        )
    if gallery.size == 0 or not np.all(np.isfinite(sim)):
        raise ValueError("similarity_matrix must be non-empty and finite")
    ids, g_inv = np.unique(gallery, return_inverse=True)
    order = np.argsort(g_inv, kind="stable")
    starts = np.r_[0, np.flatnonzero(np.diff(g_inv[order])) + 1]
    id_scores = np.maximum.reduceat(sim[:, order], starts, axis=1)  # (n_probes, n_identities)
    pos = np.searchsorted(ids, probes)
    pos_c = np.minimum(pos, ids.size - 1)
    mated = (pos < ids.size) & (ids[pos_c] == probes)
    if not np.any(mated):
        raise ValueError("no mated probes: no probe label occurs in the gallery")
    m_scores = id_scores[mated]
    mate = m_scores[np.arange(m_scores.shape[0]), pos_c[mated]]
    rank = (m_scores >= mate[:, None]).sum(axis=1)  # counts the mate itself, so rank >= 1
    k_max = ids.size if max_rank is None else int(max_rank)
    if k_max < 1:
        raise ValueError(f"max_rank must be >= 1, got {max_rank}")
    ranks = np.arange(1, k_max + 1)
    return np.asarray((rank[None, :] <= ranks[:, None]).mean(axis=1), dtype=np.float64)


@dataclass(frozen=True)
class OpenSetCurve:
    """FPIR/FNIR trade-off, ordered by decreasing threshold (first point at ``+inf``: FPIR 0, FNIR 1)."""

    thresholds: FloatArray
    fpir: FloatArray
    fnir: FloatArray


def _open_set_inputs(
    mated_top_scores: npt.ArrayLike, mated_correct_top1: npt.ArrayLike, nonmated_top_scores: npt.ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    mated = as_scores(mated_top_scores, "mated_top_scores")
    correct = as_bool(mated_correct_top1, mated.size, "mated_correct_top1")
    nonmated = as_scores(nonmated_top_scores, "nonmated_top_scores")
    return mated, np.sort(mated[correct]), np.sort(nonmated)


def fpir_fnir(
    mated_top_scores: npt.ArrayLike, mated_correct_top1: npt.ArrayLike, nonmated_top_scores: npt.ArrayLike
) -> OpenSetCurve:
    """Open-set identification error trade-off at every distinct score used as a threshold ``t``.

    * ``FPIR(t)`` = share of non-mated probes whose top score is ``>= t``;
    * ``FNIR(t)`` = share of mated probes *not* returned correctly at rank 1 with score ``>= t``
      (a mated probe whose top-1 candidate is wrong always counts as a miss).
    """
    mated, hits, nonmated = _open_set_inputs(mated_top_scores, mated_correct_top1, nonmated_top_scores)
    thresholds = np.r_[np.inf, np.unique(np.r_[mated, nonmated])[::-1]]
    fpir = (nonmated.size - np.searchsorted(nonmated, thresholds, side="left")) / nonmated.size
    fnir = 1.0 - (hits.size - np.searchsorted(hits, thresholds, side="left")) / mated.size
    return OpenSetCurve(thresholds=thresholds, fpir=np.asarray(fpir), fnir=np.asarray(fnir))


def fnir_at_fpir(
    mated_top_scores: npt.ArrayLike,
    mated_correct_top1: npt.ArrayLike,
    nonmated_top_scores: npt.ArrayLike,
    fpir: float = 0.01,
) -> float:
    """FNIR at the smallest threshold with ``FPIR <= fpir`` (:func:`threshold_at_far` on the non-mated
    top scores)."""
    mated, hits, nonmated = _open_set_inputs(mated_top_scores, mated_correct_top1, nonmated_top_scores)
    t = threshold_from_sorted(nonmated, check_rate(fpir, "fpir"))
    return float(1.0 - np.count_nonzero(hits >= t) / mated.size)


# --------------------------------------------------------------------------------------------------
# Clustering
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PRF:
    """Precision, recall and their harmonic mean ``f`` (0 when both are 0)."""

    precision: float
    recall: float
    f: float


def _prf(precision: float, recall: float) -> PRF:
    f = 0.0 if precision + recall == 0 else 2.0 * precision * recall / (precision + recall)
    return PRF(precision=precision, recall=recall, f=f)


IntArray = npt.NDArray[np.int64]


def _contingency(
    pred_labels: npt.ArrayLike, true_labels: npt.ArrayLike
) -> tuple[IntArray, IntArray, IntArray, IntArray, IntArray]:
    """Non-zero contingency cells: ``(cell_counts, cell_pred, cell_true, pred_sizes, true_sizes)``."""
    pred = np.asarray(pred_labels)
    true = np.asarray(true_labels)
    if pred.ndim != 1 or true.ndim != 1 or pred.size != true.size or pred.size == 0:
        raise ValueError(
            f"pred_labels and true_labels must be non-empty 1-D arrays of equal length, "
            f"got shapes {pred.shape} and {true.shape}"
        )
    _, p_inv = np.unique(pred, return_inverse=True)
    _, t_inv = np.unique(true, return_inverse=True)
    cells, counts = np.unique(np.stack([p_inv, t_inv]), axis=1, return_counts=True)
    return counts, cells[0], cells[1], np.bincount(p_inv), np.bincount(t_inv)


def pairwise_precision_recall(pred_labels: npt.ArrayLike, true_labels: npt.ArrayLike) -> PRF:
    """Pairwise clustering precision/recall over all unordered item pairs.

    precision = pairs together in both / pairs together in the prediction; recall = pairs together in
    both / pairs together in the truth.  An empty denominator (all singletons) gives 1.0.
    """
    counts, _, _, pred_sizes, true_sizes = _contingency(pred_labels, true_labels)

    def pairs(x: IntArray) -> int:
        return int((x * (x - 1) // 2).sum())

    both, in_pred, in_true = pairs(counts), pairs(pred_sizes), pairs(true_sizes)
    return _prf(both / in_pred if in_pred else 1.0, both / in_true if in_true else 1.0)


def bcubed(pred_labels: npt.ArrayLike, true_labels: npt.ArrayLike) -> PRF:
    """BCubed precision/recall/F: per-item overlap of its predicted and true clusters, averaged."""
    counts, cell_pred, cell_true, pred_sizes, true_sizes = _contingency(pred_labels, true_labels)
    n = float(pred_sizes.sum())
    sq = counts.astype(np.float64) ** 2
    precision = float((sq / pred_sizes[cell_pred]).sum() / n)
    recall = float((sq / true_sizes[cell_true]).sum() / n)
    return _prf(precision, recall)


def bcubed_f(pred_labels: npt.ArrayLike, true_labels: npt.ArrayLike) -> float:
    """BCubed F-measure (see :func:`bcubed`)."""
    return bcubed(pred_labels, true_labels).f


# --------------------------------------------------------------------------------------------------
# Liveness / presentation-attack detection (ISO/IEC 30107-3)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LivenessResult:
    """APCER, BPCER and ACER = (APCER + BPCER) / 2 at one threshold."""

    apcer: float
    bpcer: float
    acer: float


def apcer_bpcer_acer(
    live_scores_for_attacks: npt.ArrayLike,
    live_scores_for_bona_fide: npt.ArrayLike,
    threshold: float,
    attack_species: npt.ArrayLike | None = None,
) -> LivenessResult:
    """ISO/IEC 30107-3 error rates; a presentation is accepted as live iff ``P(live) >= threshold``.

    APCER = share of attack presentations accepted; BPCER = share of bona fide presentations
    rejected; ACER = their mean (note: the 2023 edition of the standard discourages ACER; report
    APCER and BPCER).  If ``attack_species`` (one PAI species label per attack) is given, APCER is the
    maximum of the per-species APCERs, as the standard prescribes.
    """
    attacks = as_scores(live_scores_for_attacks, "live_scores_for_attacks")
    bona = as_scores(live_scores_for_bona_fide, "live_scores_for_bona_fide")
    t = float(threshold)
    accepted = attacks >= t
    if attack_species is None:
        apcer = float(np.mean(accepted))
    else:
        species = np.asarray(attack_species)
        if species.ndim != 1 or species.size != attacks.size:
            raise ValueError("attack_species must have one label per attack score")
        _, inv = np.unique(species, return_inverse=True)
        apcer = float(np.max(np.bincount(inv, weights=accepted) / np.bincount(inv)))
    bpcer = float(np.mean(bona < t))
    return LivenessResult(apcer=apcer, bpcer=bpcer, acer=(apcer + bpcer) / 2.0)


def liveness_eer(
    live_scores_for_attacks: npt.ArrayLike, live_scores_for_bona_fide: npt.ArrayLike
) -> tuple[float, float]:
    """``(eer, threshold)`` where APCER = BPCER, via :func:`eer` (bona fide = genuine)."""
    attacks = as_scores(live_scores_for_attacks, "live_scores_for_attacks")
    bona = as_scores(live_scores_for_bona_fide, "live_scores_for_bona_fide")
    labels = np.r_[np.ones(bona.size, dtype=np.bool_), np.zeros(attacks.size, dtype=np.bool_)]
    return eer(np.r_[bona, attacks], labels)
