"""The README's Python quick start runs as written, on real photos, and the package ships its type marker."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from conftest import KNN, need

REPO = Path(__file__).resolve().parents[1]


def _quick_start() -> str:
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)
    assert blocks, "README.md has no Python quick start"
    return str(blocks[0])


def test_readme_quick_start_runs_on_real_images(tmp_path: Path) -> None:
    code = _quick_start()
    # The README's file names, played by knn_examples photos: ada is Obama; group.jpg shows Obama and Biden.
    photos = {"ada1.jpg": "train/obama/obama.jpg", "ada2.jpg": "train/obama/obama2.jpg",
              "group.jpg": "test/obama_and_biden.jpg", "a.jpg": "test/obama1.jpg", "b.jpg": "train/obama/obama.jpg"}
    for name in re.findall(r"\"(\w+\.jpg)\"", code):
        assert name in photos, f"the quick start names {name}: give it a real photo here"
    for name, rel in photos.items():
        shutil.copyfile(need(KNN / rel), tmp_path / name)
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    names = [line for line in lines if not line.startswith("Verification(")]
    assert len(names) >= 2, r.stdout  # Obama, Biden (and a face in the background)
    assert sum(" ada " in line for line in names) == 1, r.stdout  # Obama, once
    assert sum(" unknown " in line for line in names) == len(names) - 1, r.stdout  # nobody else is ada
    assert lines[-1].startswith("Verification(") and "same=True" in lines[-1], r.stdout
    assert (tmp_path / "gallery.db").is_file()


def test_py_typed_ships_with_the_package() -> None:
    assert (REPO / "src" / "facewise" / "py.typed").is_file()
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "py.typed" in meta["tool"]["setuptools"]["package-data"]["facewise"]
