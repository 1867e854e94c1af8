"""End to end on real photos: enrol the knn_examples people, identify, verify, say "unknown"."""

from __future__ import annotations

import pytest

from facewise import FaceWise, MultipleFacesError, NoFaceError
from facewise.errors import EnrollmentError, ImageError, ProfileMismatchError

EXPECTED = {
    "alex_lacamoire1.jpg": {"alex_lacamoire"},
    "johnsnow_test1.jpg": {"kit_harington"},
    "kit_with_rose.jpg": {"kit_harington", "rose_leslie"},
    "obama1.jpg": {"obama"},
    "obama_and_biden.jpg": {"obama", "biden", None},  # a child at the right edge is not enrolled
}


@pytest.fixture(scope="module")
def enrolled(knn, tmp_path_factory):
    db = tmp_path_factory.mktemp("g") / "knn.db"
    fw = FaceWise(db=db, profile="default")
    results = fw.enroll_folder(knn / "train", face="largest")
    assert all(r.status == "added" for r in results), [(r.source, r.reason) for r in results]
    yield fw, db
    fw.close()


def test_every_test_face_is_named_correctly(enrolled, knn):
    fw, _ = enrolled
    for name, expected in EXPECTED.items():
        got = [r.person for r in fw.identify(knn / "test" / name)]
        assert set(got) == expected, (name, got)
        assert len(got) == len(expected)


def test_unenrolled_person_comes_back_unknown(knn, tmp_path):
    with FaceWise(db=tmp_path / "no_biden.db") as fw:
        for person_dir in sorted((knn / "train").iterdir()):
            if person_dir.name != "biden":
                fw.enroll(person_dir.name, sorted(person_dir.iterdir()), face="largest")
        results = fw.identify(knn / "test" / "obama_and_biden.jpg")
        names = sorted((r.person or "unknown") for r in results)
        assert names == ["obama", "unknown", "unknown"]
        biden = max(results, key=lambda r: r.face.box.x1 < 1000 and r.face.box.area)
        assert biden.score < biden.threshold


def test_verify_images_and_person(enrolled, knn):
    fw, _ = enrolled
    same = fw.verify(knn / "test" / "obama1.jpg", knn / "train" / "obama" / "obama.jpg")
    diff = fw.verify(knn / "test" / "obama1.jpg", knn / "train" / "biden" / "biden.jpg")
    assert same.same and not diff.same and same.score > diff.score
    assert fw.verify_person(knn / "test" / "alex_lacamoire1.jpg", "alex_lacamoire").same
    assert not fw.verify_person(knn / "test" / "alex_lacamoire1.jpg", "rose_leslie").same


def test_gallery_survives_close_and_reopen(enrolled, knn):
    _, db = enrolled
    with FaceWise(db=db, profile="default") as again:
        assert {p.name for p in again.persons()} == {"alex_lacamoire", "biden", "kit_harington", "obama",
                                                      "rose_leslie"}
        assert [r.person for r in again.identify(knn / "test" / "obama1.jpg")] == ["obama"]
        with pytest.raises(ProfileMismatchError):
            _ = FaceWise(db=db, profile="fast").info


def test_multi_face_photo_needs_a_choice_and_dedupe(knn, tmp_path):
    with FaceWise(db=tmp_path / "g.db") as fw:
        photo = knn / "test" / "kit_with_rose.jpg"
        with pytest.raises(EnrollmentError) as caught:  # stores nothing: an error, with the photo's reason
            fw.enroll("kit", [photo])
        r = caught.value.results[0]
        assert r.status == "rejected" and "2 faces found" in r.reason and "largest" in r.reason
        assert fw.info.samples == 0
        assert fw.enroll("kit", [photo], face="largest")[0].status == "added"
        assert fw.enroll("kit", [photo], face="largest")[0].status == "duplicate"
        assert fw.info.samples == 1


def test_bad_files_are_reported_and_nothing_is_stored(knn, tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0garbage")
    (tmp_path / "empty.png").write_bytes(b"")
    with FaceWise(db=tmp_path / "g.db") as fw:
        with pytest.raises(EnrollmentError) as caught:
            fw.enroll("x", [tmp_path / "broken.jpg", tmp_path / "empty.png"])
        res = caught.value.results
        assert caught.value.exit_code == 3 and caught.value.http_status == 422
        assert [r.status for r in res] == ["rejected", "rejected"]
        assert "broken.jpg" in res[0].reason and "empty" in res[1].reason
        assert fw.info.samples == 0
        with pytest.raises(ImageError):
            fw.identify(tmp_path / "broken.jpg")


def test_no_face_tiny_images_and_ambiguous_faces(knn):
    import numpy as np

    with FaceWise() as fw:
        assert fw.identify(np.full((5, 5, 3), 128, np.uint8)) == []
        assert fw.identify(np.zeros((1, 1, 3), np.uint8)) == []
        with pytest.raises(NoFaceError, match="no face found"):
            fw.verify(np.full((64, 64, 3), 90, np.uint8), knn / "test" / "obama1.jpg")
        with pytest.raises(MultipleFacesError, match="2 faces found"):
            fw.verify(knn / "test" / "kit_with_rose.jpg", knn / "test" / "obama1.jpg", face="only")


def test_export_import_round_trip(enrolled, knn, tmp_path):
    fw, _ = enrolled
    n = fw.export(tmp_path / "c.json.gz")
    assert n == fw.info.samples
    with FaceWise(db=tmp_path / "copy.db") as other:
        assert other.import_(tmp_path / "c.json.gz") == n
        assert other.import_(tmp_path / "c.json.gz") == 0  # dedupe
        assert [r.person for r in other.identify(knn / "test" / "obama1.jpg")] == ["obama"]
