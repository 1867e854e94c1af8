"""Quality reasons on purpose-made bad versions of a real face photo."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facewise import FaceWise
from facewise.core.imageio import load_image


@pytest.fixture(scope="module")
def photo(knn) -> np.ndarray:
    return load_image(knn / "train" / "obama" / "obama.jpg").pixels


@pytest.fixture(scope="module")
def fw():
    with FaceWise(profile="default") as f:
        yield f


def reasons(fw: FaceWise, pixels: np.ndarray) -> list[str]:
    faces = fw.detect(pixels)
    assert faces, "the face must still be found"
    return faces[0].quality.reasons


def test_clean_photo_has_no_reasons(fw, photo):
    faces = fw.detect(photo)
    assert len(faces) == 1 and faces[0].quality.ok and faces[0].quality.score == 1.0


def test_blurred(fw, photo):
    face = fw.detect(photo)[0]
    blurred = cv2.GaussianBlur(photo, (0, 0), face.box.width * 0.03)
    got = reasons(fw, blurred)
    assert any(r.startswith("blurred") for r in got), got


def test_too_small(photo):
    with FaceWise(profile="fast") as fw:
        face = fw.detect(photo)[0]
        k = 20 / face.box.width
        small = cv2.resize(photo, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
        canvas = np.full((200, 200, 3), 128, np.uint8)
        canvas[: small.shape[0], : small.shape[1]] = small[:200, :200]
        faces = fw.detect(canvas)
        assert faces and any(r.startswith("too small") for r in faces[0].quality.reasons)
        assert faces[0].quality.score < 0.9


def test_too_dark_and_over_exposed(fw, photo):
    dark = (photo.astype(np.float32) * 0.18).astype(np.uint8)
    assert any(r.startswith("too dark") for r in reasons(fw, dark))
    bright = np.clip(photo.astype(np.float32) * 2.2 + 60, 0, 255).astype(np.uint8)
    assert any(r.startswith("over-exposed") for r in reasons(fw, bright))
