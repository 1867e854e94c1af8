"""Synthetic face-like embeddings for tests and benchmarks of the gallery backends.

Uniform random vectors are a poor stand-in for face embeddings: nothing is close to anything. Here
each identity is a random unit centre and each sample is ``centre + noise`` (re-normalised), with the
noise level drawn per sample so that two samples of one identity score about 0.6–0.8 (cosine) and two
identities about 0 (±1/√dim), as trained face embedders give.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# per-sample noise variance: cos(sample, centre) = 1/sqrt(1 + s2), so mates score 1/sqrt((1+a)(1+b))
_S2_LOW, _S2_HIGH = 0.2, 0.55


@dataclass(frozen=True)
class FaceLike:
    """``vectors`` (n, dim) unit float32 with their ``labels`` (identity of each row) and ``centres``."""

    vectors: np.ndarray
    labels: np.ndarray
    centres: np.ndarray


def _unit(x: np.ndarray) -> np.ndarray:
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def face_like(n: int, dim: int, per_identity: int = 5, seed: int = 0) -> FaceLike:
    """``n`` samples of ``ceil(n / per_identity)`` identities (generated in chunks: 1M × 512 fits easily)."""
    rng = np.random.default_rng(seed)
    n_ids = max(1, -(-n // per_identity))
    centres = _unit(rng.standard_normal((n_ids, dim), dtype=np.float32))
    labels = np.arange(n, dtype=np.int64) // per_identity
    out = np.empty((n, dim), np.float32)
    step = 65_536
    for a in range(0, n, step):
        b = min(n, a + step)
        s = np.sqrt(rng.uniform(_S2_LOW, _S2_HIGH, size=(b - a, 1))).astype(np.float32)
        noise = rng.standard_normal((b - a, dim), dtype=np.float32) * (s / np.sqrt(dim))
        out[a:b] = _unit(centres[labels[a:b]] + noise)
    return FaceLike(out, labels, centres)


def probes(data: FaceLike, n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``n`` new samples (not in ``data``) of random enrolled identities: (vectors, identity labels)."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, len(data.centres), size=n)
    dim = data.centres.shape[1]
    s = np.sqrt(rng.uniform(_S2_LOW, _S2_HIGH, size=(n, 1))).astype(np.float32)
    noise = rng.standard_normal((n, dim), dtype=np.float32) * (s / np.sqrt(dim))
    return _unit(data.centres[ids] + noise), ids
