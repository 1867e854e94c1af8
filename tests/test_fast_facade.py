"""The fast tier, facade: `FaceWise` end to end over `facewise.testing`'s fakes (painted faces, no model files):
enrol, identify, verify, delete, unknown faces and the errors each door reports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from facewise import FaceWise
from facewise.errors import (
    EnrollmentError,
    InvalidNameError,
    MultipleFacesError,
    NoFaceError,
    NotFoundError,
    ValidationError,
)
from facewise.models import profiles
from facewise.testing import FakeEmbedder, encode, face_image, fake_profile, paint_face, person_vector

pytestmark = pytest.mark.fast


@pytest.fixture
def fw() -> Iterator[FaceWise]:
    with FaceWise(None, profile=fake_profile()) as face_wise:
        yield face_wise


def test_the_fakes_see_painted_persons_and_nothing_else() -> None:
    fw = FaceWise(None, profile=fake_profile())
    faces = fw.faces(face_image([1, 2, 3], face_px=64))
    assert [f.box.x1 for f in faces] == [32.0, 128.0, 224.0]  # equal sizes: reading order, every run
    for face, seed in zip(faces, (1, 2, 3), strict=True):
        assert face.quality.ok, face.quality.reasons
        assert float(face.embedding @ person_vector(seed)) > 0.99
    assert abs(float(faces[0].embedding @ faces[1].embedding)) < 0.4
    rng = np.random.default_rng(0)
    assert fw.detect(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)) == []  # noise has no face
    solid = np.full((100, 100, 3), 90, np.uint8)
    solid[20:80, 20:80] = (255, 0, 255)  # a magenta square is not a ring
    assert fw.detect(solid) == []
    assert fw.detect(paint_face(np.zeros((60, 60, 3), np.uint8), 5, 10, 10, 20)) == []  # under 24 px


def test_enrol_identify_unknown_and_sizes(fw: FaceWise) -> None:
    fw.enroll("ada", [face_image(1), face_image(1, face_px=140)])
    fw.enroll("bob", encode(face_image(2, face_px=70), ".jpg"))  # one image as bytes, JPEG-compressed
    got = fw.identify(face_image([2, 1, 9], face_px=80))
    assert [r.person for r in got] == ["bob", "ada", None]  # 9 is a stranger
    assert got[0].score > 0.95 and got[2].score < fw.decision.threshold
    assert got[0].far is not None and got[0].far < 1e-3 < got[2].far
    assert [p.name for p in fw.persons()] == ["ada", "bob"] and len(fw.samples("ada")) == 2
    big = fw.identify(face_image(1, face_px=300), top_k=2)[0]  # any size
    assert [c.name for c in big.candidates] == ["ada", "bob"] and big.candidates[1].score < 0.5


def test_verify_and_verify_person(fw: FaceWise) -> None:
    same = fw.verify(face_image(4), face_image(4, face_px=50, background=30))
    assert same.same and same.score > 0.95 and same.far is not None
    other = fw.verify(face_image(4), face_image(5))
    assert not other.same and other.score < other.threshold
    fw.enroll("cy", face_image(4))
    assert fw.verify_person(face_image(4, face_px=120), "cy").same
    assert not fw.verify_person(face_image(6), "cy").same


def test_delete_person_and_sample_make_them_unknown(fw: FaceWise) -> None:
    fw.enroll("ada", [face_image(1), face_image(1, face_px=64)])
    fw.enroll("bob", face_image(2))
    assert fw.delete_person("ada") == 2
    assert fw.identify(face_image(1))[0].person is None
    with pytest.raises(NotFoundError):
        fw.person("ada")
    (sample,) = fw.samples("bob")
    fw.delete_sample(sample.id)
    assert fw.identify(face_image(2))[0].person is None and [p.name for p in fw.persons()] == ["bob"]


def test_errors_at_the_facade(fw: FaceWise) -> None:
    blank = np.full((120, 120, 3), 100, np.uint8)
    with pytest.raises(EnrollmentError):  # nothing stored: the image has no face
        fw.enroll("ada", blank)
    assert fw.persons() == []
    with pytest.raises(EnrollmentError) as refused:
        fw.enroll("ada", face_image([1, 2]))
    assert [r.code for r in refused.value.results] == [MultipleFacesError.code]
    with pytest.raises(MultipleFacesError):
        fw.verify(face_image([1, 2]), face_image(1))
    fw.enroll("ada", face_image([1, 2], face_px=90), face="largest")  # equal sizes: the first in reading order
    assert fw.identify(face_image(1))[0].person == "ada"
    with pytest.raises(NoFaceError):
        fw.verify(blank, face_image(1))
    with pytest.raises(InvalidNameError):
        fw.enroll("", face_image(3))
    with pytest.raises(NotFoundError):
        fw.verify_person(face_image(1), "nobody")
    assert fw.identify(blank) == []


def test_decisions_come_from_the_fake_calibration(fw: FaceWise) -> None:
    """The fake calibration is measured: on persons it never saw, strangers pass at about the FAR asked."""
    assert fw.decision.calibration is not None and "fpir" in fw.decision.source
    vecs = np.stack([person_vector(50_000 + i) for i in range(200)])
    impostors = (vecs @ vecs.T)[np.triu_indices(200, 1)]
    strict = fw.verification_decision  # the profile's default FAR, 1e-3
    assert (impostors >= strict.threshold).mean() < 4e-3 and strict.threshold < 0.9
    fw.set_threshold(target_far=1e-2)
    loose = fw.verification_decision
    assert loose.threshold < strict.threshold and 3e-3 < (impostors >= loose.threshold).mean() < 3e-2
    uncalibrated = FaceWise(None, profile=fake_profile("fake-raw", calibrated=False))
    assert uncalibrated.decision.source == "uncalibrated" and uncalibrated.decision.threshold == 0.5


def test_a_gallery_file_reopens_with_the_registered_profile(tmp_path: Path) -> None:
    db = tmp_path / "people.db"
    with FaceWise(db, profile=fake_profile()) as fw:
        fw.enroll("ada", face_image(1))
    with pytest.raises(ValidationError, match="not a shipped one"):
        FaceWise(db, profile=None)  # the collection names profile "fake", unknown by name until registered
    profiles.register(fake_profile())
    try:
        with FaceWise(db, profile=None) as again:
            assert again.profile.name == "fake" and again.identify(face_image(1))[0].person == "ada"
        with pytest.raises(ValidationError, match="shipped with facewise"):
            profiles.register(fake_profile("default"))
    finally:
        profiles.unregister("fake")


def test_the_fake_embedder_is_deterministic_and_unit() -> None:
    emb = FakeEmbedder()
    crops = np.random.default_rng(1).integers(0, 256, (4, emb.size, emb.size, 3), dtype=np.uint8)
    a, b = emb.embed(crops), emb.embed(crops.copy())
    assert a.shape == (4, emb.dim) and a.dtype == np.float32 and np.array_equal(a, b)
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
