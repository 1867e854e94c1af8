"""Generic ONNX embedder (e.g. MobileFaceNet 128-d): RGB or BGR, (x - mean) / std, NCHW."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from facewise.models._embed_util import l2_normalise
from facewise.models.catalogue import ModelCard
from facewise.models.runtime import onnx_session


class OnnxEmbedder:
    options: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def from_card(cls, card: ModelCard, paths: list[Path], threads: int = 0, **options: Any) -> OnnxEmbedder:
        spec = card.input
        return cls(paths[0], card.id, int(spec["size"]), np.asarray(spec["template_points"], np.float32),
                   int(card.output_dim or 0), color=spec.get("color", "RGB"), mean=float(spec.get("mean", 127.5)),
                   std=float(spec.get("std", 127.5)), threads=threads)

    def __init__(self, model: Path, model_id: str, size: int, template: np.ndarray, dim: int,
                 color: str = "RGB", mean: float = 127.5, std: float = 127.5, threads: int = 0) -> None:
        self.model_id = model_id
        self.size = size
        self.dim = dim
        self.template = np.asarray(template, np.float32)
        self.color = color
        self.mean = mean
        self.std = std
        self._sess = onnx_session(model, threads)
        self._input = self._sess.get_inputs()[0].name
        self._fixed_batch = self._sess.get_inputs()[0].shape[0] == 1
        self._lock = threading.Lock()

    def embed(self, aligned: np.ndarray) -> np.ndarray:
        if len(aligned) == 0:
            return np.zeros((0, self.dim), np.float32)
        x = aligned if self.color == "RGB" else aligned[..., ::-1]
        blob = ((x.astype(np.float32) - self.mean) / self.std).transpose(0, 3, 1, 2)
        blob = np.ascontiguousarray(blob)
        with self._lock:
            if self._fixed_batch:
                out = np.vstack([self._sess.run(None, {self._input: blob[i : i + 1]})[0] for i in range(len(blob))])
            else:
                out = self._sess.run(None, {self._input: blob})[0]
        return l2_normalise(out.reshape(len(blob), -1))
