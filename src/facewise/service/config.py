"""Settings of one ``facewise serve`` process (limits, rate limits, CORS, where files go)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

MIB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """What one request may upload. Bytes are checked while the body arrives; pixels from the header."""

    max_image_bytes: int = 16 * MIB
    max_pixels: int = 40_000_000
    max_files: int = 20
    max_video_bytes: int = 200 * MIB
    max_page: int = 500

    @property
    def max_request_bytes(self) -> int:
        """Largest body of an image request: every file at its limit plus room for the form fields."""
        return self.max_image_bytes * self.max_files + MIB


@dataclass(frozen=True)
class RateLimit:
    """Token bucket per API key: ``rate`` requests per second on average, bursts of ``burst``."""

    rate: float = 10.0
    burst: int = 40


@dataclass(frozen=True)
class ServiceConfig:
    db: Path  # the service's own SQLite file (API keys, audit log, thumbnails); also the gallery unless `gallery`
    profile: str = "default"
    limits: Limits = field(default_factory=Limits)
    rate: RateLimit = field(default_factory=RateLimit)
    cors_origins: tuple[str, ...] = ()
    workers: int = 0  # CPU worker threads for image work; 0 = one per core
    thumbnails: bool = True  # keep a small JPEG of each enrolled face (shown by the web page)
    key_file: Path | None = None  # where the bootstrap key goes without a TTY; default <db>.admin-key
    jobs_dir: Path | None = None  # uploaded videos while their job runs; default <db>.jobs/
    gallery: str | None = None  # the gallery when it is not `db`: postgresql://… or milvus://… (gallery.open)

    @property
    def gallery_address(self) -> str:
        return self.gallery or str(self.db)

    @property
    def bootstrap_key_file(self) -> Path:
        return self.key_file or self.db.with_name(self.db.name + ".admin-key")

    @property
    def video_dir(self) -> Path:
        return self.jobs_dir or self.db.with_name(self.db.name + ".jobs")

    @property
    def cpu_workers(self) -> int:
        return self.workers if self.workers > 0 else max(1, os.cpu_count() or 1)
