"""Exact in-memory cosine search over one float32 matrix, with top-k distinct persons.

The matrix is stored column-major, as ``(dim, capacity)``: one query is then a streaming
``q @ M`` (BLAS gemv over contiguous rows of ``dim`` floats each), which runs at the machine's memory
bandwidth, where the row-major ``M @ q`` of OpenBLAS reaches only about half of it. A batch of
queries is one matrix product. Top-k selection avoids a full ``argpartition`` of the N scores: a
threshold estimated on a strided subsample picks the candidates with one comparison pass, and the
result is exact (the full selection runs whenever the threshold lets too few scores through).

The matrix can live in a memory-mapped file (:meth:`VectorIndex.save` / :meth:`VectorIndex.load`),
so a large gallery opens without reading every vector from the database and several processes
share one copy in the page cache.
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import numpy as np

_SUBSAMPLE = 32  # stride of the subsample used to estimate the top-m threshold
_MIN_PREFILTER = 65_536  # below this many rows a plain argpartition is as fast
_SERIALS = itertools.count(1)
_HEADER = 4096  # bytes reserved for the JSON header of a saved matrix


class VectorIndex:
    """Rows are unit vectors; ``search`` returns per query the best ``k`` persons (max over their samples)."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._cols = np.zeros((dim, 0), np.float32)  # (dim, capacity); columns [0, n) are live
        self._n = 0
        self.sample_ids = np.zeros(0, np.int64)
        self.person_ids = np.zeros(0, np.int64)
        self.mapped: Path | None = None
        self.version = 0  # bumped by every change, so derived indexes (ANN) know when to catch up
        self.serial = next(_SERIALS)  # never reused (``id()`` is, once an index is freed): names this object
        self.removed: list[int] = []  # log of every sample id removed from this object (ids can come back)

    def __len__(self) -> int:
        return self._n

    @property
    def columns(self) -> np.ndarray:
        """The live matrix as ``(dim, n)`` (C-contiguous rows of the capacity buffer)."""
        return self._cols[:, : self._n]

    @property
    def matrix(self) -> np.ndarray:
        """The live matrix as ``(n, dim)`` (a transposed view, not a copy)."""
        return self.columns.T

    def reset(self, sample_ids: np.ndarray, person_ids: np.ndarray, vectors: np.ndarray) -> None:
        vecs = np.asarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        self._cols = np.ascontiguousarray(vecs.T)
        self._n = len(vecs)
        self.sample_ids = np.asarray(sample_ids, np.int64).copy()
        self.person_ids = np.asarray(person_ids, np.int64).copy()
        self.mapped = None
        self.version += 1

    def add(self, sample_ids: list[int], person_ids: list[int], vectors: np.ndarray) -> None:
        m = len(sample_ids)
        if m == 0:
            return
        need = self._n + m
        if need > self._cols.shape[1] or self.mapped is not None:  # amortised growth, no copy per insert
            grown = np.zeros((self.dim, max(need, 2 * self._cols.shape[1], 64)), np.float32)
            grown[:, : self._n] = self.columns
            self._cols = grown
            self.mapped = None
        self._cols[:, self._n : need] = np.asarray(vectors, np.float32).reshape(m, self.dim).T
        self.sample_ids = np.concatenate([self.sample_ids, np.asarray(sample_ids, np.int64)])
        self.person_ids = np.concatenate([self.person_ids, np.asarray(person_ids, np.int64)])
        self._n = need
        self.version += 1

    def _keep(self, keep: np.ndarray) -> None:
        self.reset(self.sample_ids[keep], self.person_ids[keep], self.columns[:, keep].T)

    def remove_samples(self, sample_ids: set[int]) -> None:
        self.removed.extend(int(x) for x in sample_ids)
        self._keep(~np.isin(self.sample_ids, list(sample_ids)))

    def remove_person(self, person_id: int) -> None:
        self.removed.extend(self.sample_ids[self.person_ids == person_id].tolist())
        self._keep(self.person_ids != person_id)

    def reassign(self, sample_ids: list[int], person_id: int) -> None:
        """Samples moved to another person."""
        self.person_ids[np.isin(self.sample_ids, list(sample_ids))] = person_id
        self.version += 1

    def scores(self, queries: np.ndarray) -> np.ndarray:
        """Cosine scores ``(Q, n)`` of unit queries against every row (one gemv / gemm)."""
        q = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        s: np.ndarray = (q[0] @ self.columns)[None, :] if len(q) == 1 else q @ self.columns
        return s

    def search(self, queries: np.ndarray, k: int) -> list[list[tuple[int, float, int]]]:
        """Per query: up to ``k`` (person_id, score, sample_id), best first, one entry per person."""
        q = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        if self._n == 0:
            return [[] for _ in range(len(q))]
        return [self._top_persons(row, k) for row in self.scores(q)]

    def _top_persons(self, row: np.ndarray, k: int) -> list[tuple[int, float, int]]:
        n = len(row)
        m = min(n, k * 8 + 16)
        while True:
            idx = top_indices(row, m)
            hits = distinct_persons(idx, row[idx], self.person_ids[idx], self.sample_ids[idx], k)
            if len(hits) == k or m >= n:
                return hits
            m = min(n, m * 4)

    # -- memory-mapped persistence ----------------------------------------------------------------
    def save(self, path: str | os.PathLike[str], tag: str = "") -> Path:
        """Write the matrix and ids to ``path`` (atomically), for :meth:`load` with ``mmap=True``."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        n, dim = self._n, self.dim
        header = json.dumps({"format": "facewise-matrix", "version": 1, "n": n, "dim": dim, "tag": tag}).encode()
        if len(header) >= _HEADER:
            raise ValueError("matrix tag too long")
        with open(tmp, "wb") as f:
            f.write(header.ljust(_HEADER, b" "))
            f.write(np.ascontiguousarray(self.columns).tobytes())
            f.write(self.sample_ids.astype("<i8").tobytes())
            f.write(self.person_ids.astype("<i8").tobytes())
        tmp.replace(path)
        return path

    @staticmethod
    def read_tag(path: str | os.PathLike[str]) -> str | None:
        """The tag a saved matrix was written with, or ``None`` if the file is missing or not one."""
        try:
            with open(path, "rb") as f:
                head = json.loads(f.read(_HEADER))
        except (OSError, ValueError):
            return None
        return head.get("tag") if isinstance(head, dict) and head.get("format") == "facewise-matrix" else None

    @classmethod
    def load(cls, path: str | os.PathLike[str], mmap: bool = True) -> VectorIndex:
        """Open a saved matrix; with ``mmap`` the vectors stay in the file (read-only, paged in on use)."""
        with open(path, "rb") as f:
            head = json.loads(f.read(_HEADER))
        n, dim = int(head["n"]), int(head["dim"])
        ix = cls(dim)
        off = _HEADER + n * dim * 4
        if mmap and n:
            ix._cols = np.memmap(path, np.float32, "r", offset=_HEADER, shape=(dim, n))
            ix.mapped = Path(path)
        else:
            ix._cols = np.fromfile(path, np.float32, count=n * dim, offset=_HEADER).reshape(dim, n)
        ix._n = n
        ix.sample_ids = np.fromfile(path, "<i8", count=n, offset=off).astype(np.int64)
        ix.person_ids = np.fromfile(path, "<i8", count=n, offset=off + 8 * n).astype(np.int64)
        return ix


def distinct_persons(order: np.ndarray, scores: np.ndarray, person_ids: np.ndarray, sample_ids: np.ndarray,
                     k: int) -> list[tuple[int, float, int]]:
    """The first ``k`` distinct persons of candidates sorted best first: (person_id, score, sample_id)."""
    hits: list[tuple[int, float, int]] = []
    seen: set[int] = set()
    for i in range(len(order)):
        pid = int(person_ids[i])
        if pid in seen:
            continue
        seen.add(pid)
        hits.append((pid, float(scores[i]), int(sample_ids[i])))
        if len(hits) == k:
            break
    return hits


def top_indices(row: np.ndarray, m: int) -> np.ndarray:
    """Indices of the ``m`` largest values of ``row``, largest first (exact; ties broken by index)."""
    n = len(row)
    if m >= n:
        return np.argsort(-row, kind="stable")
    cand: np.ndarray | None = None
    if n >= _MIN_PREFILTER:
        sub = row[::_SUBSAMPLE]
        j = min(len(sub) - 1, 2 * (m // _SUBSAMPLE) + 8)  # aim at ~2m candidates
        t = np.partition(sub, len(sub) - 1 - j)[len(sub) - 1 - j]
        cand = np.flatnonzero(row >= t)
        if len(cand) < m:  # the estimate was too high: fall back to the full selection
            cand = None
    if cand is None:
        cand = np.argpartition(row, n - m)[n - m :]
    else:
        cand = cand[np.argpartition(row[cand], len(cand) - m)[len(cand) - m :]]
    order = np.lexsort((cand, -row[cand]))
    return cand[order]
