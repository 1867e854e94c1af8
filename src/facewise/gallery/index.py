"""Exact in-memory cosine search over one float32 matrix, with top-k distinct persons."""

from __future__ import annotations

import numpy as np


class VectorIndex:
    """Rows are unit vectors; ``search`` returns per query the best ``k`` persons (max over their samples)."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._mat = np.zeros((0, dim), np.float32)
        self._n = 0
        self.sample_ids = np.zeros(0, np.int64)
        self.person_ids = np.zeros(0, np.int64)

    def __len__(self) -> int:
        return self._n

    @property
    def matrix(self) -> np.ndarray:
        return self._mat[: self._n]

    def reset(self, sample_ids: np.ndarray, person_ids: np.ndarray, vectors: np.ndarray) -> None:
        self._mat = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        self._n = len(self._mat)
        self.sample_ids = np.asarray(sample_ids, np.int64)
        self.person_ids = np.asarray(person_ids, np.int64)

    def add(self, sample_ids: list[int], person_ids: list[int], vectors: np.ndarray) -> None:
        m = len(sample_ids)
        if m == 0:
            return
        need = self._n + m
        if need > len(self._mat):  # amortised growth, no copy per insert
            grown = np.zeros((max(need, 2 * len(self._mat), 64), self.dim), np.float32)
            grown[: self._n] = self._mat[: self._n]
            self._mat = grown
        self._mat[self._n : need] = vectors
        self.sample_ids = np.concatenate([self.sample_ids, np.asarray(sample_ids, np.int64)])
        self.person_ids = np.concatenate([self.person_ids, np.asarray(person_ids, np.int64)])
        self._n = need

    def remove_samples(self, sample_ids: set[int]) -> None:
        keep = ~np.isin(self.sample_ids, list(sample_ids))
        self.reset(self.sample_ids[keep], self.person_ids[keep], self.matrix[keep])

    def remove_person(self, person_id: int) -> None:
        keep = self.person_ids != person_id
        self.reset(self.sample_ids[keep], self.person_ids[keep], self.matrix[keep])

    def search(self, queries: np.ndarray, k: int) -> list[list[tuple[int, float, int]]]:
        """Per query: up to ``k`` (person_id, score, sample_id), best first, one entry per person."""
        q = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        if self._n == 0:
            return [[] for _ in range(len(q))]
        scores = q @ self.matrix.T  # (Q, N)
        out = []
        for row in scores:
            out.append(self._top_persons(row, k))
        return out

    def _top_persons(self, row: np.ndarray, k: int) -> list[tuple[int, float, int]]:
        n = len(row)
        m = min(n, k * 8 + 16)
        while True:
            idx = np.argpartition(-row, m - 1)[:m] if m < n else np.arange(n)
            idx = idx[np.argsort(-row[idx], kind="stable")]
            hits: list[tuple[int, float, int]] = []
            seen: set[int] = set()
            for i in idx:
                pid = int(self.person_ids[i])
                if pid in seen:
                    continue
                seen.add(pid)
                hits.append((pid, float(row[i]), int(self.sample_ids[i])))
                if len(hits) == k:
                    return hits
            if m >= n:
                return hits
            m = min(n, m * 4)
