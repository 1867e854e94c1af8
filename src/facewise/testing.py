"""Fakes for tests (yours and ours): a face detector and an embedder that need no model file, and the painted faces
they recognise.

::

    from facewise import FaceWise
    from facewise.testing import face_image, fake_profile

    fw = FaceWise(None, profile=fake_profile())  # an in-memory gallery, no model file anywhere
    fw.enroll("ada", [face_image(1), face_image(1, face_px=120)])
    assert fw.identify(face_image(1, face_px=80))[0].person == "ada"
    assert fw.identify(face_image(2))[0].person is None  # a stranger

A *painted face* (:func:`paint_face`) is a square with a magenta ring around a 6 x 6 grid of colour cells; the
colours are drawn from the person's ``seed``, so every painting of one seed is the same "person" at any size and
place and two seeds are two persons. :class:`FakeDetector` finds the magenta rings (numpy only: a real photo has
no face for it) and puts the five landmarks where a frontal face's would be in the ring's box;
:class:`FakeEmbedder` reads the cells' colours off the aligned crop into a unit vector (108-d), so paintings of
one person give a cosine near 1 and two persons about 0 (spread ``1/sqrt(108)``). Both are deterministic and
thread-safe, and they survive JPEG and video compression.

:func:`fake_profile` is a :class:`~facewise.models.profiles.Profile` naming them (cards ``fake-detector`` and
``fake-embedder``, added to the catalogue at run time, with no files), with a calibration measured on the
impostor scores of synthetic persons: thresholds at a target FAR, the FAR of scores, identification at a target
FPIR, tracking and clustering constants all work as on a real profile. It is a *fake* calibration (for the fake
embedder only), not a measurement of any real model. :func:`install` registers the fakes without a profile (for
a profile of your own that names them); ``facewise.models.profiles.register(fake_profile())`` lets a service or
a collection name the profile (``"fake"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from facewise.errors import ModelNotFoundError
from facewise.models import catalogue, registry
from facewise.models.catalogue import ModelCard
from facewise.models.profiles import EmbedderSpec, Profile
from facewise.types import Box, Detection

__all__ = ["FAKE_DETECTOR", "FAKE_EMBEDDER", "FakeDetector", "FakeEmbedder", "encode", "face_image",
           "fake_profile", "install", "paint_face", "person_vector"]

FAKE_DETECTOR = "fake-detector"
FAKE_EMBEDDER = "fake-embedder"
GRID = 6  # cells per side of a painted face
RING = 1 / 12  # the magenta ring's width, as a share of the face's side
MAGENTA = (255, 0, 255)
# the five landmarks of a frontal face in a 112 px square crop (ArcFace's template): where the detector puts them
FRONTAL_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655],
                        [70.7299, 92.2041]], dtype=np.float32)


def _colours(seed: int) -> np.ndarray:
    """The person's (GRID, GRID, 3) cell colours; green never low, so no cell looks like the ring."""
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0xFACE])
    rgb = rng.integers(0, 256, (GRID, GRID, 3))
    rgb[..., 1] = 100 + rgb[..., 1] * 155 // 255
    return rgb.astype(np.uint8)


def _unit(rows: np.ndarray) -> np.ndarray:
    v = (rows.astype(np.float32) - np.float32(127.5)) / np.float32(127.5)
    norm = np.maximum(np.linalg.norm(v, axis=1, keepdims=True), np.float32(1e-6))
    out: np.ndarray = (v / norm).astype(np.float32)
    return out


def person_vector(seed: int) -> np.ndarray:
    """The vector :class:`FakeEmbedder` gives a perfect painting of person ``seed`` (unit, 108-d)."""
    row: np.ndarray = _unit(_colours(seed).reshape(1, -1))[0]
    return row


