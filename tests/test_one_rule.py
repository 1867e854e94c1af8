"""One rule per question at every door (issue 24, part A): the library, the CLI and (tests/test_service_api.py)
REST give the same answer to a failed enrolment, a photo with several faces, an unknown profile; records print
short; library errors carry structured fields and name no CLI option or REST path. Real photos, `default`."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import KNN, need
from facewise import FaceWise
from facewise.errors import EnrollmentError, FacewiseError, MultipleFacesError, ValidationError
from test_cli_contract import cli, failed, rows

DOOR_WORDS = re.compile(r"(?<![\w-])--[a-z]|/v1/|PATCH |POST ")


@pytest.fixture(scope="module")
def fw() -> FaceWise:
    need(KNN)
    with FaceWise(profile="default") as f:
        yield f


def _no_door_words(exc: FacewiseError) -> None:
    assert not DOOR_WORDS.search(str(exc)), f"a library error names a CLI option or REST path: {exc}"


def test_one_image_given_where_a_list_is_expected_is_one_item(fw: FaceWise) -> None:
    photo = KNN / "train" / "biden" / "biden.jpg"
    for one in (str(photo), photo, photo.read_bytes(), np.asarray(Image.open(photo).convert("RGB")),
                Image.open(photo)):
        res = fw.enroll("biden", one)
        assert len(res) == 1 and res[0].status in ("added", "duplicate"), (type(one), res)
    # the same photo each time (decoded pixels hash apart from file bytes): a few samples, never 40 "files"
    assert fw.info.persons == 1 and fw.info.samples <= 3


def test_an_enrolment_that_stores_nothing_is_an_error(fw: FaceWise, tmp_path: Path) -> None:
    two = KNN.parent / "two_people.jpg"
    with pytest.raises(EnrollmentError) as caught:
        fw.enroll("pair", two)
    exc = caught.value
    assert exc.exit_code == 3 and exc.http_status == 422 and exc.code == "nothing_enrolled"
    assert [r.status for r in exc.results] == ["rejected"] and "faces" in (exc.results[0].reason or "")
    _no_door_words(exc)
    with pytest.raises(EnrollmentError):
        fw.enroll("pair", [])
    with pytest.raises(EnrollmentError):
        fw.enroll("pair", [tmp_path / "missing.jpg"])
    assert "pair" not in {p.name for p in fw.persons()}
    # a re-run of photos already enrolled stores nothing new, and is not an error
    fw.enroll("obama", [KNN / "train" / "obama" / "obama.jpg"])
    assert [r.status for r in fw.enroll("obama", [KNN / "train" / "obama" / "obama.jpg"])] == ["duplicate"]


def test_several_faces_without_a_choice_is_refused_by_verify(fw: FaceWise) -> None:
    two, obama = KNN.parent / "two_people.jpg", KNN / "test" / "obama1.jpg"
    for a, b in ((two, obama), (obama, two)):
        with pytest.raises(MultipleFacesError) as caught:
            fw.verify(a, b)  # face="only" by default, as the CLI and REST
        assert caught.value.details["what"] == "face" and "largest" in str(caught.value.details["valid"])
        _no_door_words(caught.value)
    assert fw.verify(two, obama, face="largest").faces[0]["index"] in (0, 1)


@pytest.mark.shared
def test_unknown_profile_is_an_invalid_value_everywhere(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as caught:
        FaceWise(profile="nope")
    exc = caught.value
    assert exc.exit_code == 2 and exc.http_status == 422 and exc.code == "invalid_value"
    assert exc.details["what"] == "profile" and exc.details["value"] == "nope" and "default" in exc.details["valid"]
    _no_door_words(exc)
    last = failed(cli("enroll", "--name", "x", KNN / "train" / "biden" / "biden.jpg", "--profile", "nope",
                      "--db", tmp_path / "g.db", "--json"), 2, "invalid_value", "nope", "--profile")
    assert last["error"]["details"]["what"] == "profile"
    assert not (tmp_path / "g.db").exists()


def test_records_print_short(fw: FaceWise) -> None:
    res = fw.enroll("obama", [KNN / "train" / "obama" / "obama2.jpg"])
    assert res[0].face is not None and res[0].face.embedding is not None
    assert len(repr(res[0])) < 400 and "array" not in repr(res[0]), repr(res[0])
    assert len(repr(fw.identify(KNN / "test" / "obama1.jpg"))) < 800


@pytest.mark.shared
def test_cli_enrol_that_stores_nothing_exits_3_with_each_reason(tmp_path: Path) -> None:
    two = KNN.parent / "two_people.jpg"
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 not a jpeg")
    r = cli("enroll", "--name", "pair", two, bad, "--db", tmp_path / "g.db", "--json")
    got = rows(r)
    assert r.exit_code == 3 and [x["status"] for x in got[:2]] == ["rejected", "rejected"], r.stdout
    assert got[-1]["error"]["code"] == "nothing_enrolled" and "two_people.jpg" in got[-1]["error"]["message"]
    assert "--face" in r.stderr  # the CLI phrases the hint in its own terms


@pytest.mark.shared
def test_the_library_message_is_the_cli_message_minus_the_hint(tmp_path: Path) -> None:
    img = io.BytesIO()
    Image.open(KNN.parent / "two_people.jpg").save(img, "JPEG")
    r = cli("verify", KNN.parent / "two_people.jpg", KNN / "test" / "obama1.jpg", "--json")
    last = failed(r, 3, "multiple_faces", "two_people.jpg", "--face")
    assert last["error"]["details"] == {"what": "face", "value": "only", "valid": "largest or 0..1"}
