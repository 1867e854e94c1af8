"""The CLI contract (README "The CLI contract"), command by command: every command of `facewise --help` with
good input, a missing gallery (or file), a corrupt image (or file) and a usage error, asserting the exit code
and the JSON fields. Real photos (knn_examples), the registry-only `default` profile, one enrolment per module,
commands run in-process (models load once); `serve` is also started for real and stopped.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from typer.testing import CliRunner, Result

from conftest import DATA, KNN, MODELS, need
from facewise.cli import app

RUNNER = CliRunner()
TYPER_METAVARS = ("<bool>", "<str>", "<path>", "<Path>", "<int>", "<float>")


def cli(*args: Any, env: dict[str, str] | None = None) -> Result:
    r = RUNNER.invoke(app, [str(a) for a in args], env=env)
    if r.exception is not None and not isinstance(r.exception, SystemExit):  # a traceback breaks the contract
        raise r.exception
    return r


def rows(r: Result) -> list[dict[str, Any]]:
    """stdout as JSON Lines: every non-empty line one JSON object."""
    out = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    assert all(isinstance(o, dict) for o in out), r.stdout
    return out


def failed(r: Result, exit_code: int, code: str, *names: str) -> dict[str, Any]:
    """Exit ``exit_code``; the last JSON line is the error object with ``code``; stderr says it too."""
    assert r.exit_code == exit_code, (r.exit_code, r.stdout, r.stderr)
    last = rows(r)[-1]
    assert last["error"]["code"] == code, last
    for name in names:
        assert name in last["error"]["message"] and name in r.stderr.replace("\n", ""), (name, last, r.stderr)
    assert "Traceback" not in r.stdout + r.stderr
    return last


def usage(*args: Any) -> None:
    r = cli(*args)
    assert r.exit_code == 2, (args, r.exit_code, r.stdout, r.stderr)
    assert "Traceback" not in r.stdout + r.stderr


def _command_paths(cmd: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    if hasattr(cmd, "commands"):  # a group (Typer's own Click classes, not click.Group)
        for name, sub in cmd.commands.items():
            yield from _command_paths(sub, (*prefix, name))
    else:
        yield prefix


ALL = sorted(_command_paths(typer.main.get_command(app)))
# Where each command's behaviour is tested below; a new command fails test_every_command_is_covered.
COVERED = {
    "enroll", "identify", "verify", "detect", "analyze", "threshold", "export", "import", "demo", "doctor",
    "retention", "calibrate", "index", "cluster", "serve", "video", "people list", "people show", "people rename",
    "people delete", "people delete-sample", "people merge", "people split", "models list", "models info",
    "models verify", "models fetch", "encrypt keygen", "encrypt status", "encrypt rotate", "eval pairs",
    "eval identify", "eval degrade", "eval fidelity", "eval liveness", "eval expression", "keys create",
    "keys list", "keys revoke", "calibrate-liveness", "challenge", "redact",
}


# -- fixtures: one enrolled gallery per module ------------------------------------------------------------
@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("contract")


@pytest.fixture(scope="module")
def gallery(work: Path) -> Path:
    need(KNN)
    db = work / "g.db"
    r = cli("enroll", KNN / "train", "--db", db, "--face", "largest", "--json")
    assert r.exit_code == 0, r.stderr
    got = rows(r)
    assert len(got) == 9 and {x["status"] for x in got} == {"added"}
    assert all(isinstance(x["sample_id"], int) and x["person"] and x["source"].endswith(("jpg", "jpeg"))
               for x in got)
    return db


@pytest.fixture(scope="module")
def bad_jpg(work: Path) -> Path:
    path = work / "corrupt.jpg"
    path.write_bytes(os.urandom(4096))
    return path


@pytest.fixture
def copy(gallery: Path, tmp_path: Path) -> Path:
    """A private copy of the enrolled gallery, for commands that change it."""
    dst = tmp_path / "copy.db"
    shutil.copyfile(gallery, dst)
    return dst


def _ids(db: Path) -> dict[str, int]:
    return {p["name"]: p["id"] for p in rows(cli("people", "list", "--db", db, "--json"))}


# -- the whole surface ----------------------------------------------------------------------------------------
def test_every_command_is_covered() -> None:
    assert {" ".join(p) for p in ALL} == COVERED


@pytest.mark.parametrize("path", ALL, ids=" ".join)
def test_help_has_plain_metavars_and_unknown_options_exit_2(path: tuple[str, ...]) -> None:
    r = cli(*path, "--help")
    assert r.exit_code == 0 and "Usage:" in r.stdout
    assert not [m for m in TYPER_METAVARS if m in r.stdout], r.stdout
    assert "{" not in r.stdout.split("Usage:")[1].split("\n")[0], r.stdout
    usage(*path, "--no-such-option")


def test_version_and_top_level_help() -> None:
    r = cli("--version")
    assert r.exit_code == 0 and r.stdout.startswith("facewise ")
    r = cli("--help")
    assert r.exit_code == 0 and "--version" in r.stdout and "<bool>" not in r.stdout


def test_corrupt_image_exits_3_in_every_image_command(gallery: Path, bad_jpg: Path) -> None:
    good = KNN / "test" / "obama1.jpg"
    for args in (("detect", bad_jpg, good), ("analyze", bad_jpg, good),
                 ("identify", bad_jpg, good, "--db", gallery)):
        r = cli(*args, "--json")
        assert r.exit_code == 3, (args, r.stdout, r.stderr)
        got = rows(r)
        err = [x for x in got if "error" in x]
        assert len(err) == 1 and err[0]["file"] == str(bad_jpg) and err[0]["error"]["code"] == "bad_image"
        faces = [x for x in got if "error" not in x]
        assert faces and all(x["file"] == str(good) and len(x["box"]) == 4 for x in faces)  # the rest still done
    failed(cli("verify", bad_jpg, good, "--json"), 3, "bad_image", "corrupt.jpg")
    r = cli("enroll", "--name", "x", bad_jpg, "--db", gallery, "--json")
    assert r.exit_code == 3 and rows(r)[0]["status"] == "rejected" and "corrupt.jpg" in rows(r)[0]["reason"]


# -- recognition --------------------------------------------------------------------------------------------
@pytest.mark.shared
def test_enroll_contract(tmp_path: Path) -> None:
    new = tmp_path / "new.db"  # enrol creates the gallery (documented), and refuses a two-face photo
    r = cli("enroll", "--name", "pair", KNN.parent / "two_people.jpg", "--db", new, "--json")
    assert r.exit_code == 3 and rows(r)[0]["status"] == "rejected" and "faces" in rows(r)[0]["reason"]
    r = cli("enroll", "--name", "pair", KNN.parent / "two_people.jpg", "--db", new, "--face", "0", "--json")
    assert r.exit_code == 0 and rows(r)[0]["status"] == "added"
    failed(cli("enroll", "--db", new, "--json"), 2, "invalid_value")
    failed(cli("enroll", tmp_path / "nope", "--db", tmp_path / "other.db", "--json"), 5, "not_found", "nope")
    assert not (tmp_path / "other.db").exists()
    timeline = tmp_path / "timeline.json"
    timeline.write_text('{"tracks": 3}')
    failed(cli("enroll", "--from-track", f"{timeline}:1", "--name", "x", "--db", new, "--json"), 3, "bad_input",
           "timeline.json")
    failed(cli("enroll", "--from-track", f"{tmp_path / 'none.json'}:1", "--name", "x", "--db", new, "--json"), 5,
           "not_found", "none.json")
    failed(cli("enroll", "--from-track", f"{timeline}:one", "--name", "x", "--db", new, "--json"), 2,
           "invalid_value", "TIMELINE_JSON:TRACK_ID")
    failed(cli("enroll", "--name", "x", KNN / "test" / "obama1.jpg", "--face", "two", "--db", new, "--json"), 2,
           "invalid_value", "--face")


def test_identify_contract(gallery: Path, tmp_path: Path) -> None:
    r = cli("identify", KNN / "test" / "kit_with_rose.jpg", "--db", gallery, "--json")
    assert r.exit_code == 0, r.stderr
    faces = rows(r)
    assert sorted(f["person"] for f in faces) == ["kit_harington", "rose_leslie"]
    for f in faces:
        assert len(f["box"]) == 4 and 0 < f["score"] <= 1 and f["threshold"] > 0 and isinstance(f["person_id"], int)
    missing = tmp_path / "galery.db"
    failed(cli("identify", KNN / "test" / "obama1.jpg", "--db", missing, "--json"), 5, "not_found", "galery.db")
    assert not missing.exists()
    failed(cli("identify", KNN / "test" / "obama1.jpg", "--db", gallery, "-c", "typo", "--json"), 5, "not_found",
           "typo")
    usage("identify", KNN / "test" / "obama1.jpg", "--db", gallery, "--top-k", "x")
    usage("identify", KNN / "test" / "obama1.jpg", "--db", gallery, "--top-k", "0")


def test_identify_annotated_copies_never_overwrite(gallery: Path, tmp_path: Path) -> None:
    for d, src in (("a", "test/obama1.jpg"), ("b", "train/biden/biden.jpg")):
        (tmp_path / d).mkdir()
        shutil.copyfile(KNN / src, tmp_path / d / "photo.jpg")
    r = cli("identify", tmp_path / "a", tmp_path / "b", "--db", gallery, "--annotate", tmp_path / "out", "--json")
    assert r.exit_code == 0, r.stderr
    assert {f["person"] for f in rows(r)} == {"obama", "biden"}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["photo-2.jpg", "photo.jpg"]


def test_verify_contract(gallery: Path, tmp_path: Path) -> None:
    obama, two = KNN / "test" / "obama1.jpg", KNN.parent / "two_people.jpg"
    r = cli("verify", obama, KNN / "train" / "obama" / "obama.jpg", "--json")
    assert r.exit_code == 0
    v = rows(r)[0]
    assert v["same"] is True and v["score"] >= v["threshold"] and v["profile"] == "default"
    assert [len(f["box"]) for f in v["faces"]] == [4, 4]
    assert cli("verify", obama, KNN / "train" / "biden" / "biden.jpg").exit_code == 10
    failed(cli("verify", two, obama, "--json"), 3, "multiple_faces", "two_people.jpg")  # no silent largest face
    r = cli("verify", two, obama, "--face", "largest", "--json")
    assert r.exit_code in (0, 10) and len(rows(r)[0]["faces"]) == 2
    faces = rows(cli("detect", two, "--json"))
    largest = max(faces, key=lambda f: (f["box"][2] - f["box"][0]) * (f["box"][3] - f["box"][1]))
    assert rows(r)[0]["faces"][0]["box"] == largest["box"]  # the face the answer is about, by its box
    failed(cli("verify", two, obama, "--face", "9", "--json"), 2, "invalid_value", "out of range")
    failed(cli("verify", obama, two, "--json"), 3, "multiple_faces", "two_people.jpg", "--other-face")
    r = cli("verify", obama, two, "--other-face", "1", "--json")  # one face, then the second of two
    assert r.exit_code in (0, 10) and rows(r)[0]["faces"][1] == {"index": 1, "box": faces[1]["box"]}
    failed(cli("verify", obama, two, "--other-face", "x", "--json"), 2, "invalid_value", "--other-face")
    ids = _ids(gallery)
    for ref in ("obama", str(ids["obama"]), f"#{ids['obama']}", f"id:{ids['obama']}"):
        r = cli("verify", obama, "--person", ref, "--db", gallery, "--json")
        assert r.exit_code == 0 and rows(r)[0]["same"] is True, (ref, r.stdout, r.stderr)
    failed(cli("verify", obama, "--person", "ghost", "--db", gallery, "--json"), 5, "not_found", "ghost")
    failed(cli("verify", obama, "--person", "obama", "--db", tmp_path / "no.db", "--json"), 5, "not_found")
    assert not (tmp_path / "no.db").exists()
    failed(cli("verify", obama, "--json"), 2, "invalid_value")


@pytest.mark.shared
def test_require_live_without_the_model_is_exit_4(tmp_path: Path) -> None:
    env = {**os.environ, "FACEWISE_MODEL_PATH": str(tmp_path), "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path)}
    r = subprocess.run([sys.executable, "-m", "facewise.cli", "verify", str(KNN / "test" / "obama1.jpg"),
                        str(KNN / "train" / "obama" / "obama.jpg"), "--require-live", "--json"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 4, r.stderr
    assert json.loads(r.stdout)["error"]["code"] == "model_not_found" and "minifasnet" in r.stderr


@pytest.mark.shared
def test_detect_and_analyze_contract(tmp_path: Path) -> None:
    img = KNN / "test" / "kit_with_rose.jpg"
    r = cli("detect", img, "--json")
    assert r.exit_code == 0
    assert len(rows(r)) == 2 and all(len(f["box"]) == 4 and len(f["landmarks"]) == 5 and 0 <= f["quality"] <= 1
                                     for f in rows(r))
    r = cli("analyze", img, "--json")
    assert r.exit_code == 0 and len(rows(r)) == 2 and all("pose" in f and "quality_reasons" in f for f in rows(r))
    failed(cli("detect", tmp_path / "nope.jpg", "--json"), 3, "bad_image", "nope.jpg")
    failed(cli("analyze", tmp_path / "nope.jpg", "--json"), 3, "bad_image", "nope.jpg")
    usage("detect")
    usage("analyze", img, "--profile")


def test_threshold_export_import(gallery: Path, tmp_path: Path, bad_jpg: Path) -> None:
    r = cli("threshold", "--db", gallery, "--json")
    assert r.exit_code == 0 and 0 < rows(r)[0]["threshold"] < 1 and rows(r)[0]["source"]
    failed(cli("threshold", "--far", "5", "--db", gallery, "--json"), 2, "invalid_value")
    failed(cli("threshold", "--db", tmp_path / "no.db", "--json"), 5, "not_found", "no.db")
    exp = tmp_path / "g.json.gz"
    r = cli("export", exp, "--db", gallery, "--json")
    assert r.exit_code == 0 and rows(r)[0]["exported"] == 9 and exp.is_file()
    failed(cli("export", tmp_path / "x.json", "--db", tmp_path / "no.db", "--json"), 5, "not_found")
    assert not (tmp_path / "no.db").exists() and not (tmp_path / "x.json").exists()
    new = tmp_path / "new.db"
    r = cli("import", exp, "--db", new, "-c", "copied", "--json")
    assert r.exit_code == 0 and rows(r)[0] == {"file": str(exp), "imported": 9, "collection": "copied",
                                               "profile": "default"}
    assert len(rows(cli("people", "list", "--db", new, "-c", "copied", "--json"))) == 5
    fast_db, fast_exp = tmp_path / "fast.db", tmp_path / "fast.json"  # a new collection takes the export's profile
    assert cli("enroll", "--name", "obama", KNN / "train" / "obama" / "obama.jpg", "--db", fast_db, "-p", "fast",
               "--json").exit_code == 0
    assert cli("export", fast_exp, "--db", fast_db).exit_code == 0
    r = cli("import", fast_exp, "--db", new, "-c", "f", "--json")
    assert r.exit_code == 0 and rows(r)[0]["profile"] == "fast" and rows(r)[0]["imported"] == 1
    failed(cli("import", fast_exp, "--db", new, "-c", "copied", "--json"), 2, "profile_mismatch")  # `default` there
    failed(cli("import", bad_jpg, "--db", new, "--json"), 3, "bad_export", "corrupt.jpg")
    failed(cli("import", tmp_path / "none.json", "--db", tmp_path / "n2.db", "--json"), 5, "not_found")
    assert not (tmp_path / "n2.db").exists()
    usage("import")


@pytest.mark.shared
def test_demo_contract(tmp_path: Path, bad_jpg: Path) -> None:
    r = cli("demo", "--train", KNN / "train", "--test", KNN / "test" / "obama1.jpg", "--out", tmp_path / "d")
    assert r.exit_code == 0, r.stderr
    assert "obama" in r.stdout and (tmp_path / "d" / "annotated" / "obama1.jpg").is_file()
    r = cli("demo", "--train", KNN / "train", "--test", bad_jpg, "--out", tmp_path / "d")
    assert r.exit_code == 3 and "corrupt.jpg" in r.stderr
    r = cli("demo", "--train", tmp_path / "none", "--test", KNN / "test", "--out", tmp_path / "d")
    assert r.exit_code == 5 and "none" in r.stderr
    usage("demo", "--train")


# -- people -----------------------------------------------------------------------------------------------
def test_people_contract(copy: Path, tmp_path: Path) -> None:
    listed = rows(cli("people", "list", "--db", copy, "--json"))
    assert len(listed) == 5 and all({"id", "name", "samples", "created_at"} <= set(p) for p in listed)
    ids = {p["name"]: p["id"] for p in listed}
    for ref in (str(ids["biden"]), f"#{ids['biden']}", f"id:{ids['biden']}", "biden"):
        r = cli("people", "show", ref, "--db", copy, "--json")
        assert r.exit_code == 0 and rows(r)[0]["name"] == "biden" and len(rows(r)[0]["sample_list"]) == 2, ref
    r = cli("people", "rename", f"#{ids['rose_leslie']}", "rose", "--db", copy, "--json")
    assert r.exit_code == 0 and rows(r)[0] == {**rows(r)[0], "id": ids["rose_leslie"], "name": "rose"}
    sample = rows(cli("people", "show", "rose", "--db", copy, "--json"))[0]["sample_list"][0]["id"]
    r = cli("people", "delete-sample", sample, "--db", copy, "--json")
    assert r.exit_code == 0 and rows(r)[0] == {"deleted_sample": sample}
    failed(cli("people", "delete-sample", sample, "--db", copy, "--json"), 5, "not_found")
    r = cli("people", "merge", "biden", str(ids["obama"]), "--db", copy, "--json")  # collection `default`
    assert r.exit_code == 0 and rows(r)[0]["name"] == "obama" and rows(r)[0]["samples"] == 4
    obama = rows(cli("people", "show", "obama", "--db", copy, "--json"))[0]["sample_list"]
    moved = [s["id"] for s in obama if "biden" in s["source"]]
    r = cli("people", "split", "obama", "--samples", ",".join(map(str, moved)), "--name", "biden2", "--db", copy,
            "--json")
    assert r.exit_code == 0 and [(p["name"], p["samples"]) for p in rows(r)] == [("biden2", 2)]
    r = cli("people", "delete", f"id:{ids['kit_harington']}", "--db", copy, "--json")
    assert r.exit_code == 0 and rows(r)[0] == {"deleted": "kit_harington", "id": ids["kit_harington"], "samples": 2}
    assert {p["name"] for p in rows(cli("people", "list", "--db", copy, "--json"))} == {
        "alex_lacamoire", "biden2", "obama", "rose"}
    for args in (("show", "ghost"), ("rename", "ghost", "x"), ("delete", "#999"), ("merge", "ghost", "obama"),
                 ("split", "ghost")):
        failed(cli("people", *args, "--db", copy, "--json"), 5, "not_found")
    missing = tmp_path / "no.db"
    for args in (("list",), ("show", "obama"), ("rename", "obama", "x"), ("delete", "obama"),
                 ("delete-sample", "1"), ("merge", "a", "b"), ("split", "a")):
        failed(cli("people", *args, "--db", missing, "--json"), 5, "not_found", "no.db")
    assert not missing.exists()
    failed(cli("people", "split", "obama", "--samples", "a,b", "--db", copy, "--json"), 2, "invalid_value",
           "--samples")
    usage("people", "delete-sample", "x", "--db", copy)
    usage("people", "list", "--limit", "0", "--db", copy)


# -- models -----------------------------------------------------------------------------------------------
@pytest.mark.shared
def test_models_contract() -> None:
    got = rows(cli("models", "list", "--json"))
    kinds = {x["kind"] for x in got}
    assert kinds == {"model", "profile", "search_path"}
    assert any(x["kind"] == "profile" and x["name"] == "default" and x["available"] for x in got)
    r = cli("models", "info", "yunet-2023mar")
    assert r.exit_code == 0 and rows(r)[0]["id"] == "yunet-2023mar" and rows(r)[0]["files"][0]["found"]
    failed(cli("models", "info", "nope"), 4, "model_not_found", "nope")
    r = cli("models", "verify", "yunet-2023mar", "--json")
    assert r.exit_code == 0 and rows(r)[0]["ok"] is True and rows(r)[0]["model"] == "yunet-2023mar"
    failed(cli("models", "verify", "nope", "--json"), 4, "model_not_found")
    r = cli("models", "fetch", "yunet-2023mar", "--json")  # present on the model path: nothing downloaded
    assert r.exit_code == 0 and Path(rows(r)[0]["path"]).is_file()
    failed(cli("models", "fetch", "nope", "--json"), 4, "model_not_found")
    r = cli("models", "fetch", "--profile", "fast", "--analysis", "--json")  # a profile's set + analysis models
    got = rows(r)
    assert r.exit_code == 0 and {x["model"] for x in got} == {"yunet-2023mar", "reid-0095", "minifasnet-v2-v1se",
                                                             "fsanet"}
    assert all(Path(x["path"]).is_file() and x["downloaded"] is False for x in got)
    failed(cli("models", "fetch", "--profile", "nope", "--json"), 2, "invalid_value", "nope")
    failed(cli("models", "fetch", "--json"), 2, "invalid_value", "--profile")
    usage("models", "fetch", "yunet-2023mar", "--timeout", "0")


# -- care of the data -------------------------------------------------------------------------------------
def test_doctor_encrypt_retention(copy: Path, tmp_path: Path, bad_jpg: Path) -> None:
    r = cli("doctor", "--db", copy, "--json")
    assert r.exit_code == 0 and rows(r)[0] == {"db": str(copy), "healthy": True, "problems": []}
    r = cli("doctor", "--db", bad_jpg, "--json")
    assert r.exit_code == 6 and rows(r)[0]["healthy"] is False and rows(r)[0]["problems"]
    failed(cli("doctor", "--db", tmp_path / "no.db", "--json"), 5, "not_found", "no.db")
    key = tmp_path / "k.key"
    assert cli("encrypt", "keygen", key).exit_code == 0 and key.is_file()
    assert cli("encrypt", "keygen", key).exit_code != 0  # never overwrites a key
    r = cli("encrypt", "status", "--db", copy, "--json")
    assert r.exit_code == 0 and rows(r)[0]["encrypted"] is False
    failed(cli("encrypt", "rotate", "--db", copy, "--json"), 2, "invalid_value")
    r = cli("encrypt", "rotate", "--db", copy, "--new-key-file", key, "--json")
    assert r.exit_code == 0 and rows(r)[0]["samples"] == 9
    r = cli("encrypt", "status", "--db", copy, "--json", env={"FACEWISE_KEY_FILE": str(key)})
    assert r.exit_code == 0 and rows(r)[0]["encrypted"] is True and rows(r)[0]["key_matches"] is True
    for args in (("encrypt", "status"), ("encrypt", "rotate", "--decrypt"), ("retention",)):
        failed(cli(*args, "--db", tmp_path / "no.db", "--json"), 5, "not_found", "no.db")
    r = cli("retention", "--db", copy, "--days", "30", "--dry-run", "--json")
    assert r.exit_code == 0 and rows(r)[0]["dry_run"] is True and rows(r)[0]["collections"][0]["days"] == 30
    failed(cli("retention", "--db", copy, "--days", "3", "--clear", "--json"), 2, "invalid_value")
    failed(cli("retention", "--db", copy, "-c", "typo", "--json"), 5, "not_found", "typo")


# -- scale: index and cluster -----------------------------------------------------------------------------
@pytest.mark.shared
def test_index_and_cluster(tmp_path: Path, bad_jpg: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("obama1.jpg", "kit_with_rose.jpg"):
        shutil.copyfile(KNN / "test" / name, photos / name)
    shutil.copyfile(bad_jpg, photos / "corrupt.jpg")
    db = tmp_path / "i.db"
    r = cli("index", photos, "--db", db, "--workers", "1", "--json")
    assert r.exit_code == 0, r.stderr
    rep = rows(r)[0]
    assert rep["photos"] == 3 and rep["errors"] == 1 and rep["faces_added"] == 3
    r = cli("cluster", "--db", db, "--json")
    assert r.exit_code == 0 and rows(r)[0]["faces"] == 3
    failed(cli("cluster", "--db", tmp_path / "no.db", "--json"), 5, "not_found", "no.db")
    failed(cli("cluster", "--db", db, "-c", "typo", "--json"), 5, "not_found", "typo")
    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    shutil.copyfile(bad_jpg, only_bad / "x.jpg")
    assert cli("index", only_bad, "--db", tmp_path / "b.db", "--workers", "1", "--json").exit_code == 3
    failed(cli("index", photos, "--db", db, "--layout", "flat", "--json"), 2, "invalid_value", "--layout")


# -- video ------------------------------------------------------------------------------------------------
def test_video_contract(gallery: Path, tmp_path: Path, bad_jpg: Path) -> None:
    clip = need(KNN.parent / "short_hamilton_clip.mp4")
    r = cli("video", clip, "--db", gallery, "--duration", "1", "--stride", "5", "--no-video", "--out",
            tmp_path / "v", "--json")
    assert r.exit_code == 0, r.stderr
    res = rows(r)[-1]
    assert res["complete"] is True and res["error"] is None and isinstance(res["tracks"], list)
    assert (tmp_path / "v" / "timeline.json").is_file()
    failed(cli("video", clip, "--db", tmp_path / "no.db", "--json"), 5, "not_found", "no.db")
    assert not (tmp_path / "no.db").exists()
    failed(cli("video", clip, "--db", gallery, "-c", "typo", "--json"), 5, "not_found", "typo")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(bad_jpg.read_bytes())
    r = cli("video", broken, "--db", gallery, "--out", tmp_path / "v2", "--json")
    assert r.exit_code == 3 and "broken.mp4" in r.stderr and rows(r)[-1]["error"]["code"] == "bad_video"
    usage("video", clip, "--db", gallery, "--stride", "0")
    failed(cli("video", clip, "--db", gallery, "--stride", "2", "--fps", "5", "--json"), 2, "invalid_value")


def test_redact_contract(gallery: Path, tmp_path: Path, bad_jpg: Path) -> None:
    good = KNN / "test" / "obama1.jpg"
    r = cli("redact", good, "--out", tmp_path / "o.jpg", "--json")
    assert r.exit_code == 0, r.stderr
    assert rows(r)[0]["kind"] == "image" and (tmp_path / "o.jpg.json").is_file()
    failed(cli("redact", bad_jpg, "--out", tmp_path / "b.jpg", "--json"), 3, "bad_image", "corrupt.jpg")
    failed(cli("redact", good, "--out", good, "--json"), 2, "invalid_value", "is the input")
    failed(cli("redact", good, "--out", tmp_path / "u.jpg", "--mode", "unknown", "--json"), 2, "invalid_value")
    failed(cli("redact", good, "--out", tmp_path / "u.jpg", "--mode", "unknown", "--db", tmp_path / "no.db",
               "--json"), 5, "not_found", "no.db")
    assert not (tmp_path / "no.db").exists()
    failed(cli("redact", good, "--out", tmp_path / "u.jpg", "--only", "nobody-here", "--db", gallery, "--json"),
           5, "not_found", "nobody-here")
    usage("redact", good, "--out", tmp_path / "s.jpg", "--strength", "0")
    failed(cli("redact", good, "--out", tmp_path / "s.jpg", "--style", "swirl", "--json"), 2, "invalid_value")


# -- evaluation -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pairs_csv(work: Path) -> Path:
    t = KNN / "train"
    lines = [f"{t}/obama/obama.jpg,{t}/obama/obama2.jpg,1", f"{t}/biden/biden.jpg,{t}/biden/biden2.jpg,1",
             f"{t}/obama/obama.jpg,{t}/biden/biden.jpg,0", f"{t}/kit_harington/john1.jpeg,{t}/biden/biden2.jpg,0"]
    path = work / "pairs.csv"
    path.write_text("path1,path2,same\n" + "\n".join(lines) + "\n")
    return path


@pytest.mark.shared
def test_eval_pairs_and_degrade(pairs_csv: Path, tmp_path: Path) -> None:
    r = cli("eval", "pairs", "--pairs", pairs_csv, "--format", "csv", "--n-boot", "10", "--cache", tmp_path,
            "--json")
    assert r.exit_code == 0, r.stderr
    rep = rows(r)[0]
    assert rep["profile"] == "default" and rep["pairs"] == 4 and 0 <= rep["accuracy"] <= 1 and "auc" in rep
    four = tmp_path / "four.csv"
    four.write_text(pairs_csv.read_text() + "a.jpg,b.jpg,1,extra\n")
    failed(cli("eval", "pairs", "--pairs", four, "--format", "csv", "--json"), 3, "bad_pair_list", "four.csv:6",
           "3 columns")
    lfw = tmp_path / "pairs.txt"
    lfw.write_text("1 1\nAaron 1 2\nAaron 1 Bob\n")
    failed(cli("eval", "pairs", "--pairs", lfw, "--json"), 3, "bad_pair_list", "pairs.txt:3")
    failed(cli("eval", "pairs", "--pairs", tmp_path / "none.txt", "--json"), 5, "not_found", "none.txt")
    failed(cli("eval", "pairs", "--pairs", pairs_csv, "--format", "xml", "--json"), 2, "invalid_value", "--format")
    failed(cli("eval", "pairs", "--pairs", pairs_csv, "--format", "csv", "--no-face", "skip", "--json"), 2,
           "invalid_value", "--no-face")
    r = cli("eval", "degrade", "--pairs", pairs_csv, "--format", "csv", "--cache", tmp_path, "--json")
    assert r.exit_code == 0, r.stderr
    assert rows(r)[0]["pairs"] == 4 and "results" in rows(r)[0]
    failed(cli("eval", "degrade", "--pairs", four, "--format", "csv", "--json"), 3, "bad_pair_list", "four.csv:6")
    usage("eval", "degrade")


@pytest.mark.shared
def test_eval_identify_fidelity_calibrate(tmp_path: Path, bad_jpg: Path) -> None:
    r = cli("eval", "identify", KNN / "train", "--cache", tmp_path, "--json")
    assert r.exit_code == 0, r.stderr
    assert {"rank1", "rank5", "mated_probes", "nonmated_probes"} <= set(rows(r)[0])
    failed(cli("eval", "identify", tmp_path / "none", "--json"), 5, "not_found", "none")
    recon = tmp_path / "recon"
    shutil.copytree(KNN / "train" / "obama", recon)
    r = cli("eval", "fidelity", KNN / "train" / "obama", recon, "--json")
    assert r.exit_code == 0 and rows(r)[0]["pairs"] == 2 and rows(r)[0]["share_above_threshold"] == 1.0
    failed(cli("eval", "fidelity", KNN / "train" / "obama", tmp_path / "none", "--json"), 5, "not_found", "none")
    shutil.copyfile(bad_jpg, recon / "obama.jpg")
    r = cli("eval", "fidelity", KNN / "train" / "obama", recon, "--json")
    assert r.exit_code == 3 and rows(r)[0]["unreadable"] == 1 and rows(r)[0]["pairs"] == 1  # the rest measured
    usage("eval", "fidelity", KNN / "train" / "obama", recon, "--far", "x")
    r = cli("calibrate", "--folder", KNN / "train", "--cache", tmp_path, "--json")
    assert r.exit_code == 0, r.stderr
    cal = rows(r)[0]
    assert cal["profile"] == "default" and cal["genuine"] > 0 and cal["thresholds"][0]["far"] == 0.1
    failed(cli("calibrate", "--json"), 2, "invalid_value", "--folder")
    failed(cli("calibrate", "--folder", KNN / "train", "--db", tmp_path / "no.db", "--cache", tmp_path, "--json"), 5,
           "not_found")


def test_eval_liveness_and_expression(tmp_path: Path) -> None:
    apfol = need(DATA / "liveness" / "apfol" / "dataset")
    root = tmp_path / "live"
    for kind in ("real", "fake"):
        (root / kind).mkdir(parents=True)
        for f in sorted((apfol / kind).iterdir())[:3]:
            shutil.copyfile(f, root / kind / f.name)
    r = cli("eval", "liveness", "--root", root, "--size", "112", "--json")
    assert r.exit_code == 0, r.stderr
    assert {"apcer", "bpcer", "acer", "eer"} <= set(rows(r)[0]) and rows(r)[0]["n_real"] == 3
    failed(cli("eval", "liveness", "--root", tmp_path / "none", "--json"), 5, "not_found", "none")
    fer = need(DATA / "fer2013" / "validation")
    expr = tmp_path / "fer"
    for c in ("happy", "sad"):
        (expr / c).mkdir(parents=True)
        for f in sorted((fer / c).iterdir())[:4]:
            shutil.copyfile(f, expr / c / f.name)
    r = cli("eval", "expression", "--root", expr, "--json")
    assert r.exit_code == 0 and rows(r)[0]["images"] == 8 and 0 <= rows(r)[0]["accuracy"] <= 1
    failed(cli("eval", "expression", "--root", tmp_path / "none", "--json"), 5, "not_found", "none")
    (expr / "sad" / "broken.jpg").write_bytes(os.urandom(100))
    failed(cli("eval", "expression", "--root", expr, "--json"), 3, "bad_image", "broken.jpg")
    usage("eval", "liveness")


# -- service: keys and a real server ----------------------------------------------------------------------
def test_keys_contract(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    failed(cli("keys", "list", "--db", db, "--json"), 5, "not_found", "k.db")
    assert not db.exists()
    failed(cli("keys", "create", "--db", db, "--name", "x", "--scope", "root", "--json"), 2, "invalid_value",
           "--scope")
    r = cli("keys", "create", "--db", db, "--name", "kiosk", "--scope", "recognize", "--json")
    assert r.exit_code == 0 and rows(r)[0]["token"].startswith("fw_")
    key_id = rows(r)[0]["key"]["id"]
    r = cli("keys", "list", "--db", db, "--json")
    assert r.exit_code == 0 and [(k["id"], k["name"]) for k in rows(r)] == [(key_id, "kiosk")]
    r = cli("keys", "revoke", key_id, "--db", db, "--json")
    assert r.exit_code == 0 and rows(r)[0] == {"revoked": key_id}
    failed(cli("keys", "revoke", "nope", "--db", db, "--json"), 5, "not_found", "nope")
    usage("keys", "create", "--db", db, "--name", "x")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_starts_and_stops(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    usage("serve", "--port", "eighty")
    usage("serve", "--port", "70000")
    port, db = _free_port(), tmp_path / "s.db"
    proc = subprocess.Popen([sys.executable, "-m", "facewise.cli", "serve", "--db", str(db), "--port", str(port),
                             "--key-file", str(tmp_path / "admin.key")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline, status = time.monotonic() + 120, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code
                break
            except httpx.TransportError:
                time.sleep(0.5)
        assert status == 200, proc.stderr.read() if proc.poll() is not None else "no answer"
        assert db.is_file() and (tmp_path / "admin.key").is_file()  # serve creates its gallery and first key
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert proc.returncode in (0, -15)


# -- the Python API takes PIL images ----------------------------------------------------------------------
@pytest.mark.shared
def test_api_takes_pil_images_with_exif_orientation(tmp_path: Path) -> None:
    from PIL import Image

    from facewise import FaceWise

    src = KNN / "test" / "obama1.jpg"
    upright = Image.open(src)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display": the stored pixels lie on their side
    upright.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "side.jpg", exif=exif, quality=95)
    with FaceWise(db=None) as fw:
        fw.enroll("obama", [Image.open(KNN / "train" / "obama" / "obama.jpg")])
        for im in (upright, Image.open(tmp_path / "side.jpg")):
            got = fw.identify(im)
            assert [r.person for r in got] == ["obama"]
        assert fw.verify(Image.open(tmp_path / "side.jpg"), src).same
        faces = fw.detect(Image.open(tmp_path / "side.jpg").convert("RGBA"))
        assert len(faces) == 1


def test_calibrate_liveness_and_challenge(tmp_path: Path, bad_jpg: Path) -> None:
    need(MODELS)
    real = sorted(need(DATA / "liveness" / "apfol" / "dataset" / "real").iterdir())
    folder = tmp_path / "live"
    folder.mkdir()
    for src in real[:3]:  # too few bona fide faces: bad input, named
        shutil.copyfile(src, folder / src.name)
    shutil.copyfile(bad_jpg, folder / "b.jpg")
    out = tmp_path / "thr.json"
    failed(cli("calibrate-liveness", folder, "--out", out, "--json"), 3, "bad_input", "at least 10")
    assert not out.exists()
    for src in real[3:14]:
        shutil.copyfile(src, folder / src.name)
    r = cli("calibrate-liveness", folder, "--out", out, "--json")
    assert r.exit_code == 0, (r.stdout, r.stderr)
    assert out.is_file() and 0.0 <= json.loads(out.read_text())["threshold"] <= 1.0
    failed(cli("calibrate-liveness", tmp_path / "nowhere", "--out", out, "--json"), 5, "not_found", "nowhere")
    assert cli("calibrate-liveness", folder, "--out", out, "--target-bpcer", "2").exit_code == 2
    failed(cli("challenge", str(tmp_path / "no.mp4"), "--json"), 5, "not_found", "no.mp4")
    failed(cli("challenge", str(bad_jpg), "--steps", "sideways", "--json"), 2, "invalid_value", "sideways")
    assert cli("challenge", str(bad_jpg), "--random", "0").exit_code == 2
