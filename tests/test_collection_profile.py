"""A collection remembers its profile; read-only commands create nothing; a failed command changes nothing.

Through the CLI in a subprocess, on the knn_examples photos, with a collection bound to the ``fast`` profile
(so that leaving ``-p`` out, which used to mean ``default``, is visible).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run([sys.executable, "-m", "facewise.cli", *args], capture_output=True, text=True, env=full,
                          timeout=300)


def collections(db: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT name, profile FROM collections ORDER BY name").fetchall()


@pytest.fixture(scope="module")
def gallery(knn: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("collprofile") / "g.db"
    r = cli("enroll", str(knn / "train"), "--db", str(db), "-p", "fast", "-c", "staff", "--face", "largest", "--json")
    assert r.returncode == 0, r.stderr
    assert collections(db) == [("staff", "fast")]
    return db


def test_commands_use_the_collections_profile_without_p(gallery: Path, knn: Path, tmp_path: Path) -> None:
    db = ["--db", str(gallery), "-c", "staff"]
    r = cli("people", "list", *db, "--json")
    assert r.returncode == 0, r.stderr
    assert {json.loads(line)["name"] for line in r.stdout.splitlines()} == {  # JSON Lines: one person a line
        "alex_lacamoire", "biden", "kit_harington", "obama", "rose_leslie"}
    assert cli("people", "show", "obama", *db, "--json").returncode == 0
    r = cli("identify", str(knn / "test" / "obama1.jpg"), *db, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.splitlines()[0])["person"] == "obama"
    assert cli("verify", str(knn / "test" / "obama1.jpg"), "--person", "obama", *db).returncode == 0
    r = cli("threshold", *db, "--json")
    doc = json.loads(r.stdout)  # identification at FPIR 0.01 over the 5 persons; verification at FAR 1e-3
    assert r.returncode == 0 and doc["source"] == "fpir=1e-02 at 5 persons (default)"
    assert doc["verify"]["source"] == "far=1e-03 (profile)"
    out = tmp_path / "staff.json"
    assert cli("export", str(out), *db).returncode == 0
    assert json.loads(out.read_text())["collection"]["profile"] == "fast"
    assert cli("people", "rename", "rose_leslie", "rose", *db).returncode == 0
    assert cli("people", "delete", "rose", *db).returncode == 0
    assert collections(gallery) == [("staff", "fast")]


def test_an_explicit_other_profile_is_still_refused(gallery: Path, knn: Path) -> None:
    for args in (["people", "list"], ["identify", str(knn / "test" / "obama1.jpg")], ["threshold"]):
        r = cli(*args, "--db", str(gallery), "-c", "staff", "-p", "default")
        assert r.returncode == 2, (args, r.stderr)
        assert "holds vectors of profile 'fast'" in r.stderr and "Traceback" not in r.stderr


READ_ONLY = [["people", "list"], ["people", "show", "obama"], ["people", "delete", "obama"],
             ["people", "rename", "obama", "barack"], ["threshold"], ["threshold", "--far", "1e-3"],
             ["identify", "IMG"], ["verify", "IMG", "--person", "obama"], ["export", "OUT"]]


@pytest.mark.parametrize("args", READ_ONLY, ids=lambda a: " ".join(a))
def test_read_only_commands_create_nothing(gallery: Path, knn: Path, tmp_path: Path, args: list[str]) -> None:
    args = [str(knn / "test" / "obama1.jpg") if a == "IMG" else str(tmp_path / "out.json") if a == "OUT" else a
            for a in args]
    typo = tmp_path / "galery.db"
    r = cli(*args, "--db", str(typo))
    assert r.returncode == 5, r.stderr
    assert f"{typo}: no such gallery file" in r.stderr and not typo.exists()
    r = cli(*args, "--db", str(gallery), "-c", "typo")
    assert r.returncode == 5, r.stderr
    assert "collection 'typo' does not exist" in r.stderr and "collections here: 'staff'" in r.stderr
    assert collections(gallery) == [("staff", "fast")] and not (tmp_path / "out.json").exists()


def test_a_command_that_fails_on_a_missing_model_changes_nothing(gallery: Path, knn: Path, tmp_path: Path) -> None:
    no_models = {"FACEWISE_MODEL_PATH": str(tmp_path / "empty")}
    (tmp_path / "empty").mkdir()
    photo = str(knn / "train" / "obama" / "obama.jpg")
    new = tmp_path / "new.db"
    r = cli("enroll", "--name", "obama", photo, "-p", "fast", "--db", str(new), env=no_models)
    assert r.returncode == 4 and "yunet-2023mar" in r.stderr
    assert not new.exists()
    r = cli("enroll", "--name", "obama", photo, "-p", "fast", "-c", "visitors", "--db", str(gallery), env=no_models)
    assert r.returncode == 4, r.stderr
    r = cli("identify", str(knn / "test" / "obama1.jpg"), "-c", "staff", "--db", str(gallery), env=no_models)
    assert r.returncode == 4, r.stderr  # the stored profile is fast: its detector is missing here
    assert collections(gallery) == [("staff", "fast")]
