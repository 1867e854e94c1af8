"""The CLI end to end in a subprocess: JSON output, exit codes, error messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def run(*args: str, check: bool = False) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "facewise.cli", *args], capture_output=True, text=True, env=env,
                          timeout=300, check=check)


@pytest.fixture(scope="module")
def db(knn, tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "g.db"
    r = run("enroll", str(knn / "train"), "--db", str(path), "--face", "largest", "--json")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(rows) == 9 and all(x["status"] == "added" for x in rows)
    return path


def test_identify_json_has_box_person_score(db, knn):
    r = run("identify", str(knn / "test" / "kit_with_rose.jpg"), "--db", str(db), "--json")
    assert r.returncode == 0, r.stderr
    faces = [json.loads(line) for line in r.stdout.splitlines()]
    assert sorted(f["person"] for f in faces) == ["kit_harington", "rose_leslie"]
    for f in faces:
        assert len(f["box"]) == 4 and 0 < f["score"] <= 1 and f["threshold"] > 0


def test_verify_exit_codes(knn):
    same = run("verify", str(knn / "test" / "obama1.jpg"), str(knn / "train" / "obama" / "obama.jpg"), "--json")
    assert same.returncode == 0, same.stderr
    v = json.loads(same.stdout)
    assert v["same"] is True and {"score", "same", "threshold"} <= set(v)
    diff = run("verify", str(knn / "test" / "obama1.jpg"), str(knn / "train" / "biden" / "biden.jpg"))
    assert diff.returncode == 10 and "DIFFERENT" in diff.stdout


def test_bad_input_is_one_clear_line(tmp_path):
    bad = tmp_path / "x.jpg"
    bad.write_bytes(b"definitely not a jpeg")
    r = run("verify", str(bad), str(bad))
    assert r.returncode == 3
    assert "x.jpg: not a recognised image format" in r.stderr and "Traceback" not in r.stderr


def test_people_commands(db):
    r = run("people", "list", "--db", str(db), "--json")
    names = {json.loads(line)["name"] for line in r.stdout.splitlines()}  # JSON Lines: one person per line
    assert names == {"alex_lacamoire", "biden", "kit_harington", "obama", "rose_leslie"}
    assert run("people", "rename", "rose_leslie", "rose", "--db", str(db)).returncode == 0
    assert run("people", "show", "rose", "--db", str(db), "--json").returncode == 0
    r = run("people", "delete", "ghost", "--db", str(db))
    assert r.returncode == 5 and "ghost" in r.stderr


def test_profile_mismatch_is_refused(db, knn):
    r = run("identify", str(knn / "test" / "obama1.jpg"), "--db", str(db), "--profile", "fast")
    assert r.returncode == 2 and "profile 'default'" in r.stderr


def test_models_list_json():
    r = run("models", "list", "--json")
    rows = [json.loads(line) for line in r.stdout.splitlines()]  # JSON Lines: models, profiles, search path
    assert any(m["kind"] == "model" and m["id"] == "dlib-resnet-v1" and m["available"] for m in rows)
    assert any(p["kind"] == "profile" and p["name"] == "default" and p["available"] for p in rows)
