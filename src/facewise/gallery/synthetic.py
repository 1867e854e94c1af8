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


@dataclass(frozen=True)
class FaceModel:
    """A Gaussian model of real embeddings: identity centres ``mean + N(0, between)``, samples
    ``centre + s · N(0, within)`` (``s`` per sample, so image quality varies), re-normalised.

    Fitted from real vectors with identity labels (:meth:`fit`), it gives galleries as anisotropic as
    the embedder's: impostors share the embedder's mean direction and its dominant axes.
    """

    mean: np.ndarray  # (dim,)
    between: np.ndarray  # (dim, dim): centre = mean + z @ between
    within: np.ndarray  # (dim, dim): sample = centre + s · z @ within

    @property
    def dim(self) -> int:
        return len(self.mean)

    @classmethod
    def fit(cls, vectors: np.ndarray, labels: np.ndarray, shrink: float = 0.05) -> FaceModel:
        """Between- and pooled within-identity covariances (identities with ≥ 2 vectors), shrunk towards
        their mean variance by ``shrink`` so that a few hundred identities give a full-rank model."""
        x = np.asarray(vectors, np.float64)
        labels = np.asarray(labels)
        ids, inv, counts = np.unique(labels, return_inverse=True, return_counts=True)
        keep = counts[inv] >= 2
        x, inv = x[keep], inv[keep]
        sums = np.zeros((len(ids), x.shape[1]))
        np.add.at(sums, inv, x)
        centres = sums / np.maximum(1, np.bincount(inv, minlength=len(ids)))[:, None]
        used = np.unique(inv)
        resid = x - centres[inv]
        within = resid.T @ resid / max(1, len(x) - len(used))
        mu = centres[used].mean(axis=0)
        c = centres[used] - mu
        between = c.T @ c / max(1, len(used) - 1)
        n_per = len(x) / len(used)
        between = between - within / n_per  # the spread of the centres, less that of averaging n_per samples

        def factor(cov: np.ndarray) -> np.ndarray:
            w, v = np.linalg.eigh((cov + cov.T) / 2)
            w = np.clip(w, 0, None)
            w = (1 - shrink) * w + shrink * w.mean()
            f: np.ndarray = (v * np.sqrt(w)).T.astype(np.float32)  # z @ factor has covariance v diag(w) v^T
            return f

        return cls(mu.astype(np.float32), factor(between), factor(within))

    def save(self, path: str) -> None:
        np.savez(path, mean=self.mean, between=self.between, within=self.within)

    @classmethod
    def load(cls, path: str) -> FaceModel:
        with np.load(path) as z:
            return cls(z["mean"], z["between"], z["within"])

    def _samples(self, centres: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        s = rng.uniform(0.3, 1.7, size=(len(centres), 1)).astype(np.float32)  # LFW mates: sd 0.12 (fit: 0.13)
        z = rng.standard_normal((len(centres), self.dim), dtype=np.float32)
        return _unit(centres + s * (z @ self.within))

    def centres(self, n: int, rng: np.random.Generator) -> np.ndarray:
        c: np.ndarray = self.mean + rng.standard_normal((n, self.dim), dtype=np.float32) @ self.between
        return c

    def gallery(self, n: int, per_identity: int = 5, seed: int = 0) -> FaceLike:
        """``n`` samples of ``ceil(n / per_identity)`` identities drawn from the model."""
        rng = np.random.default_rng(seed)
        n_ids = max(1, -(-n // per_identity))
        centres = self.centres(n_ids, rng)
        labels = np.arange(n, dtype=np.int64) // per_identity
        out = np.empty((n, self.dim), np.float32)
        for a in range(0, n, 65_536):
            b = min(n, a + 65_536)
            out[a:b] = self._samples(centres[labels[a:b]], rng)
        return FaceLike(out, labels, centres)

    def probes(self, data: FaceLike, mated: int, strangers: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Held-out probes: ``mated`` new samples of enrolled identities, then ``strangers`` samples of new
        identities (label -1). Never a gallery vector."""
        rng = np.random.default_rng(seed)
        ids = rng.integers(0, len(data.centres), size=mated)
        mates = self._samples(data.centres[ids], rng)
        others = self._samples(self.centres(strangers, rng), rng)
        return np.vstack([mates, others]), np.concatenate([ids, np.full(strangers, -1, np.int64)])
