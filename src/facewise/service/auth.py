"""API keys, scopes, per-key rate limits and the audit log, in the gallery's SQLite file.

A key is ``fw_<id>_<secret>``: ``id`` is public (it names the key in lists and logs), ``secret``
is 32 random bytes. Only the sha256 of the whole token is stored; a presented token is looked
up by its id and its hash compared with :func:`hmac.compare_digest`.

Scopes: ``admin`` (everything, keys and collections included), ``enroll`` (create, rename and
delete people, add and delete faces; implies ``read``), ``recognize`` (identify, verify, detect,
analyse, video jobs), ``read`` (list and show). A key is bound to collection names or ``*``;
managing keys needs ``admin`` on ``*``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import math
import os
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from facewise.errors import FacewiseError, NotFoundError, ValidationError
from facewise.gallery.maintenance import ERASED, Erasure
from facewise.gallery.names import check_collection_name, check_text

log = logging.getLogger(__name__)

SCOPES = ("admin", "enroll", "recognize", "read")
IMPLIED = {"admin": set(SCOPES), "enroll": {"enroll", "read"}, "recognize": {"recognize"}, "read": {"read"}}
ALL = "*"
TOKEN_PREFIX = "fw_"
RATE_RANGE = (0.001, 100_000.0)  # a key's requests per second
BURST_RANGE = (1, 1_000_000)  # a key's bucket size

SCHEMA = """
CREATE TABLE IF NOT EXISTS service_keys(
  id TEXT PRIMARY KEY, name TEXT NOT NULL, hash TEXT NOT NULL, scopes TEXT NOT NULL, collections TEXT NOT NULL,
  rate REAL, burst INTEGER, created_at TEXT NOT NULL, created_by TEXT NOT NULL DEFAULT '',
  last_used_at TEXT, revoked_at TEXT);
CREATE TABLE IF NOT EXISTS service_audit(
  id INTEGER PRIMARY KEY, ts TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
  collection TEXT, target TEXT, detail TEXT NOT NULL DEFAULT '{}', remote TEXT);
