"""What a score means: threshold calibration from impostor scores, and the FAR of a score.

Scores are higher-is-more-similar; a pair is declared "same" iff ``score >= threshold``, so
``FAR(t) = #{impostor >= t} / n_impostor``. Numpy only; no evaluation code is imported here
(``facewise.eval.metrics`` builds on this module, never the other way round).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["Calibration", "FarEstimate", "ThresholdEstimate", "far_of_score", "threshold_at_far"]

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

# --------------------------------------------------------------------------------------------------
# Input validation helpers
# --------------------------------------------------------------------------------------------------


def as_scores(values: npt.ArrayLike, name: str = "scores", *, allow_empty: bool = False) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {arr.shape}")
    if not allow_empty and arr.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def as_bool(values: npt.ArrayLike, n: int, name: str = "labels") -> BoolArray:
    arr = np.asarray(values)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name} must be a 1-D array of length {n}, got shape {arr.shape}")
    if arr.dtype == np.bool_:
        return arr
    if arr.size == 0 or (np.issubdtype(arr.dtype, np.number) and np.all((arr == 0) | (arr == 1))):
        return arr.astype(np.bool_)
    raise ValueError(f"{name} must be boolean (or 0/1), got dtype {arr.dtype}")


def split_scores(scores: npt.ArrayLike, labels: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Validate and split into ``(genuine, impostor)``; both classes must be present."""
    s = as_scores(scores)
    lab = as_bool(labels, s.shape[0])
    gen, imp = s[lab], s[~lab]
    if gen.size == 0 or imp.size == 0:
        raise ValueError(
            f"need at least one genuine (True) and one impostor (False) score; "
            f"got {gen.size} genuine and {imp.size} impostor"
        )
    return gen, imp


def check_rate(rate: float, name: str) -> float:
    r = float(rate)
    if not 0.0 <= r <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {rate!r}")
    return r


def _allowed_count(rate: float, n: int) -> int:
    """``floor(rate * n)``, robust to the rounding of e.g. ``0.01 * 1000``."""
    x = rate * n
    return math.floor(x + 1e-9 * max(1.0, x))


def threshold_from_sorted(imp_sorted: FloatArray, far: float) -> float:
    """:func:`threshold_at_far` on an ascending-sorted impostor array."""
    n = imp_sorted.size
    k = _allowed_count(far, n)
    if k >= n:
        return -math.inf
    return float(np.nextafter(imp_sorted[n - k - 1], np.inf))


# --------------------------------------------------------------------------------------------------
# Verification: ROC, AUC, EER, operating points
# --------------------------------------------------------------------------------------------------


def threshold_at_far(impostor_scores: npt.ArrayLike, far: float) -> float:
    """Smallest threshold whose false accept rate does not exceed ``far``.

    Precisely: with ``n`` impostor scores and ``k = floor(far * n)`` false accepts allowed, returns
    ``t* = min{t in float64 : #{impostor >= t} <= k}``, i.e. the float immediately above the
    ``(k+1)``-th largest impostor score (``np.nextafter(s_(k+1), inf)``).  Any threshold in
    ``(s_(k+1), s_(k)]`` has the same empirical FAR; ``t*`` is the one that accepts the most genuine
    pairs.  If ``k >= n`` every threshold qualifies and ``-inf`` is returned.

    Example: impostor scores ``0, 1, ..., 999`` and ``far = 0.01`` give ``k = 10`` and
    ``t* = nextafter(989, inf)``; exactly the ten scores 990..999 are accepted (FAR = 0.01).

    Note: the result is a float64 just above an observed score; casting it to float32 may round it
    down onto that score and accept one more impostor.
    """
    imp = as_scores(impostor_scores, "impostor_scores")
    return threshold_from_sorted(np.sort(imp), check_rate(far, "far"))


