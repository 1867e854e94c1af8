"""The name rules (gallery/names.py) reach every door: the library facade, the CLI, and folder enrolment."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from facewise import FaceWise
from facewise.errors import InvalidNameError


def test_library_refuses_a_bad_name_before_any_work_and_stores_nothing(tmp_path, knn):
    photo = knn / "train" / "biden" / "biden.jpg"
    with FaceWise(db=tmp_path / "g.db", profile="default") as fw:
        for bad in ("unknown", "42", "\u202eevil", "\u200b"):
            with pytest.raises(InvalidNameError):
                fw.enroll(bad, [photo])
            with pytest.raises(InvalidNameError):
                fw.add_person(bad)
        assert fw.info.persons == 0 and fw.info.samples == 0


def test_folder_enrolment_rejects_only_the_badly_named_folder(tmp_path, knn):
    root = tmp_path / "people"
    for name, src in (("biden", "biden"), ("007", "obama"), ("Unknown", "kit_harington")):
        (root / name).mkdir(parents=True)
        photo = sorted((knn / "train" / src).iterdir())[0]
        shutil.copy(photo, root / name / f"a{photo.suffix}")
    with FaceWise(db=tmp_path / "g.db", profile="default") as fw:
        results = {r.person: r for r in fw.enroll_folder(root, face="largest")}
        assert results["biden"].status == "added"
        assert results["007"].status == "rejected" and "digits" in (results["007"].reason or "")
        assert results["Unknown"].status == "rejected" and "reserved" in (results["Unknown"].reason or "")
        assert [p.name for p in fw.persons()] == ["biden"]


def test_cli_refuses_a_reserved_name_with_one_clear_line(tmp_path, knn):
    db = tmp_path / "g.db"
    r = subprocess.run([sys.executable, "-m", "facewise.cli", "enroll", "--name", "UNKNOWN",
                        str(knn / "train" / "biden" / "biden.jpg"), "--db", str(db)],
                       capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200"})
    assert r.returncode == 2 and "reserved" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not db.exists()  # refused before anything was opened


def test_zero_width_joiners_are_kept_where_a_script_spells_with_them() -> None:
    """Persian and Indic names use ZWNJ/ZWJ between letters; between Latin letters, or at an edge, they only hide
    a difference between two names and are refused."""
    from facewise.errors import InvalidNameError
    from facewise.gallery.names import check_name

    for name in ("می\u200cخواهم", "क्\u200dष"):
        assert check_name(name) == name
    for name in ("Ob\u200cama", "\u200cAli", "Ali\u200d", "Ali\u200bBaba"):
        with pytest.raises(InvalidNameError):
            check_name(name)
