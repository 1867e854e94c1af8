"""Facial-expression backend: facewise's own 7-class FER2013 model, run with onnxruntime.

The shipped graph (``weights/expression-fer7.onnx``, trained by ``training/train_expression.py``) takes
``input`` float32 [N, 1, 48, 48] -- the face crop in grey, resized to 48x48, scaled to 0..1 -- and returns
``logits`` [N, 7]; the averaging of the ensemble members (and test-time flip, where a graph was exported
with it) happens inside the graph. :class:`ExpressionModel` does the preprocessing itself and returns softmax
probabilities. Three-channel crops are taken as BGR (OpenCV order); convert RGB crops to grey first.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facewise.models.attributes import Attribute, TypedDict
from facewise.types import Face

__all__ = ["CLASSES", "DEFAULT_MODEL_PATH", "INPUT_SIZE", "Expression", "ExpressionModel", "preprocess"]

logger = logging.getLogger(__name__)

CLASSES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
INPUT_SIZE = 48
DEFAULT_MODEL_PATH = Path(__file__).resolve().parents[1] / "weights" / "expression-fer7.onnx"


def _to_grey(face: np.ndarray) -> np.ndarray:
    if not isinstance(face, np.ndarray):
        raise TypeError(f"expected a numpy array, got {type(face).__name__}")
    if face.dtype != np.uint8:
        raise TypeError(f"expected a uint8 image, got dtype {face.dtype}")
    if face.ndim == 3 and face.shape[2] == 1:
        face = face[:, :, 0]
    if face.ndim == 2:
        grey = face
    elif face.ndim == 3 and face.shape[2] == 3:
        grey = cv2.cvtColor(face, cv2.COLOR_BGR2GRAY)
    elif face.ndim == 3 and face.shape[2] == 4:
        grey = cv2.cvtColor(face, cv2.COLOR_BGRA2GRAY)
    else:
        raise ValueError(f"expected a grey (H, W) or BGR (H, W, 3) face crop, got shape {face.shape}")
    if grey.shape[0] < 1 or grey.shape[1] < 1:
        raise ValueError(f"empty face crop, shape {face.shape}")
    return grey


def preprocess(faces: Sequence[np.ndarray]) -> np.ndarray:
    """Face crops (uint8, grey or BGR/BGRA, any size) -> float32 [N, 1, 48, 48] in 0..1.

    Grey conversion ``cv2.COLOR_BGR2GRAY``; resize with ``cv2.INTER_AREA`` when shrinking and
    ``cv2.INTER_LINEAR`` when enlarging -- the same as the training pipeline.
    """
    batch = np.empty((len(faces), 1, INPUT_SIZE, INPUT_SIZE), dtype=np.float32)
    for i, face in enumerate(faces):
        grey = _to_grey(face)
        if grey.shape != (INPUT_SIZE, INPUT_SIZE):
            shrink = grey.shape[0] > INPUT_SIZE or grey.shape[1] > INPUT_SIZE
            grey = cv2.resize(grey, (INPUT_SIZE, INPUT_SIZE),
                              interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        batch[i, 0] = grey
    batch *= np.float32(1.0 / 255.0)
    return batch


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=1, keepdims=True))


class ExpressionModel:
    """7-class facial-expression classifier (FER2013 classes, alphabetical: see :data:`CLASSES`)."""

    CLASSES: tuple[str, ...] = CLASSES

    def __init__(self, model_path: str | Path, intra_op_num_threads: int = 1, batch_size: int = 64,
                 flip: bool = True) -> None:
        """``flip``: average the logits of each crop and its mirror image (in the same batch): +0.45 points on
        FER2013 PublicTest (72.11 % against 71.66 %) for about 7 ms more CPU per face (docs/ANALYSIS.md). The
        session comes from :func:`facewise.models.runtime.onnx_session` (threads, execution providers)."""
        from facewise.models.runtime import onnx_session

        self.flip = flip
        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise FileNotFoundError(f"expression model not found: {self.model_path}")
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.batch_size = batch_size
        self._session = onnx_session(self.model_path, intra_op_num_threads)
        self._input = self._session.get_inputs()[0].name
        self._output = self._session.get_outputs()[0].name
        n_out = self._session.get_outputs()[0].shape[-1]
        if n_out != len(CLASSES):
            raise ValueError(f"{self.model_path} returns {n_out} scores, expected {len(CLASSES)}")
        logger.debug("loaded expression model %s (threads=%d)", self.model_path, intra_op_num_threads)

    @classmethod
    def from_default(cls, intra_op_num_threads: int = 1, batch_size: int = 64, flip: bool = True) -> ExpressionModel:
        """The model shipped in ``facewise/models/weights/``, with mirror test-time augmentation."""
        return cls(DEFAULT_MODEL_PATH, intra_op_num_threads=intra_op_num_threads, batch_size=batch_size, flip=flip)

    def logits(self, faces_grey_or_bgr: Sequence[np.ndarray]) -> np.ndarray:
        """Raw logits [N, 7] (float32) for a list of face crops."""
        out = np.empty((len(faces_grey_or_bgr), len(CLASSES)), dtype=np.float32)
        for start in range(0, len(faces_grey_or_bgr), self.batch_size):
            chunk = faces_grey_or_bgr[start:start + self.batch_size]
            batch = preprocess(chunk)
            if self.flip:  # the crops and their mirror images in one run, logits averaged
                z = self._session.run([self._output], {self._input: np.concatenate([batch, batch[..., ::-1]])})[0]
                out[start:start + len(chunk)] = (z[: len(chunk)] + z[len(chunk):]) / 2
            else:
                out[start:start + len(chunk)] = self._session.run([self._output], {self._input: batch})[0]
        return out

    def predict(self, faces_grey_or_bgr: Sequence[np.ndarray]) -> np.ndarray:
        """Probabilities [N, 7] (float32, rows sum to 1) for face crops: uint8, grey or BGR, any size."""
        if len(faces_grey_or_bgr) == 0:
            return np.zeros((0, len(CLASSES)), dtype=np.float32)
        return _softmax(self.logits(faces_grey_or_bgr)).astype(np.float32)

    def predict_labels(self, faces_grey_or_bgr: Sequence[np.ndarray]) -> list[str]:
        """The most probable class name per face."""
        probs = self.predict(faces_grey_or_bgr)
        return [CLASSES[i] for i in probs.argmax(axis=1)]


class ExpressionResult(TypedDict):
    """The most probable expression, its probability and every class's."""

    label: str
    score: float
    probs: dict[str, float]