def far_of_score(impostor_scores: npt.ArrayLike, score: float) -> float:
    """Empirical FAR of ``score`` used as a threshold: ``#{impostor >= score} / n``."""
    imp = as_scores(impostor_scores, "impostor_scores")
    return float(np.mean(imp >= float(score)))


# --------------------------------------------------------------------------------------------------
# Threshold calibration from impostor scores
# --------------------------------------------------------------------------------------------------

_TABLE_PER_DECADE = 10  # threshold table: target FARs 10**(-1 - i/10)
_TAIL_MAX_FAR = 0.1
_KNOTS_EXACT_TOP = 100  # FAR knots: every one of the top-100 order statistics ...
_KNOTS_PER_DECADE = 30  # ... then 30 per decade (adjacent knots differ by < 9 % in FAR)
_DICT_FORMAT = "facewise.calibration"
_DICT_VERSION = 1


@dataclass(frozen=True)
class ThresholdEstimate:
    """Threshold for a target FAR with a bootstrap interval.

    ``threshold`` follows :func:`threshold_at_far`; ``[low, high]`` is its percentile-bootstrap
    interval; ``[far_low, far_high]`` is the estimated FAR (:meth:`Calibration.far_of`) at ``high``
    and at ``low`` respectively, i.e. the FAR range consistent with the threshold's uncertainty.
    ``tar`` is the genuine accept rate at ``threshold`` when genuine scores were supplied.
    """

    far: float
    threshold: float
    low: float
    high: float
    far_low: float
    far_high: float
    tar: float | None = None


@dataclass(frozen=True)
class FarEstimate:
    """Estimated FAR of a score.  ``upper_bound=True`` means the score is above every impostor seen,
    so only ``far <= 1 / n_impostor`` is known and ``far`` holds that bound."""

    far: float
    upper_bound: bool


def _far_grid(n: int) -> FloatArray:
    """Target FARs ``10**(-1 - i/10)`` from 0.1 down to the resolution ``1/n`` (decreasing)."""
    out: list[float] = []
    i = 0
    while True:
        p = 10.0 ** (-1.0 - i / _TABLE_PER_DECADE)
        if p * n < 1.0 - 1e-9:
            break
        out.append(p)
        i += 1
    return np.asarray(out, dtype=np.float64)


def _bootstrap_threshold_ci(
    imp_sorted: FloatArray, far: float, n_boot: int, seed: int, alpha: float
) -> tuple[float, float]:
    """Percentile-bootstrap interval of :func:`threshold_at_far`, sampled exactly and cheaply.

    In a bootstrap resample (n draws with replacement) the statistic is ``nextafter`` of the resample's
    ``(k+1)``-th largest value.  Indexing the original scores by descending rank ``r = ceil(n*V)`` with
    ``V`` uniform, that value is the original score of rank ``ceil(n * V_(k+1))``, and the order
    statistic ``V_(k+1)`` of n uniforms is ``Beta(k+1, n-k)``.  Drawing it directly gives replicates
    with exactly the bootstrap distribution in O(1) each.  The random stream depends only on
    ``(seed, k)``, so a given target FAR always gets the same interval.
    """
    n = imp_sorted.size
    k = _allowed_count(far, n)
    if k >= n:
        return -math.inf, -math.inf
    rng = np.random.default_rng([seed, k])
    v = rng.beta(k + 1, n - k, size=n_boot)
    rank = np.clip(np.ceil(v * n).astype(np.int64), 1, n)  # 1 = largest
    reps = np.nextafter(imp_sorted[n - rank], np.inf)
    low, high = np.quantile(reps, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(low), float(high)


def _interp_far(knot_scores: FloatArray, knot_fars: FloatArray, n: int, score: float) -> FarEstimate:
    """Log-linear interpolation of FAR between knots (ascending scores, FAR at each knot)."""
    if score > knot_scores[-1]:
        return FarEstimate(far=1.0 / n, upper_bound=True)
    if score <= knot_scores[0]:
        return FarEstimate(far=float(knot_fars[0]), upper_bound=False)
    log_far = np.interp(score, knot_scores, np.log(knot_fars))
    return FarEstimate(far=float(np.exp(log_far)), upper_bound=False)


def _knots_from_sorted(imp_sorted: FloatArray, values: FloatArray) -> tuple[FloatArray, FloatArray]:
    n = imp_sorted.size
    knot_scores = np.unique(values)
    knot_fars = (n - np.searchsorted(imp_sorted, knot_scores, side="left")) / n
    return knot_scores, knot_fars.astype(np.float64)


def _compact_knots(imp_sorted: FloatArray) -> tuple[FloatArray, FloatArray]:
    """FAR knots kept in the summary: the top-100 order statistics, then ~30 per decade, then the minimum."""
    n = imp_sorted.size
    counts = set(range(1, min(_KNOTS_EXACT_TOP, n) + 1))
    i = 1
    while True:
        c = round(_KNOTS_EXACT_TOP * 10.0 ** (i / _KNOTS_PER_DECADE))
        if c >= n:
            break
        counts.add(c)
        i += 1
    counts.add(n)
    ks = np.asarray(sorted(counts), dtype=np.int64)
    return _knots_from_sorted(imp_sorted, imp_sorted[n - ks])


def _to_float_list(arr: FloatArray | None) -> list[float] | None:
    return None if arr is None else [float(x) for x in arr]


def _as_float_array(value: Any, name: str) -> FloatArray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"calibration dict: {name!r} must be a non-empty list of numbers")
    return arr


