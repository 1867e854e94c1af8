"""Embedders in OpenVINO IR (face-reidentification-retail-0095, InsightFace MobileFaceNet y1)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from facewise.models._embed_util import l2_normalise
from facewise.models.catalogue import ModelCard
from facewise.models.runtime import openvino_compiled


class OpenVinoEmbedder:
    """Input BGR 0..255 NCHW at the card's size; output L2-normalised.

    One face goes through a model compiled for batch 1 (a static shape runs about 15 % faster than
    the dynamic one, with identical output); several go through the dynamic-batch model.
    """

    options: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def from_card(cls, card: ModelCard, paths: list[Path], threads: int = 0, **options: Any) -> OpenVinoEmbedder:
        spec = card.input
        xml = next(p for p in paths if p.suffix == ".xml")
        return cls(xml, card.id, int(spec["size"]), np.asarray(spec["template_points"], np.float32),
                   int(card.output_dim or 0), threads)

    def __init__(self, xml: Path, model_id: str, size: int, template: np.ndarray, dim: int,
                 threads: int = 0, batch: int = 32) -> None:
        self.model_id = model_id
        self.size = size
        self.dim = dim
        self.template = np.asarray(template, np.float32)
        self.batch = batch
        self._model = openvino_compiled(xml, threads)
        self._single = openvino_compiled(xml, threads, batch_dynamic=False, batch=1)
        self._out = self._model.output(0)
        self._single_out = self._single.output(0)
        self._lock = threading.Lock()

    def embed(self, aligned: np.ndarray) -> np.ndarray:
        if len(aligned) == 0:
            return np.zeros((0, self.dim), np.float32)
        blob = np.ascontiguousarray(aligned[..., ::-1].transpose(0, 3, 1, 2), dtype=np.float32)
        outs = []
        with self._lock:
            if len(blob) == 1:
                outs.append(np.asarray(self._single(blob)[self._single_out]))
            else:
                for i in range(0, len(blob), self.batch):
                    outs.append(np.asarray(self._model(np.ascontiguousarray(blob[i : i + self.batch]))[self._out]))
        return l2_normalise(np.vstack(outs).reshape(len(blob), -1))
