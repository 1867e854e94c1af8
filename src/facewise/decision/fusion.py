"""Pose- and quality-aware score fusion of a profile's embedders.

A profile vector holds one block per embedder, scaled by ``sqrt(w_i)``, so a plain dot product is
``sum_i w_i cos_i``. Rules in ``profile.fusion`` let a model's weight fade when the pair is hard
for it — e.g. a model weak on profiles loses its weight as the worse |yaw| of the two faces goes
from ``full_until`` to ``zero_at`` degrees — and the remaining weights are renormalised. For
frontal, good-quality pairs the fused score equals the plain dot product, so the gallery's single
matrix search stays exact there and only hard candidates are re-scored.

Fading happens in normalised units: each model's cosine is read as ``(cos - shift) / scale`` (its
impostor mean and spread, from the profile), the normalised weights are faded and renormalised, and
the result is mapped back so that a pair with nothing faded scores exactly the plain dot product.
Models on different scales (dlib's cosines of strangers are near 0.84) then fade without moving the
score distribution of strangers, so one calibrated threshold holds for frontal and profile pairs.

Rule format (profile JSON)::

    "fusion": {"rules": [{"model": "mobilefacenet-y1", "on": "yaw", "full_until": 30, "zero_at": 60},
                         {"model": "...", "on": "quality", "full_until": 0.6, "zero_at": 0.2}]}
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facewise.models.catalogue import card
from facewise.models.profiles import Profile


@dataclass(frozen=True)
class FadeRule:
    model: str
    on: str  # "yaw" (worse |yaw| of the pair, degrees) or "quality" (worse quality of the pair)
    full_until: float
    zero_at: float

    def factor(self, yaw: np.ndarray, quality: np.ndarray) -> np.ndarray:
        x = yaw if self.on == "yaw" else quality
        span = self.zero_at - self.full_until
        return np.clip((self.zero_at - x) / span, 0.0, 1.0) if span else (x <= self.full_until).astype(float)


class FusionScorer:
    """Scores pairs of profile vectors, applying the profile's fade rules."""

    def __init__(self, profile: Profile) -> None:
        self.models = [e.model for e in profile.embedders]
        self.weights = np.array([e.weight for e in profile.embedders], np.float64)
        self.shifts = np.array([e.shift for e in profile.embedders], np.float64)
        self.scales = np.array([e.scale for e in profile.embedders], np.float64)
        self._norm_weights = self.weights * self.scales / float((self.weights * self.scales).sum())
        self._k = float((self._norm_weights / self.scales).sum())  # normalised -> effective cosine weights
        self.slices, start = [], 0
        for m in self.models:
            d = int(card(m).output_dim or 0)
            self.slices.append(slice(start, start + d))
            start += d
        rules = profile.fusion.get("rules", []) if profile.fusion else []
        self.rules = [FadeRule(**r) for r in rules if r.get("model") in self.models]

    @property
    def plain(self) -> bool:
        """True when the fused score is always the plain dot product."""
        return not self.rules or len(self.models) == 1

    def block_cosines(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """(n, m) cosine of each embedder's block (undoing the sqrt(w) scaling)."""
        a, b = np.atleast_2d(a), np.atleast_2d(b)
        cos = np.stack([np.einsum("ij,ij->i", a[:, s], b[:, s]) for s in self.slices], axis=1)
        return cos / np.maximum(self.weights, 1e-12)

    def pair_weights(self, yaw: np.ndarray, quality: np.ndarray) -> np.ndarray:
        """(n, m) effective cosine weights for pairs whose worse |yaw| and worse quality are given (faded and
        renormalised in normalised-score units; equal to the profile's weights where nothing fades)."""
        w = np.tile(self._norm_weights, (len(yaw), 1))
        for r in self.rules:
            i = self.models.index(r.model)
            w[:, i] *= r.factor(yaw, quality)
        total = w.sum(1, keepdims=True)
        w = np.where(total > 0, w / np.maximum(total, 1e-12), self._norm_weights)
        return w / self.scales / self._k

    def scores(self, a: np.ndarray, b: np.ndarray, yaw_a: np.ndarray | float = 0.0, yaw_b: np.ndarray | float = 0.0,
               q_a: np.ndarray | float = 1.0, q_b: np.ndarray | float = 1.0) -> np.ndarray:
        """Fused scores of row-aligned vector pairs."""
        a, b = np.atleast_2d(a), np.atleast_2d(b)
        if self.plain:
            return np.asarray(np.einsum("ij,ij->i", a, b), dtype=np.float64)
        n = len(a)
        yaw = np.maximum(np.abs(np.broadcast_to(yaw_a, n)), np.abs(np.broadcast_to(yaw_b, n)))
        qual = np.minimum(np.broadcast_to(q_a, n), np.broadcast_to(q_b, n))
        w = self.pair_weights(yaw, qual)
        return np.asarray(((self.block_cosines(a, b) - self.shifts) * w).sum(1) + float(self.weights @ self.shifts))
