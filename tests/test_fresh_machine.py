"""`make demo` on a fresh machine: a clone without ../shared fetches the example photos (sha256-checked)
from a local file server standing in for the public URL; offline it prints one clear message."""

from __future__ import annotations

import functools
import http.server
import os
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import REPO

PORT_CLOSED = "http://127.0.0.1:9/knn_examples"  # discard port: nothing listens there


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # no access log in the test output
        pass


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """A clone of the committed tree in a folder with no ``shared`` beside it."""
    root = tmp_path_factory.mktemp("fresh")
    dest = root / "facewise"
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(REPO), str(dest)], check=True, timeout=120)
    assert not (root / "shared").exists()
    return dest


@pytest.fixture(scope="module")
def file_server(knn) -> Iterator[str]:
    """Serves the example photos over HTTP on 127.0.0.1, as the public URL would."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(knn)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _demo_command(clone: Path) -> list[str]:
    """The command `make demo` runs in the clone (dry run), with the venv's facewise as this interpreter."""
    r = subprocess.run(["make", "-n", "demo", f"VENV={Path(sys.executable).parent.parent}"], cwd=clone,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    line = next(x for x in r.stdout.splitlines() if "facewise demo" in x)
    args = shlex.split(line.split("facewise demo", 1)[1])
    assert "--train" not in args and "--test" not in args  # no ../shared: the demo finds its own photos
    return [sys.executable, "-m", "facewise.cli", "demo", *args]


def _env(clone: Path, cache: Path, url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FACEWISE_DATA", "FACEWISE_MODEL_PATH")}
    env.update(PYTHONPATH=str(clone / "src"), FACEWISE_CACHE=str(cache / "models"), FACEWISE_EXAMPLES_URL=url,
               COLUMNS="200")
    return env


def test_fresh_clone_demo_fetches_examples_and_names_people(clone, file_server, tmp_path):
    cache = tmp_path / "cache"
    r = subprocess.run(_demo_command(clone), cwd=clone, env=_env(clone, cache, file_server), capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "enrolled 9 photos of 5 people" in r.stdout
    for name in ("obama", "biden", "kit_harington", "rose_leslie", "alex_lacamoire"):
        assert name in r.stdout
    assert len(list((cache / "examples" / "knn_examples").rglob("*.jp*g"))) == 14
    assert len(list((clone / "demo-out" / "annotated").iterdir())) == 5


def test_fresh_clone_demo_offline_says_what_to_download(clone, tmp_path):
    r = subprocess.run(_demo_command(clone), cwd=clone, env=_env(clone, tmp_path / "cache", PORT_CLOSED),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr + r.stdout
    message = " ".join(r.stderr.split())
    assert "could not download the demo's example photos" in message
    assert "github.com/ageitgey/face_recognition" in message and str(tmp_path / "cache" / "examples") in message


def test_corrupted_download_is_refused_and_not_kept(tmp_path, file_server):
    from facewise.errors import ModelIntegrityError
    from facewise.models import examples

    bad = tmp_path / "srv"
    for rel in examples.FILES:
        (bad / rel).parent.mkdir(parents=True, exist_ok=True)
        (bad / rel).write_bytes(b"not the published photo")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(bad)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(ModelIntegrityError, match="does not match its sha256"):
            examples.fetch_examples(tmp_path / "dest", base_url=f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
    assert not any(p.is_file() for p in (tmp_path / "dest").rglob("*"))
