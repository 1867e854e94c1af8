"""ROC and DET plots written as PNG files.

matplotlib (and scipy's ``ndtri``, when available) are imported lazily inside the functions, so importing this
module costs nothing.  Figures are drawn with the Agg canvas directly (no ``pyplot``, no global backend
switch), which is safe in headless and multi-threaded programs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["norm_ppf", "plot_det", "plot_roc"]

logger = logging.getLogger(__name__)

Curves = Mapping[str, tuple[npt.ArrayLike, npt.ArrayLike]]

_DET_TICKS = (1e-5, 1e-4, 1e-3, 1e-2, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 0.9, 0.95, 0.99)


def _acklam_ppf(p: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Inverse standard-normal CDF (P. J. Acklam's rational approximation, relative error < 1.2e-9)."""
    a = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02,
         1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00)  # fmt: skip
    b = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02,
         6.680131188771972e01, -1.328068155288572e01)  # fmt: skip
    c = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00,
         -2.549732539343734e00, 4.374664141464968e00, 2.938163982698783e00)  # fmt: skip
    d = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)
    p = np.asarray(p, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    out[p == 0] = -np.inf
    out[p == 1] = np.inf
    p_low = 0.02425
    lo = (p > 0) & (p < p_low)
    hi = (p > 1 - p_low) & (p < 1)
    mid = (p >= p_low) & (p <= 1 - p_low)

    def tail(q: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        num = ((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]
        den = (((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1
        return num / den

    out[lo] = tail(np.sqrt(-2 * np.log(p[lo])))
    out[hi] = -tail(np.sqrt(-2 * np.log(1 - p[hi])))
    q = p[mid] - 0.5
    r = q * q
    num = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q
    den = ((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1
    out[mid] = num / den
    return out


def norm_ppf(p: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Standard-normal quantile (probit): scipy's ``ndtri`` (what ``scipy.stats.norm.ppf`` uses, without
    importing the slow ``scipy.stats``) if scipy is installed, else a numpy rational approximation
    accurate to ~1e-9."""
    arr = np.asarray(p, dtype=np.float64)
    try:
        from scipy.special import ndtri
    except ImportError:  # pragma: no cover - exercised only without scipy
        return _acklam_ppf(arr)
    return np.asarray(ndtri(arr), dtype=np.float64)


def _new_axes(figsize: tuple[float, float]) -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def _save(fig: Any, path: str | PathLike[str], dpi: int) -> Path:
    from facewise.core.outfiles import open_output

    out = Path(path)
    with open_output(out) as fh:
        fig.savefig(fh, format="png", dpi=dpi, bbox_inches="tight")
    logger.debug("wrote %s", out)
    return out


def _as_curve(name: str, curve: tuple[npt.ArrayLike, npt.ArrayLike]) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(curve[0], dtype=np.float64)
    y = np.asarray(curve[1], dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape or x.size == 0:
        raise ValueError(f"curve {name!r}: need two non-empty 1-D arrays of equal length")
    return x, y


def plot_roc(
    curves: Curves,
    path: str | PathLike[str],
    *,
    title: str = "ROC",
    min_far: float | None = None,
    dpi: int = 120,
) -> Path:
    """Plot ROC curves ``{name: (far, tar)}`` (e.g. from ``roc_curve``) with a log FAR axis; write a PNG.

    The FAR axis starts at ``min_far`` (default: the smallest positive FAR over all curves, or 1e-6 if
    there is none); points with a smaller FAR (including FAR = 0) are drawn at that edge.  Returns the
    path.
    """
    if not curves:
        raise ValueError("no curves to plot")
    data = {name: _as_curve(name, c) for name, c in curves.items()}
    if min_far is None:
        positive = [far[far > 0].min() for far, _ in data.values() if np.any(far > 0)]
        min_far = float(min(positive)) if positive else 1e-6
    fig, ax = _new_axes((6.0, 5.0))
    for name, (far, tar) in data.items():
        ax.plot(np.clip(far, min_far, 1.0), tar, label=name, linewidth=1.5)
    ax.set_xscale("log")
    ax.set_xlim(min_far, 1.0)
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel("False accept rate (FAR)")
    ax.set_ylabel("True accept rate (TAR)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    return _save(fig, path, dpi)


def plot_det(
    curves: Curves,
    path: str | PathLike[str],
    *,
    title: str = "DET",
    min_rate: float = 1e-5,
    max_rate: float = 0.5,
    dpi: int = 120,
) -> Path:
    """Plot DET curves ``{name: (far, frr)}`` on normal-deviate (probit) axes; write a PNG.

    Pass FRR, not TAR: from ``roc_curve`` use ``(far, 1 - tar)``.  Both axes span
    ``[min_rate, max_rate]``; rates are clipped to ``[min_rate, 1 - min_rate]`` before the probit
    transform (so zeros are drawn at the edge).  Tick labels are in percent.  Returns the path.
    """
    if not curves:
        raise ValueError("no curves to plot")
    if not 0.0 < min_rate < max_rate < 1.0:
        raise ValueError(f"need 0 < min_rate < max_rate < 1, got {min_rate!r}, {max_rate!r}")
    data = {name: _as_curve(name, c) for name, c in curves.items()}
    fig, ax = _new_axes((6.0, 6.0))
    for name, (far, frr) in data.items():
        x = norm_ppf(np.clip(far, min_rate, 1.0 - min_rate))
        y = norm_ppf(np.clip(frr, min_rate, 1.0 - min_rate))
        ax.plot(x, y, label=name, linewidth=1.5)
    ticks = np.array([t for t in _DET_TICKS if min_rate <= t <= max_rate])
    tick_pos = norm_ppf(ticks)
    labels = [f"{100 * t:g}" for t in ticks]
    lim = (float(norm_ppf(min_rate)), float(norm_ppf(max_rate)))
    ax.set_xticks(tick_pos, labels)
    ax.set_yticks(tick_pos, labels)
    ax.set_xlim(*lim)
    ax.set_ylim(*lim)
    ax.set_xlabel("False accept rate (FAR, %)")
    ax.set_ylabel("False reject rate (FRR, %)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right")
    return _save(fig, path, dpi)