@dataclass(frozen=True, eq=False, repr=False)
class Calibration:
    """Impostor-score calibration: thresholds for target FARs and the FAR of a given score.

    Build it with :meth:`fit` from impostor scores (and optionally genuine scores, to report TAR).
    A fitted instance keeps the sorted scores and answers from the full data; :meth:`to_dict` stores a
    compact summary (a FAR/score knot table and a threshold table with bootstrap intervals at target
    FARs ``10**(-1 - i/10)`` down to ``1/n``) from which :meth:`from_dict` rebuilds an instance that
    answers by interpolation.

    FAR estimates (:meth:`far_of`) interpolate ``log FAR`` linearly in the score between knots
    ``(s, #{impostor >= s}/n)``; a fitted instance uses every distinct impostor score as a knot, a
    restored one the stored subset (all of the 100 highest scores, then about 30 per decade of FAR),
    so in the tail (FAR <= 0.1) the two agree within 9 % relative.
    """

    n_impostor: int
    knot_scores: FloatArray
    knot_fars: FloatArray
    table_fars: FloatArray
    table_thresholds: FloatArray
    table_low: FloatArray
    table_high: FloatArray
    table_tars: FloatArray | None = None
    n_genuine: int | None = None
    alpha: float = 0.05
    n_boot: int = 1000
    seed: int = 0
    _impostor: FloatArray | None = field(default=None, repr=False)
    _genuine: FloatArray | None = field(default=None, repr=False)

    # ---------------------------------------------------------------- construction
    @classmethod
    def fit(
        cls,
        impostor_scores: npt.ArrayLike,
        genuine_scores: npt.ArrayLike | None = None,
        *,
        n_boot: int = 1000,
        seed: int = 0,
        alpha: float = 0.05,
    ) -> Calibration:
        """Fit from at least 10 impostor scores (optionally genuine scores too).

        ``n_boot``, ``seed`` and ``alpha`` control the bootstrap intervals of :meth:`thresholds_at`
        (percentile interval of level ``1 - alpha``).
        """
        imp = np.sort(as_scores(impostor_scores, "impostor_scores"))
        n = imp.size
        if n < 10:
            raise ValueError(f"Calibration needs at least 10 impostor scores, got {n}")
        if n_boot < 1:
            raise ValueError(f"n_boot must be >= 1, got {n_boot}")
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")
        gen = None if genuine_scores is None else np.sort(as_scores(genuine_scores, "genuine_scores"))
        fars = _far_grid(n)
        thr = np.array([threshold_from_sorted(imp, p) for p in fars])
        ci = np.array([_bootstrap_threshold_ci(imp, p, n_boot, seed, alpha) for p in fars])
        tars = None if gen is None else (gen.size - np.searchsorted(gen, thr, side="left")) / gen.size
        knot_scores, knot_fars = _compact_knots(imp)
        logger.debug(
            "calibration fitted on %d impostor scores, %d table FARs, %d knots",
            n,
            fars.size,
            knot_scores.size,
        )
        return cls(
            n_impostor=n,
            knot_scores=knot_scores,
            knot_fars=knot_fars,
            table_fars=fars,
            table_thresholds=thr,
            table_low=ci[:, 0],
            table_high=ci[:, 1],
            table_tars=tars,
            n_genuine=None if gen is None else int(gen.size),
            alpha=float(alpha),
            n_boot=int(n_boot),
            seed=int(seed),
            _impostor=imp,
            _genuine=gen,
        )

    def __repr__(self) -> str:
        source = "full data" if self.has_full_data else "summary"
        return (
            f"Calibration(n_impostor={self.n_impostor}, n_genuine={self.n_genuine}, "
            f"table FAR {self.table_fars.max():g}..{self.table_fars.min():g} ({self.table_fars.size} rows), "
            f"{self.knot_scores.size} FAR knots, {source})"
        )

    @property
    def has_full_data(self) -> bool:
        """True for a fitted instance (answers from all scores), False for one restored from a dict."""
        return self._impostor is not None

    # ---------------------------------------------------------------- queries
    def far_of(self, score: float) -> FarEstimate:
        """Estimated FAR of ``score`` used as a threshold (log-interpolated between knots).

        Above the highest impostor score the FAR is reported as ``1 / n_impostor`` with
        ``upper_bound=True``; at or below the lowest it is 1.
        """
        s = float(score)
        if not math.isfinite(s):
            raise ValueError(f"score must be finite, got {score!r}")
        imp = self._impostor
        if imp is None:
            return _interp_far(self.knot_scores, self.knot_fars, self.n_impostor, s)
        # Full data: every distinct impostor score is a knot; only the two bracketing s matter.
        n = imp.size
        if s > imp[-1]:
            return FarEstimate(far=1.0 / n, upper_bound=True)
        if s <= imp[0]:
            return FarEstimate(far=1.0, upper_bound=False)
        i = int(np.searchsorted(imp, s, side="right"))  # imp[i-1] <= s < imp[i], or s == imp[-1]
        if i == n:
            return FarEstimate(far=float(n - np.searchsorted(imp, s, side="left")) / n, upper_bound=False)
        knot_scores, knot_fars = _knots_from_sorted(imp, np.array([imp[i - 1], imp[i]]))
        return _interp_far(knot_scores, knot_fars, n, s)

    def thresholds_at(self, fars: float | Sequence[float] | npt.ArrayLike) -> list[ThresholdEstimate]:
        """Thresholds (with bootstrap intervals) for each target FAR in ``fars``.

        A fitted instance accepts any FAR in [0, 1] and computes exactly; for a FAR of the stored table
        the result is identical to the table entry.  A restored instance interpolates the table linearly
        in ``log10(FAR)`` and only accepts FARs within its range (``table_fars``), else ``ValueError``.
        """
        targets = np.atleast_1d(np.asarray(fars, dtype=np.float64))
        if targets.ndim != 1:
            raise ValueError("fars must be a scalar or a 1-D sequence")
        out: list[ThresholdEstimate] = []
        for p in targets:
            p = check_rate(p, "far")
            tar: float | None
            if self._impostor is not None:
                thr = threshold_from_sorted(self._impostor, p)
                low, high = _bootstrap_threshold_ci(self._impostor, p, self.n_boot, self.seed, self.alpha)
                gen = self._genuine
                tar = None if gen is None else float(np.mean(gen >= thr))
            else:
                thr, low, high, tar = self._interp_table(p)
            far_low = self.far_of(high).far if math.isfinite(high) else 1.0
            far_high = self.far_of(low).far if math.isfinite(low) else 1.0
            out.append(ThresholdEstimate(p, thr, low, high, far_low, far_high, tar))
        return out

    def _interp_table(self, p: float) -> tuple[float, float, float, float | None]:
        lo_far, hi_far = float(self.table_fars.min()), float(self.table_fars.max())
        if not lo_far * (1 - 1e-9) <= p <= hi_far * (1 + 1e-9):
            raise ValueError(
                f"FAR {p:g} is outside the stored calibration table [{lo_far:g}, {hi_far:g}]; "
                "refit with the full impostor scores"
            )
        order = np.argsort(self.table_fars)
        x = np.log10(self.table_fars[order])
        lp = math.log10(p)

        def at(values: FloatArray) -> float:
            return float(np.interp(lp, x, values[order]))

        tar = None if self.table_tars is None else at(self.table_tars)
        return at(self.table_thresholds), at(self.table_low), at(self.table_high), tar

    # ---------------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible compact summary (no raw scores); inverse of :meth:`from_dict`."""
        return {
            "format": _DICT_FORMAT,
            "version": _DICT_VERSION,
            "n_impostor": int(self.n_impostor),
            "n_genuine": self.n_genuine,
            "alpha": float(self.alpha),
            "n_boot": int(self.n_boot),
            "seed": int(self.seed),
            "far_knots": {"score": _to_float_list(self.knot_scores), "far": _to_float_list(self.knot_fars)},
            "thresholds": {
                "far": _to_float_list(self.table_fars),
                "threshold": _to_float_list(self.table_thresholds),
                "low": _to_float_list(self.table_low),
                "high": _to_float_list(self.table_high),
                "tar": _to_float_list(self.table_tars),
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        """Rebuild from :meth:`to_dict` output (answers by interpolation; see the class docstring)."""
        if data.get("format") != _DICT_FORMAT or data.get("version") != _DICT_VERSION:
            raise ValueError(
                f"not a {_DICT_FORMAT} v{_DICT_VERSION} dict "
                f"(format={data.get('format')!r}, version={data.get('version')!r})"
            )
        try:
            knots = data["far_knots"]
            table = data["thresholds"]
            knot_scores = _as_float_array(knots["score"], "far_knots.score")
            knot_fars = _as_float_array(knots["far"], "far_knots.far")
            fars = _as_float_array(table["far"], "thresholds.far")
            thr = _as_float_array(table["threshold"], "thresholds.threshold")
            low = _as_float_array(table["low"], "thresholds.low")
            high = _as_float_array(table["high"], "thresholds.high")
            tars = None if table.get("tar") is None else _as_float_array(table["tar"], "thresholds.tar")
            n_impostor = int(data["n_impostor"])
        except KeyError as exc:
            raise ValueError(f"calibration dict is missing key {exc}") from None
        if knot_scores.size != knot_fars.size or np.any(np.diff(knot_scores) <= 0):
            raise ValueError("calibration dict: far_knots must be equal-length with increasing scores")
        columns = (thr, low, high) if tars is None else (thr, low, high, tars)
        if any(a.size != fars.size for a in columns):
            raise ValueError("calibration dict: threshold table columns differ in length")
        n_genuine = data.get("n_genuine")
        return cls(
            n_impostor=n_impostor,
            knot_scores=knot_scores,
            knot_fars=knot_fars,
            table_fars=fars,
            table_thresholds=thr,
            table_low=low,
            table_high=high,
            table_tars=tars,
            n_genuine=None if n_genuine is None else int(n_genuine),
            alpha=float(data.get("alpha", 0.05)),
            n_boot=int(data.get("n_boot", 1000)),
            seed=int(data.get("seed", 0)),
        )