def paint_face(image: np.ndarray, seed: int, x: int, y: int, side: int) -> np.ndarray:
    """Paint person ``seed``'s face as a ``side`` px square with its top-left corner at (``x``, ``y``) into an RGB
    ``uint8`` image (in place; also returned). Needs ``side`` >= 24 to be found; the square must fit the image."""
    h, w = image.shape[:2]
    if not (side >= 12 and x >= 0 and y >= 0 and x + side <= w and y + side <= h):
        raise ValueError(f"a {side} px face at ({x}, {y}) does not fit a {w}x{h} image")
    ring = max(1, round(side * RING))
    image[y:y + side, x:x + side] = MAGENTA
    edges = np.linspace(ring, side - ring, GRID + 1).round().astype(int)
    colours = _colours(seed)
    for i in range(GRID):
        for j in range(GRID):
            image[y + edges[i]:y + edges[i + 1], x + edges[j]:x + edges[j + 1]] = colours[i, j]
    return image


def face_image(seeds: int | Sequence[int], face_px: int = 96, margin: int = 32, background: int = 96,
               height: int | None = None) -> np.ndarray:
    """An RGB ``uint8`` image of the persons ``seeds`` (one face per seed, left to right, ``face_px`` px each,
    ``margin`` px apart) on a grey ``background``; ``height`` (default: the faces plus margins) makes it taller."""
    seeds = [seeds] if isinstance(seeds, int) else list(seeds)
    w = margin + len(seeds) * (face_px + margin)
    h = max(height or 0, face_px + 2 * margin)
    img = np.full((h, w, 3), background, np.uint8)
    for k, seed in enumerate(seeds):
        paint_face(img, seed, margin + k * (face_px + margin), (h - face_px) // 2, face_px)
    return img


def encode(image: np.ndarray, ext: str = ".png") -> bytes:
    """An RGB image as file bytes (``.png``: lossless; ``.jpg`` works too), e.g. for an upload."""
    import cv2

    ok, buf = cv2.imencode(ext, np.ascontiguousarray(image[:, :, ::-1]))
    if not ok:
        raise ValueError(f"could not encode as {ext}")
    return bytes(buf.tobytes())


def _components(mask: np.ndarray) -> list[tuple[int, int, int, int, int]]:
    """(y0, x0, y1, x1, pixels) of each 8-connected component of ``mask`` (bounds inclusive)."""
    left = {(int(y), int(x)) for y, x in zip(*np.nonzero(mask), strict=True)}
    out = []
    while left:
        stack = [left.pop()]
        y0 = y1 = stack[0][0]
        x0 = x1 = stack[0][1]
        n = 0
        while stack:
            y, x = stack.pop()
            n += 1
            y0, y1, x0, x1 = min(y0, y), max(y1, y), min(x0, x), max(x1, x)
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    p = (y + dy, x + dx)
                    if p in left:
                        left.remove(p)
                        stack.append(p)
        out.append((y0, x0, y1, x1, n))
    return out


class FakeDetector:
    """Finds painted faces (:func:`paint_face`): square magenta rings at least 24 px a side. Its confidence is
    0.99 for every face; ``score_threshold`` (0.5) is what a caller may tune, like a real detector's."""

    options: ClassVar[frozenset[str]] = frozenset({"score_threshold"})
    score = 0.99

    def __init__(self, model_id: str = FAKE_DETECTOR, score_threshold: float = 0.5) -> None:
        self.model_id = model_id
        self.score_threshold = float(score_threshold)

    @classmethod
    def from_card(cls, card: ModelCard, paths: list[Path], threads: int = 0, **options: Any) -> FakeDetector:
        return cls(card.id, **options)

    def detect(self, image: np.ndarray) -> list[Detection]:
        if self.score < self.score_threshold:
            return []
        px = np.asarray(image)
        mask = (px[..., 0] >= 170) & (px[..., 2] >= 170) & (px[..., 1] <= 100)
        out = []
        for y0, x0, y1, x1, n in _components(mask):
            w, h = x1 - x0 + 1, y1 - y0 + 1
            if min(w, h) < 24 or not 0.8 <= w / h <= 1.25 or n > 0.6 * w * h:  # small, not square, or not a ring
                continue
            lm = FRONTAL_112 / 112.0 * np.array([w, h], np.float32) + np.array([x0, y0], np.float32)
            out.append(Detection(Box(float(x0), float(y0), float(x0 + w), float(y0 + h)), lm.astype(np.float32),
                                 self.score))
        out.sort(key=lambda d: (-d.box.area, d.box.y1, d.box.x1))  # largest first, then reading order
        return out


class FakeEmbedder:
    """Reads the colour cells of a painted face off the aligned crop (96 px; the five frontal landmarks of the
    detector land on ``template``) into a unit vector: the centre half of each of the 6 x 6 cells, averaged."""

    options: ClassVar[frozenset[str]] = frozenset()
    size = 96
    dim = GRID * GRID * 3
    template = FRONTAL_112 * (96 / 112.0)

    def __init__(self, model_id: str = FAKE_EMBEDDER) -> None:
        self.model_id = model_id
        edges = np.linspace(self.size * RING, self.size * (1 - RING), GRID + 1)
        quarter = (edges[1] - edges[0]) / 4
        centres = (edges[:-1] + edges[1:]) / 2
        self._spans = [(int(round(c - quarter)), int(round(c + quarter))) for c in centres]

    @classmethod
    def from_card(cls, card: ModelCard, paths: list[Path], threads: int = 0, **options: Any) -> FakeEmbedder:
        return cls(card.id)

    def embed(self, aligned: np.ndarray) -> np.ndarray:
        crops = np.asarray(aligned, np.float32).reshape(-1, self.size, self.size, 3)
        cells = np.stack([crops[:, a:b, c:d].mean(axis=(1, 2)) for a, b in self._spans for c, d in self._spans],
                         axis=1)  # (N, GRID * GRID, 3)
        return _unit(cells.reshape(len(crops), -1))


_CARDS = (
    {"id": FAKE_DETECTOR, "task": "detection", "backend": "fake", "licence": "test fake (no weights)",
     "commercial_use": "yes", "source": "facewise.testing", "files": [], "training_data": "none (not trained)",
     "notes": "finds faces painted by facewise.testing.paint_face"},
    {"id": FAKE_EMBEDDER, "task": "embedding", "backend": "fake", "licence": "test fake (no weights)",
     "commercial_use": "yes", "source": "facewise.testing", "files": [], "training_data": "none (not trained)",
     "output_dim": FakeEmbedder.dim, "input": {"size": FakeEmbedder.size},
     "notes": "reads the colour cells of faces painted by facewise.testing.paint_face"},
)


def install() -> None:
    """Register the fake backends (``("detection", "fake")``, ``("embedding", "fake")``) and add their cards
    (``fake-detector``, ``fake-embedder``) to the catalogue; idempotent."""
    for task, cls in (("detection", FakeDetector), ("embedding", FakeEmbedder)):
        if registry.BACKENDS.get((task, "fake")) is not cls:
            registry.register(task, "fake", cls)
    for c in _CARDS:
        try:
            catalogue.card(str(c["id"]))
        except ModelNotFoundError:
            catalogue.add_card(c)


@lru_cache(maxsize=1)
def _calibration(persons: int = 300) -> dict[str, Any]:
    """The fake embedder's calibration: impostor scores of ``persons`` synthetic persons (all pairs)."""
    from facewise.decision.calibration import Calibration

    vecs = np.stack([person_vector(10_000 + i) for i in range(persons)])
    scores = (vecs @ vecs.T)[np.triu_indices(persons, 1)]
    return Calibration.fit(scores, n_boot=20, seed=0).to_dict()


def fake_profile(name: str = "fake", calibrated: bool = True) -> Profile:
    """A profile of :class:`FakeDetector` and :class:`FakeEmbedder` (installed first, :func:`install`), with a fake
    calibration measured on synthetic persons (``calibrated=False``: none; decisions then use the profile's
    ``fallback_threshold`` 0.5, as an uncalibrated real profile would)."""
    install()
    return Profile(name=name, description="facewise.testing fakes: painted faces, no model files",
                   detector=FAKE_DETECTOR, embedders=(EmbedderSpec(FAKE_EMBEDDER, 1.0),), default_far=1e-3,
                   fallback_threshold=0.5, calibration=_calibration() if calibrated else None)
