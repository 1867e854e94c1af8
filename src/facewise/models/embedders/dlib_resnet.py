"""dlib's ResNet 128-d face embedder (the model behind face_recognition), on aligned 150x150 chips."""

from __future__ import annotations

import threading
from pathlib import Path

import dlib
import numpy as np

from facewise.models._embed_util import l2_normalise
from facewise.models.catalogue import ModelCard

# Where dlib's own 150 px chip (padding 0.25) puts the five ArcFace-ordered points: measured by
# mapping 68-point landmarks of 149 LFW faces into dlib.get_face_chip() output (mean position).
DLIB_150_TEMPLATE = np.array(
    [[46.49, 46.21], [100.31, 46.30], [73.53, 74.32], [49.62, 105.09], [97.55, 105.13]], dtype=np.float32
)


class DlibResNetEmbedder:
    @classmethod
    def from_card(cls, card: ModelCard, paths: list[Path], threads: int = 0) -> DlibResNetEmbedder:
        return cls(paths[0], model_id=card.id)

    def __init__(self, model: Path, model_id: str = "dlib-resnet-v1") -> None:
        self.model_id = model_id
        self.dim = 128
        self.size = 150
        self.template = DLIB_150_TEMPLATE
        self._net = dlib.face_recognition_model_v1(str(model))
        self._lock = threading.Lock()

    def embed(self, aligned: np.ndarray) -> np.ndarray:
        if len(aligned) == 0:
            return np.zeros((0, self.dim), np.float32)
        chips = [np.ascontiguousarray(a) for a in aligned]
        with self._lock:
            vecs = self._net.compute_face_descriptor(chips)
        return l2_normalise(np.array([np.asarray(v) for v in vecs]))
