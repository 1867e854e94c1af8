"""`facewise models fetch`: a profile's whole model set from a local file server standing in for the public URLs
(FACEWISE_MODEL_MIRROR), then `detect --profile fast` with only the fetched cache on the search path; offline one
message per missing file and exit 4; a corrupted download deleted and refused; manual files say how to make them."""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import KNN, MODELS, REPO, need
from facewise.errors import ModelNotFoundError
from facewise.models import catalogue
from facewise.models.profiles import load_profile, profile_names

CLOSED = "http://127.0.0.1:9"  # discard port: nothing listens there
FAST_FILES = [f.path for m in load_profile("fast").models for f in catalogue.card(m).files]


class _Server:
    """A threaded HTTP file server on 127.0.0.1 over ``root``, counting the requests it answers."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: list[str] = []
        outer = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                outer.requests.append(self.path)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def mirror(tmp_path: Path) -> Iterator[_Server]:
    """Copies of the fast profile's shared model files, laid out as the cards' paths."""
    root = tmp_path / "mirror"
    for rel in FAST_FILES:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(need(MODELS / rel), root / rel)
    server = _Server(root)
    yield server
    server.stop()


def _env(tmp_path: Path, mirror_url: str | None) -> dict[str, str]:
    """A machine with nothing on the model path: only the (empty) cache and the registry packages."""
    empty = tmp_path / "empty"
    empty.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "FACEWISE_MODEL_MIRROR"}
    env.update(PYTHONPATH=str(REPO / "src"), FACEWISE_MODEL_PATH=str(empty), FACEWISE_CACHE=str(tmp_path / "cache"),
               COLUMNS="250")
    if mirror_url:
        env["FACEWISE_MODEL_MIRROR"] = mirror_url
    return env


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "facewise.cli", *args], env=env, capture_output=True, text=True,
                          timeout=300)


def _lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(x) for x in out.splitlines() if x.strip()]


def test_fetch_profile_fast_then_detect_with_only_the_cache(tmp_path: Path, mirror: _Server) -> None:
    env = _env(tmp_path, mirror.url)
    image = need(KNN / "test" / "obama_and_biden.jpg")
    r = _cli(env, "detect", "--profile", "fast", str(image), "--json")
    assert r.returncode == 4, r.stderr  # before the fetch: the detector is missing
    assert "face_detection_yunet_2023mar.onnx" in r.stderr and "models fetch" in r.stderr

    r = _cli(env, "models", "fetch", "--profile", "fast", "--json")
    assert r.returncode == 0, r.stderr
    got = _lines(r.stdout)
    assert sorted(x["file"] for x in got) == sorted(FAST_FILES)
    assert all(x["downloaded"] for x in got)
    for rel in FAST_FILES:
        cached = tmp_path / "cache" / rel
        assert catalogue.sha256_file(cached) == catalogue.sha256_file(MODELS / rel)
    assert sorted(mirror.requests) == sorted(f"/{rel}" for rel in FAST_FILES)
    assert not [p for p in (tmp_path / "cache").rglob(".*")]  # no temporary files left behind

    r = _cli(env, "models", "fetch", "--profile", "fast", "--json")  # already there: nothing downloaded again
    assert r.returncode == 0 and not any(x["downloaded"] for x in _lines(r.stdout))
    assert len(mirror.requests) == len(FAST_FILES)

    r = _cli(env, "detect", "--profile", "fast", str(image), "--json")
    assert r.returncode == 0, r.stderr
    faces = _lines(r.stdout)
    assert len(faces) >= 2 and all(f["det_score"] > 0.8 for f in faces[:2])

    states = {x["id"]: x["state"] for x in _lines(_cli(env, "models", "list", "--json").stdout) if x["kind"] == "model"}
    assert states["yunet-2023mar"] == states["reid-0095"] == states["dlib-resnet-v1"] == "available"
    assert states["fsanet"] == "fetchable"  # the mirror is set: anything can be asked of it


def test_offline_one_message_per_missing_file_and_exit_4(tmp_path: Path) -> None:
    env = _env(tmp_path, CLOSED)
    r = _cli(env, "models", "fetch", "--profile", "fast", "--analysis", "--json", "--timeout", "5")
    assert r.returncode == 4
    errors = _lines(r.stdout)
    wanted = FAST_FILES + [f.path for m in catalogue.ANALYSIS_MODELS for f in catalogue.card(m).files]
    assert sorted(e["file"] for e in errors) == sorted(wanted)
    for e in errors:
        f = next(x for m in [e["model"]] for x in catalogue.card(m).files if x.path == e["file"])
        msg = e["error"]["message"]
        assert e["error"]["code"] == "model_not_found"
        assert f"{CLOSED}/{f.path}" in msg and str(tmp_path / "cache" / f.path) in msg and f.sha256 in msg, msg
    assert r.stderr.count("error:") == len(wanted)
    assert "no public artefact equals it" in next(e["error"]["message"] for e in errors
                                                   if e["model"] == "minifasnet-v2-v1se")
    assert not (tmp_path / "cache").exists() or not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]


def test_manual_file_without_mirror_says_how_to_make_it(tmp_path: Path) -> None:
    env = _env(tmp_path, None)
    r = _cli(env, "models", "fetch", "mobilefacenet-y1")
    assert r.returncode == 4
    assert r.stderr.count("error:") == 2 and "no public download URL (manual)" in r.stderr
    assert "omz_converter" in r.stderr and "model-y1-0000.bin" in r.stderr
    states = {x["id"]: x["state"] for x in _lines(_cli(env, "models", "list", "--json").stdout) if x["kind"] == "model"}
    assert states["mobilefacenet-y1"] == states["minifasnet-v2-v1se"] == "manual"
    assert states["yunet-2023mar"] == states["reid-0095"] == states["scrfd-500m"] == "fetchable"
    assert states["dlib-hog"] == states["dlib-resnet-v1"] == "available"  # shipped by the registry packages


def test_corrupted_download_is_deleted_and_refused(tmp_path: Path, mirror: _Server) -> None:
    yunet = "detection/face_detection_yunet_2023mar.onnx"
    served = mirror.root / yunet
    served.write_bytes(served.read_bytes()[:-100] + b"\0" * 100)  # same size, wrong bytes
    env = _env(tmp_path, mirror.url)
    r = _cli(env, "models", "fetch", "yunet-2023mar", "--json")
    assert r.returncode == 4
    (e,) = _lines(r.stdout)
    assert e["error"]["code"] == "model_integrity" and "deleted and refused" in e["error"]["message"]
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]  # nothing kept, no temporary file


def test_oversized_download_is_cut_off(tmp_path: Path, mirror: _Server) -> None:
    yunet = mirror.root / "detection/face_detection_yunet_2023mar.onnx"
    yunet.write_bytes(yunet.read_bytes() + b"\0" * (3 << 20))  # more than the card's size
    r = _cli(_env(tmp_path, mirror.url), "models", "fetch", "yunet-2023mar", "--json")
    assert r.returncode == 4
    (e,) = _lines(r.stdout)
    assert e["error"]["code"] == "model_integrity" and "larger than the 232589 bytes" in e["error"]["message"]
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]


def test_missing_manual_model_says_how_to_make_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FACEWISE_MODEL_PATH", str(tmp_path))
    monkeypatch.setenv("FACEWISE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("FACEWISE_MODEL_MIRROR", raising=False)
    with pytest.raises(ModelNotFoundError, match=r"no public download URL: .*Silent-Face-Anti-Spoofing.*\.pth"):
        catalogue.resolve("minifasnet-v2-v1se")
    with pytest.raises(ModelNotFoundError, match=r"run `facewise models fetch fsanet`"):
        catalogue.resolve("fsanet")


def test_analyze_says_why_liveness_is_missing(tmp_path: Path) -> None:
    image = str(need(KNN / "test" / "obama1.jpg"))
    r = _cli(_env(tmp_path, None), "analyze", image)
    assert r.returncode == 0, r.stderr
    assert "liveness is n/a: model minifasnet-v2-v1se is not on the model path" in r.stderr
    assert "head pose comes from the five landmarks: model fsanet" in r.stderr
    env = _env(tmp_path, None)
    env["FACEWISE_MODEL_PATH"] = str(MODELS)
    r = _cli(env, "analyze", image)
    assert r.returncode == 0 and "note:" not in r.stderr, r.stderr


def test_zip_member_is_extracted_and_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Cards whose public artefact is an archive (InsightFace's model packs) name the member to extract."""
    src = need(MODELS / "detection" / "scrfd_500m_kps.onnx")
    root = tmp_path / "www"
    root.mkdir()
    with zipfile.ZipFile(root / "pack.zip", "w") as zf:
        zf.write(src, "det_500m.onnx")
        zf.writestr("other.onnx", b"x")
    server = _Server(root)
    monkeypatch.setenv("FACEWISE_MODEL_PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("FACEWISE_MODEL_MIRROR", raising=False)
    try:
        c = catalogue.card("scrfd-500m")
        f = catalogue.ModelFile(c.files[0].path, c.files[0].sha256, c.files[0].size, f"{server.url}/pack.zip",
                                member="det_500m.onnx")
        got = catalogue._fetch_file(c, f, tmp_path / "cache", timeout=10)
        assert got.error is None and got.downloaded and got.path == tmp_path / "cache" / f.path
        assert catalogue.sha256_file(got.path) == c.files[0].sha256
        wrong = catalogue.ModelFile(f.path + ".2", f.sha256, f.size, f.url, member="other.onnx")
        bad = catalogue._fetch_file(c, wrong, tmp_path / "cache", timeout=10)
        assert bad.path is None and bad.error is not None and "refused" in str(bad.error)
        missing = catalogue.ModelFile(f.path + ".3", f.sha256, f.size, f.url, member="nope.onnx")
        assert "not a valid archive holding nope.onnx" in str(catalogue._fetch_file(c, missing, tmp_path, 10).error)
    finally:
        server.stop()


def test_every_profile_and_analysis_model_can_be_obtained() -> None:
    """Each file a profile or `analyze` uses has a public URL, a registry package or manual instructions, and its
    card's sha256 is the one of the shared copy (the file the project was measured with)."""
    used = {m for n in profile_names() for m in load_profile(n).models} | set(catalogue.ANALYSIS_MODELS)
    for m in sorted(used):
        for f in catalogue.card(m).files:
            assert f.url or f.package or (f.manual and len(f.manual) > 80), (m, f.path)
            assert not (f.url and f.manual), (m, f.path)
            shared = MODELS / f.path
            if shared.is_file():
                assert catalogue.sha256_file(shared) == f.sha256, (m, f.path)
                assert shared.stat().st_size == f.size, (m, f.path)
