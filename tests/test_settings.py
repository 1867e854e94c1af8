"""Environment variables are read in one place (facewise.settings), checked, and named when wrong."""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

import pytest

from conftest import KNN, MODELS, need
from facewise import settings
from facewise.core.imageio import load_image, max_pixels
from facewise.errors import ImageError, SettingsError
from facewise.gallery.crypto import key_from_env
from facewise.models import catalogue, runtime
from reliability_helpers import run_cli, text

SRC = Path(__file__).resolve().parents[1] / "src" / "facewise"
ENV_NAMES = {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}
# The documented exceptions: (file under src/facewise, source line) that may touch os.environ.
ALLOWED = {
    ("batch/indexing.py", 'os.environ.setdefault("OMP_NUM_THREADS", "1")'),  # sets it for worker processes
}


def _env_uses(path: Path) -> list[tuple[int, str]]:
    """(line, source) of every os.environ / os.getenv / `from os import environ` in a module."""
    source = path.read_text()
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        attribute = isinstance(node, ast.Attribute) and node.attr in ENV_NAMES
        imported = isinstance(node, ast.ImportFrom) and node.module == "os" and {a.name for a in node.names} & ENV_NAMES
        if attribute or imported:
            found.append(node.lineno)
    return [(n, lines[n - 1].strip()) for n in sorted(set(found))]


def test_only_settings_reads_the_environment() -> None:
    uses = {(str(p.relative_to(SRC)), line) for p in SRC.rglob("*.py") if p.name != "settings.py"
            for _, line in _env_uses(p)}
    assert uses - ALLOWED == set(), "read environment variables through facewise.settings"
    assert uses == ALLOWED, f"documented exception no longer needed, drop it from ALLOWED: {ALLOWED - uses}"


def test_the_scan_sees_every_spelling(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text('import os\nfrom os import getenv\na = os.environ["X"]\nb = os.getenv("Y")\n"""os.environ"""\n')
    assert [n for n, _ in _env_uses(probe)] == [2, 3, 4]  # the docstring is not a read


def test_every_facewise_variable_in_src_is_listed_in_settings() -> None:
    named = {m for p in SRC.rglob("*.py") for m in re.findall(r"\bFACEWISE_[A-Z_]+\b", p.read_text())}
    assert named, "the scan found no variable at all"
    assert named <= set(settings.VARIABLES), sorted(named - set(settings.VARIABLES))


def test_cache_and_model_path_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("FACEWISE_CACHE", raising=False)
    monkeypatch.delenv("FACEWISE_EVAL_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert catalogue.cache_dir() == tmp_path / "xdg" / "facewise" / "models"
    assert settings.eval_cache_dir() == tmp_path / "xdg" / "facewise" / "eval"
    monkeypatch.setenv("FACEWISE_CACHE", "")  # empty counts as unset
    assert catalogue.cache_dir() == tmp_path / "xdg" / "facewise" / "models"
    monkeypatch.setenv("FACEWISE_CACHE", str(tmp_path / "c"))
    monkeypatch.setenv("FACEWISE_EVAL_CACHE", str(tmp_path / "e"))
    assert catalogue.cache_dir() == tmp_path / "c"
    assert settings.eval_cache_dir() == tmp_path / "e"
    monkeypatch.setenv("FACEWISE_MODEL_PATH", os.pathsep.join([str(tmp_path / "a"), "", str(tmp_path / "b")]))
    assert catalogue.search_path()[:3] == [tmp_path / "a", tmp_path / "b", tmp_path / "c"]


def test_thread_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEWISE_THREADS", "3")
    assert runtime.default_threads() == 3
    monkeypatch.delenv("FACEWISE_THREADS")
    assert 1 <= runtime.default_threads() <= 4
    for bad in ("x", "0", "-2", "1.5"):
        monkeypatch.setenv("FACEWISE_THREADS", bad)
        with pytest.raises(SettingsError, match=f"FACEWISE_THREADS={bad!r}: expected a positive integer"):
            runtime.default_threads()


def test_max_pixels_limit_applies_to_real_images(monkeypatch: pytest.MonkeyPatch) -> None:
    photo = need(KNN / "test" / "obama1.jpg")
    monkeypatch.delenv("FACEWISE_MAX_PIXELS", raising=False)
    assert max_pixels() == 80_000_000
    monkeypatch.setenv("FACEWISE_MAX_PIXELS", "1000")
    with pytest.raises(ImageError, match="exceeds the limit of 1000"):
        load_image(photo)
    monkeypatch.setenv("FACEWISE_MAX_PIXELS", "lots")
    with pytest.raises(SettingsError, match="FACEWISE_MAX_PIXELS='lots'"):
        load_image(photo)


def test_key_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("FACEWISE_KEY", raising=False)
    monkeypatch.setenv("FACEWISE_KEY_FILE", "")
    assert settings.key_env() == {}
    assert key_from_env() is None
    key_file = tmp_path / "k"
    key_file.write_bytes(bytes(range(32)))
    key_file.chmod(0o600)
    monkeypatch.setenv("FACEWISE_KEY_FILE", str(key_file))
    assert key_from_env() == bytes(range(32))


def test_cli_names_a_bad_variable_without_a_traceback() -> None:
    need(MODELS)
    photo = str(need(KNN / "test" / "obama1.jpg"))
    r = run_cli("verify", photo, photo, "-p", "fast", env={"FACEWISE_THREADS": "many"})
    assert r.returncode == 2, text(r.stderr)
    assert "FACEWISE_THREADS='many': expected a positive integer" in text(r.stderr)
    assert "Traceback" not in text(r.stderr)
