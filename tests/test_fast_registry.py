"""The model registry: a new detector is one class plus one `register` line (and a card added at run time), used by
a profile end to end; one resolver; options declared by each backend and refused by name; one cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from facewise import FaceWise
from facewise.errors import FacewiseError, ModelNotFoundError, ValidationError
from facewise.models import catalogue, registry
from facewise.models.catalogue import ModelCard
from facewise.models.profiles import EmbedderSpec, Profile
from facewise.testing import FAKE_EMBEDDER, FakeDetector, face_image, fake_profile
from facewise.types import Box, Detection

pytestmark = pytest.mark.fast


class ToyDetector:
    """A toy backend: the one face is whatever differs from the image's corner colour (its bounding box)."""

    options: ClassVar[frozenset[str]] = frozenset({"tolerance"})

    def __init__(self, model_id: str, tolerance: int = 8) -> None:
        self.model_id, self.tolerance = model_id, tolerance

    @classmethod
    def from_card(cls, card: ModelCard, paths: list[Path], threads: int = 0, **options: Any) -> ToyDetector:
        return cls(card.id, **options)

    def detect(self, image: np.ndarray) -> list[Detection]:
        differs = np.abs(image.astype(int) - image[0, 0].astype(int)).max(axis=2) > self.tolerance
        ys, xs = np.nonzero(differs)
        if len(xs) == 0:
            return []
        x0, y0, x1, y1 = float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)
        frontal = np.array([[0.342, 0.462], [0.657, 0.46], [0.5, 0.64], [0.371, 0.825], [0.632, 0.823]], np.float32)
        lm = frontal * np.array([x1 - x0, y1 - y0], np.float32) + np.array([x0, y0], np.float32)
        return [Detection(Box(x0, y0, x1, y1), lm.astype(np.float32), 0.9)]


@pytest.fixture
def toy() -> Any:
    fake_profile()  # the fake embedder, for the toy profile's vectors
    registry.register("detection", "toy", "test_fast_registry:ToyDetector")  # the one registry line
    catalogue.add_card({"id": "toy-detector", "task": "detection", "backend": "toy", "licence": "MIT",
                        "commercial_use": "yes", "source": "tests", "files": []})
    yield Profile(name="toy", description="toy detector + fake embedder", detector="toy-detector",
                  embedders=(EmbedderSpec(FAKE_EMBEDDER, 1.0),), detector_options={"tolerance": 4},
                  calibration=fake_profile().calibration)
    catalogue.remove_card("toy-detector")
    registry.unregister("detection", "toy")


def test_a_new_detector_is_one_class_and_one_register_line(toy: Profile) -> None:
    fw = FaceWise(None, profile=toy)
    assert type(fw.pipeline.detector).__name__ == "ToyDetector" and fw.pipeline.detector.tolerance == 4
    fw.enroll("ada", face_image(1))
    fw.enroll("bob", face_image(2, face_px=120))
    assert fw.identify(face_image(1, face_px=150))[0].person == "ada"
    assert fw.identify(face_image(2, face_px=60))[0].person == "bob"
    assert fw.identify(face_image(3))[0].person is None
    assert registry.detector_knobs("toy-detector") == frozenset()  # "tolerance" is no per-use tuning knob
    assert "toy" in registry.backends("detection")


def test_options_are_declared_and_refused_by_name(toy: Profile) -> None:
    bad = Profile(**{**toy.__dict__, "detector_options": {"tolerance": 4, "speed": "ludicrous"}})
    with pytest.raises(FacewiseError, match="takes no option speed"):
        FaceWise(None, profile=bad).detect(face_image(1))
    with pytest.raises(ValueError, match="cannot be tuned by min_side"):
        registry.load_detector("fake-detector", min_side=0)
    low = registry.load_detector("fake-detector", score_threshold=0.995)  # the fake's 0.99 faces fall below it
    assert low.detect(face_image(1)) == [] and registry.detector_knobs("fake-detector") == {"score_threshold"}


def test_models_are_built_once_per_card_threads_options_and_providers(toy: Profile) -> None:
    a = registry.load_detector("toy-detector", 0, (("tolerance", 3),))
    assert registry.load("detection", "toy-detector", 0, {"tolerance": 3}) is a
    assert registry.load_detector("toy-detector", 0, (("tolerance", 5),)) is not a
    assert registry.load_detector("toy-detector", 2, (("tolerance", 3),)) is not a
    registry.register("detection", "toy", ToyDetector)  # replacing a backend drops what it built
    assert registry.load_detector("toy-detector", 0, (("tolerance", 3),)) is not a


def test_one_resolver() -> None:
    assert registry.resolve_class("facewise.testing:FakeDetector") is FakeDetector
    assert registry.resolve_class(FakeDetector) is FakeDetector
    with pytest.raises(ValidationError, match="module:Class"):
        registry.resolve_class("facewise.testing.FakeDetector")
    with pytest.raises(ValidationError, match="has no class"):
        registry.resolve_class("facewise.testing:Nope")
    with pytest.raises(ImportError):  # an optional dependency that is not installed stays an ImportError
        registry.resolve_class("facewise_no_such_module:Thing")
    with pytest.raises(ValidationError, match="unknown model task"):
        registry.register("detections", "x", FakeDetector)
    with pytest.raises(ValidationError, match="unknown detection backend"):
        registry.backend_class("detection", "nope")


def test_cards_added_at_run_time(toy: Profile) -> None:
    assert catalogue.card("toy-detector").backend == "toy" and catalogue.is_available("toy-detector")
    assert "toy-detector" not in catalogue.cards()  # the shipped catalogue (`models list`) is unchanged
    with pytest.raises(FacewiseError, match="shipped"):
        catalogue.add_card({"id": "yunet-2023mar", "task": "detection"})
    catalogue.remove_card("toy-detector")
    with pytest.raises(ModelNotFoundError):
        catalogue.card("toy-detector")