class Expression(Attribute):
    """The ``expression`` attribute: the most probable of :data:`CLASSES`, its score and every probability."""

    name = "expression"
    result = ExpressionResult

    def __init__(self) -> None:
        self.model: ExpressionModel | None = None

    def available(self) -> bool:
        return DEFAULT_MODEL_PATH.is_file()

    def load(self, threads: int) -> None:
        self.model = ExpressionModel.from_default()

    @classmethod
    def summary(cls, result: dict[str, Any]) -> str:
        return f"{result['label']} {result['score']:.2f}"

    def analyze(self, pixels: np.ndarray, faces: list[Face], what: tuple[str, ...]) -> list[dict[str, object]]:
        assert self.model is not None, "load() first"
        grey = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
        classes = list(self.model.CLASSES)
        out: list[dict[str, object]] = []
        for pr in self.model.predict([square_crop(grey, f) for f in faces]):
            k = int(np.argmax(pr))
            probs = {c: round(float(v), 4) for c, v in zip(classes, pr, strict=True)}
            out.append({"label": classes[k], "score": round(float(pr[k]), 4), "probs": probs})
        return out


def square_crop(grey: np.ndarray, face: Face) -> np.ndarray:
    """A square crop around the face box (FER2013-like framing: the box, slightly enlarged)."""
    cx, cy = face.box.center
    side = max(face.box.width, face.box.height) * 1.1
    h, w = grey.shape[:2]
    x1, y1 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
    x2, y2 = int(min(w, cx + side / 2)), int(min(h, cy + side / 2))
    crop = grey[y1:y2, x1:x2]
    return crop if crop.size else grey
