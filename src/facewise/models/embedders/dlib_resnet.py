"""dlib's ResNet 128-d face embedder (the model behind face_recognition), on aligned 150x150 chips.

Two engines give the same vectors (to 1e-4): dlib's ResNet converted once to ONNX and run by onnxruntime,
batched (the default: ``models/convert/dlib_dnn.py`` checks the graph against dlib before caching it), and
dlib itself, one chip at a time under a lock (``FACEWISE_DLIB_ENGINE=dlib``, and the fallback when the
conversion cannot be made or checked).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, ClassVar

import dlib
import numpy as np

from facewise import settings
from facewise.models._embed_util import l2_normalise
from facewise.models.catalogue import ModelCard
from facewise.models.runtime import onnx_session

log = logging.getLogger(__name__)

# Where dlib's own 150 px chip (padding 0.25) puts the five ArcFace-ordered points: measured by
# mapping 68-point landmarks of 149 LFW faces into dlib.get_face_chip() output (mean position).
DLIB_150_TEMPLATE = np.array(
    [[46.49, 46.21], [100.31, 46.30], [73.53, 74.32], [49.62, 105.09], [97.55, 105.13]], dtype=np.float32
)


class DlibResNetEmbedder:
    engine = "dlib"
    options: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def from_card(cls, card: ModelCard, paths: list[Path], threads: int = 0,
                  **options: Any) -> DlibResNetEmbedder | DlibOnnxEmbedder:
        """The ONNX engine unless ``FACEWISE_DLIB_ENGINE=dlib`` or the conversion fails (logged)."""
        if settings.dlib_engine() == "onnx":
            try:
                from facewise.models.convert.dlib_dnn import cached_onnx

                return DlibOnnxEmbedder(cached_onnx(paths[0]), model_id=card.id, threads=threads)
            except ImportError as exc:
                log.warning("model %s runs on dlib: the ONNX converter needs the onnx package (%s)", card.id, exc)
            except Exception as exc:  # a failed or refused conversion must not take the model away
                log.warning("model %s runs on dlib: no usable ONNX conversion: %s", card.id, exc)
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


class DlibOnnxEmbedder:
    """dlib's ResNet as an ONNX graph: uint8 RGB chips in one batch (a chip and its mirror together)."""

    engine = "onnx"

    def __init__(self, model: Path, model_id: str = "dlib-resnet-v1", threads: int = 0) -> None:
        self.model_id = model_id
        self.dim = 128
        self.size = 150
        self.template = DLIB_150_TEMPLATE
        self._sess = onnx_session(model, threads)
        self._lock = threading.Lock()

    def embed(self, aligned: np.ndarray) -> np.ndarray:
        if len(aligned) == 0:
            return np.zeros((0, self.dim), np.float32)
        chips = np.ascontiguousarray(aligned, dtype=np.uint8)
        with self._lock:
            out = self._sess.run(None, {"chips": chips})[0]
        return l2_normalise(out)
