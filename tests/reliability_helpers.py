"""Shared by the reliability tests: synthetic samples, CLI runs, raw-file searches and an in-process service."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from facewise.gallery import NewSample

CLI_TIMEOUT = 180


def unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def new_sample(person: str, vec: np.ndarray, sha: str, **meta: Any) -> NewSample:
    return NewSample(person=person, image_sha256=sha, embedding=vec, model="m", source=f"{sha}.jpg",
                     metadata=meta or None)


def run_cli(*args: str | bytes, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = CLI_TIMEOUT) -> subprocess.CompletedProcess:
    """``python -m facewise.cli ARGS`` with a wide terminal (one error = one line)."""
    full = {**os.environ, "COLUMNS": "250", **(env or {})}
    return subprocess.run([sys.executable, "-m", "facewise.cli", *args], capture_output=True, env=full,
                          timeout=timeout, cwd=cwd)


def text(b: bytes) -> str:
    return b.decode("utf-8", "replace")


def raw_bytes(db: Path) -> bytes:
    """The gallery file and its write-ahead log, as an attacker with the disk would read them."""
    data = db.read_bytes()
    wal = db.with_name(db.name + "-wal")
    if wal.exists():
        data += wal.read_bytes()
    return data


def service_app(tmp: Path, **config: Any) -> tuple[Any, str]:
    """An in-process ``facewise serve`` app over ``tmp/gallery.db`` and an admin token."""
    from facewise.service.app import create_app
    from facewise.service.auth import KeySpec, KeyStore
    from facewise.service.config import RateLimit, ServiceConfig

    cfg = ServiceConfig(db=tmp / "gallery.db", rate=RateLimit(rate=10_000, burst=10_000), workers=2,
                        key_file=tmp / "admin-key", **config)
    app = create_app(cfg)
    keys = KeyStore(cfg.db)
    _, token = keys.create(KeySpec("tests", ("admin",)), created_by="tests")
    keys.close()
    return app, token
