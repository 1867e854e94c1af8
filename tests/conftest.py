"""Shared fixtures: real models from FACEWISE_MODEL_PATH and real data from FACEWISE_DATA."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("FACEWISE_DATA", str(REPO.parent / "shared" / "data")))
MODELS = Path(os.environ.get("FACEWISE_MODEL_PATH", str(REPO.parent / "shared" / "models")).split(os.pathsep)[0])
os.environ.setdefault("FACEWISE_MODEL_PATH", str(MODELS))
KNN = DATA / "video" / "face_recognition_examples" / "examples" / "knn_examples"
LFW = DATA / "lfw"
# Browser tests' screenshots: a temp folder, so `make test` changes no tracked file; `make screenshots` points
# this at docs/screenshots to refresh the ones the docs show.
SCREENSHOTS = Path(os.environ.get("SCREENSHOTS_DIR") or Path(tempfile.gettempdir()) / "facewise-screenshots")


SHARED_PATHS = {"data": DATA, "models": MODELS, "knn": KNN, "lfw": LFW}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "shared(*what): needs the shared data or models (data, models, knn, lfw); "
                                       "skipped, naming the missing folder, on a machine without them")


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("shared"):
        for what in mark.args or ("data", "models"):
            need(SHARED_PATHS[what])


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is not available (set FACEWISE_DATA / FACEWISE_MODEL_PATH)")
    return path


@pytest.fixture(scope="session")
def knn() -> Path:
    return need(KNN)


@pytest.fixture(scope="session")
def lfw() -> Path:
    return need(LFW)


@pytest.fixture(scope="session")
def models_dir() -> Path:
    return need(MODELS)


@pytest.fixture(scope="session")
def default_pipeline():
    from facewise.core.pipeline import Pipeline

    return Pipeline("default").load()


@pytest.fixture(scope="session")
def fast_pipeline(models_dir):
    from facewise.core.pipeline import Pipeline

    return Pipeline("fast").load()