CREATE INDEX IF NOT EXISTS service_audit_ts ON service_audit(ts);
"""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class KeySpec:
    """What a new key may do."""

    name: str
    scopes: tuple[str, ...]
    collections: tuple[str, ...] = (ALL,)
    rate: float | None = None  # requests/second; None = the server's default
    burst: int | float | None = None  # validate() gives an int (a JSON body may say 40.0)

    def validate(self) -> KeySpec:
        """The spec as stored, or a :class:`ValidationError` (422 ``invalid_value``, exit 2) naming the rule: the
        name follows facewise's name rules (``gallery/names.py``), each collection is a valid collection name or
        ``*``, rate and burst are finite and inside :data:`RATE_RANGE` / :data:`BURST_RANGE`."""
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValidationError("a key's name must be 1..100 printable characters")
        name = check_text(self.name.strip(), "key name").strip()
        if not name or len(name) > 100:
            raise ValidationError("a key's name must be 1..100 printable characters")
        bad = [s for s in self.scopes if s not in SCOPES]
        if bad or not self.scopes:
            raise ValidationError(f"scopes must be some of {', '.join(SCOPES)} (got {', '.join(bad) or 'none'})")
        if not self.collections:
            raise ValidationError("a key needs at least one collection name, or *")
        collections = tuple(dict.fromkeys(c if c == ALL else check_collection_name(c) for c in self.collections))
        return KeySpec(name, tuple(dict.fromkeys(self.scopes)), collections,
                       _in_range("rate", self.rate, RATE_RANGE), _in_range("burst", self.burst, BURST_RANGE, True))


def _in_range(what: str, value: object, bounds: tuple[float, float], integer: bool = False) -> Any:
    """``value`` (None: the server's default) if it is a finite number inside ``bounds``."""
    if value is None:
        return None
    lo, hi = bounds
    shown = (f"{int(lo)}..{int(hi)}" if integer else f"{lo:g}..{hi:.0f}")
    rule = f"{what} must be {'an integer' if integer else 'a number'} in {shown}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"{rule} (got {str(value)[:40]!r})")
    if not math.isfinite(value) or not lo <= value <= hi or (integer and value != int(value)):
        raise ValidationError(f"{rule} (got {value!r:.40})")
    return int(value) if integer else float(value)


@dataclass(frozen=True)
class Principal:
    """An authenticated key: what it may do and where."""

    key_id: str
    name: str
    scopes: frozenset[str]
    collections: frozenset[str]
    rate: float | None = None
    burst: int | None = None

    def has(self, scope: str) -> bool:
        return any(scope in IMPLIED[s] for s in self.scopes if s in IMPLIED)

    def can_access(self, collection: str) -> bool:
        return ALL in self.collections or collection in self.collections

    @property
    def global_admin(self) -> bool:
        return "admin" in self.scopes and ALL in self.collections

    def to_dict(self) -> dict[str, Any]:
        return {"key_id": self.key_id, "name": self.name, "scopes": sorted(self.scopes),
                "collections": sorted(self.collections)}


@dataclass(frozen=True)
class ApiKey:
    """A key as the store keeps it and the REST API shows it (never its token); also the response schema."""

    id: str
    name: str
    scopes: list[str]
    collections: list[str]
    rate: float | None
    burst: int | None
    created_at: str
    created_by: str
    last_used_at: str | None
    revoked_at: str | None

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class AuditEvent:
    """One line of the audit log; ``actor`` is a key id (or ``cli``)."""

    actor: str
    action: str
    collection: str | None = None
    target: str | None = None
    detail: dict[str, Any] | None = None
    remote: str | None = None


class KeyStore:
    """Keys and audit log. Thread-safe; a separate connection to the gallery file (WAL)."""

    def __init__(self, path: str | Path, timeout: float = 30.0) -> None:
        self.path = str(path)
        self._db = sqlite3.connect(self.path, timeout=timeout, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        self._lock = threading.RLock()
        self._touched: dict[str, float] = {}
        with self._lock:
            self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _write(self, sql: str, args: tuple[Any, ...]) -> sqlite3.Cursor:
        with self._lock:
            return self._db.execute(sql, args)

    # -- keys -----------------------------------------------------------------------------------
    def create(self, spec: KeySpec, created_by: str) -> tuple[ApiKey, str]:
        """A new key and its token. The token is returned once and never stored."""
        spec = spec.validate()
        key_id = secrets.token_hex(6)
        token = f"{TOKEN_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        self._write("INSERT INTO service_keys(id, name, hash, scopes, collections, rate, burst, created_at, "
                    "created_by) VALUES(?,?,?,?,?,?,?,?,?)",
                    (key_id, spec.name, hash_token(token), json.dumps(list(spec.scopes)),
                     json.dumps(list(spec.collections)), spec.rate, spec.burst, _now(), created_by))
        self.audit(AuditEvent(created_by, "key.create", target=key_id,
                              detail={"name": spec.name, "scopes": list(spec.scopes),
                                      "collections": list(spec.collections)}))
        log.info("created key %s (%s) with scopes %s", key_id, spec.name, ",".join(spec.scopes))
        return self.get(key_id), token

    def _row(self, key_id: str) -> tuple[Any, ...] | None:
        with self._lock:
            row: tuple[Any, ...] | None = self._db.execute(
                "SELECT id, name, scopes, collections, rate, burst, created_at, created_by, last_used_at, "
                "revoked_at, hash FROM service_keys WHERE id=?", (key_id,)).fetchone()
            return row

    @staticmethod
    def _info(r: tuple[Any, ...]) -> ApiKey:
        return ApiKey(r[0], r[1], json.loads(r[2]), json.loads(r[3]), r[4], r[5], r[6], r[7], r[8], r[9])

    def get(self, key_id: str) -> ApiKey:
        row = self._row(key_id)
        if row is None:
            raise NotFoundError(f"key {key_id!r} does not exist")
        return self._info(row)

    def list_keys(self, include_revoked: bool = True) -> list[ApiKey]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, name, scopes, collections, rate, burst, created_at, created_by, last_used_at, "
                "revoked_at FROM service_keys ORDER BY created_at, id").fetchall()
        keys = [self._info(r) for r in rows]
        return keys if include_revoked else [k for k in keys if k.revoked_at is None]

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM service_keys").fetchone()[0])

    def revoke(self, key_id: str, by: str) -> ApiKey:
        with self._lock:
            cur = self._db.execute("UPDATE service_keys SET revoked_at=? WHERE id=? AND revoked_at IS NULL",
                                   (_now(), key_id))
            if cur.rowcount == 0:
                self.get(key_id)  # raises NotFoundError if it never existed
                raise FacewiseError(f"key {key_id!r} is already revoked")
        self.audit(AuditEvent(by, "key.revoke", target=key_id))
        log.info("revoked key %s", key_id)
        return self.get(key_id)

    def authenticate(self, token: str) -> Principal | None:
        """The key a token belongs to, or ``None`` (unknown, revoked, malformed)."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        key_id = token[len(TOKEN_PREFIX):].split("_", 1)[0]
        row = self._row(key_id)
        presented = hash_token(token)
        if row is None:
            hmac.compare_digest(presented, presented)  # same work either way
            return None
        if not hmac.compare_digest(presented, row[10]) or row[9] is not None:
            return None
        self._touch(key_id)
        return Principal(row[0], row[1], frozenset(json.loads(row[2])), frozenset(json.loads(row[3])), row[4], row[5])

    def _touch(self, key_id: str) -> None:
        """Record last use, at most once a minute per key (no write per request)."""
        now = time.monotonic()
        if now - self._touched.get(key_id, -1e9) < 60:
            return
        self._touched[key_id] = now
        self._write("UPDATE service_keys SET last_used_at=? WHERE id=?", (_now(), key_id))

    # -- audit ----------------------------------------------------------------------------------
    def audit(self, event: AuditEvent) -> int:
        """Write one audit row; returns its id."""
        cur = self._write("INSERT INTO service_audit(ts, actor, action, collection, target, detail, remote) "
                          "VALUES(?,?,?,?,?,?,?)",
                          (_now(), event.actor, event.action, event.collection, event.target,
                           json.dumps(event.detail or {}), event.remote))
        return int(cur.lastrowid or 0)

    def erase_audit_row(self, row_id: int) -> None:
        """Blank one row's payload (it named someone erased before the row was written)."""
        self._write("UPDATE service_audit SET detail=? WHERE id=?", (ERASED, row_id))

    def erase(self, event: Erasure) -> None:
        """An :class:`~facewise.gallery.maintenance.ErasureHooks` listener: blank the payloads that named what
        was erased (the same rows the triggers in ``service/erasure.py`` blank when the gallery shares this file;
        this one reaches a gallery kept elsewhere too). The audit keeps that something happened, not to whom."""
        if event.whole_collection:
            self._write("UPDATE service_audit SET detail=? WHERE collection=? "
                        "AND (action LIKE 'person.%' OR action LIKE 'face.%')", (ERASED, event.collection))
            return
        if event.person_id is not None:
            self._write("UPDATE service_audit SET detail=? WHERE collection=? AND target=? "
                        "AND (action LIKE 'person.%' OR action = 'face.enroll')",
                        (ERASED, event.collection, str(event.person_id)))
        for sid in event.sample_ids:
            self._write("UPDATE service_audit SET detail=? WHERE collection=? AND target=? AND action='face.delete'",
                        (ERASED, event.collection, str(sid)))

    def audit_log(self, offset: int = 0, limit: int = 100, collection: str | None = None) -> list[dict[str, Any]]:
        """Newest first."""
        q = "SELECT id, ts, actor, action, collection, target, detail, remote FROM service_audit"
        args: tuple[Any, ...] = ()
        if collection is not None:
            q += " WHERE collection=?"
            args = (collection,)
        with self._lock:
            rows = self._db.execute(q + " ORDER BY id DESC LIMIT ? OFFSET ?", (*args, limit, offset)).fetchall()
        return [{"id": r[0], "ts": r[1], "actor": r[2], "action": r[3], "collection": r[4], "target": r[5],
                 "detail": json.loads(r[6]), "remote": r[7]} for r in rows]


# -- bootstrap --------------------------------------------------------------------------------------
def write_secret_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by the owner only (0600), atomically."""
    import tempfile

    # mkstemp: a random name opened O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600, so nobody can plant the file or a link
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def bootstrap_admin(keys: KeyStore, key_file: Path, tty: bool) -> str | None:
    """On first start (no key at all), create an admin key and show it once.

    With a terminal the token is printed on stderr; without one it is written to ``key_file``
    (mode 0600) and only that path is logged. Returns where it went, or ``None`` if keys exist.
    """
    if keys.count() > 0:
        return None
    info, token = keys.create(KeySpec("bootstrap-admin", ("admin",), (ALL,)), created_by="bootstrap")
    if tty:
        import sys

        sys.stderr.write(
            "\n  facewise: first start — an admin API key was created. It is shown ONCE; store it now:\n\n"
            f"      {token}\n\n  (key id {info.id}; create more with `facewise keys create`, "
            "revoke this one when you have them)\n\n")
        sys.stderr.flush()
        log.warning("bootstrap admin key %s printed on the console", info.id)
        return "console"
    write_secret_file(key_file, token + "\n")
    log.warning("bootstrap admin key %s written to %s (mode 0600); read it, then delete the file", info.id,
                key_file)
    return str(key_file)


# -- rate limits --------------------------------------------------------------------------------------
class RateLimiter:
    """A token bucket per key, in memory (per process)."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, principal: Principal) -> float:
        """0 if the request may go, else the seconds to wait before retrying."""
        rate = principal.rate or self.rate
        burst = float(principal.burst or self.burst)
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(principal.key_id, (burst, now))
            tokens = min(burst, tokens + (now - last) * rate)
            if tokens >= 1.0:
                self._buckets[principal.key_id] = (tokens - 1.0, now)
                return 0.0
            self._buckets[principal.key_id] = (tokens, now)
            return (1.0 - tokens) / rate


class BusyLimiter:
    """Expensive requests each key has in progress: at most ``per_key`` run at once, up to ``waiting`` more wait
    (without holding a thread) up to ``wait_s`` seconds for their turn; beyond that the caller answers 429. One
    key's burst of heavy uploads cannot take every CPU worker, so other keys' requests still find one free."""

    def __init__(self, per_key: int, waiting: int = 16, wait_s: float = 60.0) -> None:
        self.per_key, self.waiting, self.wait_s = max(1, per_key), max(0, waiting), wait_s
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._waiting: dict[str, int] = {}

    async def acquire(self, key_id: str) -> bool:
        """Runs on the event loop only (no lock needed). ``False``: no slot now nor within ``wait_s``."""
        slot = self._slots.setdefault(key_id, asyncio.Semaphore(self.per_key))
        if not slot.locked():
            await slot.acquire()
            return True
        if self._waiting.get(key_id, 0) >= self.waiting:
            return False
        self._waiting[key_id] = self._waiting.get(key_id, 0) + 1
        try:
            await asyncio.wait_for(slot.acquire(), self.wait_s)
            return True
        except TimeoutError:
            return False
        finally:
            self._waiting[key_id] -= 1

    def release(self, key_id: str) -> None:
        self._slots[key_id].release()
