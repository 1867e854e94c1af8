"""Settings of one ``facewise serve`` process (limits, rate limits, CORS, where files go)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

MIB = 1024 * 1024


KIB = 1024


@dataclass(frozen=True)
class Limits:
    """What one request may cost. Bytes are checked while the body arrives (declared length or not); pixels from
    the image headers before anything is decoded; video size and length when the file is opened."""

    max_image_bytes: int = 16 * MIB
    max_pixels: int = 40_000_000  # one image
    max_decode_bytes: int = 400 * MIB  # one image's decoding, estimated from its header (format, mode, size)
    max_request_pixels: int = 80_000_000  # all images of one request together (decoded one at a time)
    max_faces: int = 40  # faces analysed per image (largest first)
    max_files: int = 20
    max_video_bytes: int = 200 * MIB
    max_video_pixels: int = 3840 * 2160  # width x height of a video's frames
    max_video_seconds: float = 3600.0
    max_json_bytes: int = 64 * KIB  # body of a JSON route
    max_metadata_bytes: int = 16 * KIB  # a person's metadata, as JSON
    max_page: int = 500
    busy_per_key: int = 0  # expensive requests (uploads) one key may run at once; 0 = half the CPU workers, >= 1
    busy_waiting: int = 16  # more of them that may wait for a slot (429 beyond)

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
class JobLimits:
    """Video jobs: queued or running jobs per key and overall (429 beyond), and the longest a job may run."""

    per_key: int = 2
    total: int = 16
    max_seconds: float = 1800.0


@dataclass(frozen=True)
class LiveLimits:
    """Live camera sessions (the web page's webcam view): open sessions per key and overall (429 beyond), the
    longest a session lives, how long it may sit idle, and the frames it may send. Each frame is an image request
    under the key's concurrency budget, like identify."""

    per_key: int = 2
    total: int = 32
    max_seconds: float = 600.0
    idle_seconds: float = 60.0
    max_frames: int = 3000


@dataclass(frozen=True)
class ConnectionLimits:
    """What one connection may hold (``facewise serve``'s HTTP server): seconds for a request's head to arrive
    after the connection opens or its previous answer (then it is closed), seconds a body may go without a byte
    (408), seconds an idle keep-alive connection stays open, open connections at most (a request arriving while
    that many are open is answered 503; a connection beyond it is closed at once), bytes of a request head."""

    header_timeout: float = 10.0
    body_timeout: float = 30.0
    keep_alive: float = 5.0
    max_connections: int = 200
    max_header_bytes: int = 16 * KIB


@dataclass(frozen=True)
class ServiceConfig:
    db: Path  # the service's own SQLite file (API keys, audit log, thumbnails); also the gallery unless `gallery`
    profile: str = "default"
    limits: Limits = field(default_factory=Limits)
    rate: RateLimit = field(default_factory=RateLimit)
    jobs: JobLimits = field(default_factory=JobLimits)
    live: LiveLimits = field(default_factory=LiveLimits)
    trusted_proxies: tuple[str, ...] = ()  # addresses/networks whose X-Forwarded-For is believed; default none
    cors_origins: tuple[str, ...] = ()
    workers: int = 0  # CPU worker threads for image work; 0 = one per core
    thumbnails: bool = True  # keep a small JPEG of each enrolled face (shown by the web page)
    key_file: Path | None = None  # where the bootstrap key goes without a TTY; default <db>.admin-key
    jobs_dir: Path | None = None  # uploaded videos while their job runs; default <db>.jobs/
    gallery: str | None = None  # the gallery when it is not `db`: postgresql://… or milvus://… (gallery.open)
    connections: ConnectionLimits = field(default_factory=ConnectionLimits)

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

    @property
    def busy_per_key(self) -> int:
        """Expensive requests one key may run at once: at most half the CPU workers, so another key always has one."""
        return self.limits.busy_per_key if self.limits.busy_per_key > 0 else max(1, self.cpu_workers // 2)
