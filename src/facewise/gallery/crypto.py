"""Encryption at rest of biometric templates (AES-256-GCM), key handling and key rotation.

A gallery is either plaintext or encrypted as a whole. Every sealed blob is::

    MAGIC (4 bytes "FWE1") | key id (8 bytes) | nonce (12 bytes) | ciphertext | GCM tag (16 bytes)

The key id is the first 8 bytes of ``sha256(key)``: it names the key that sealed a blob without
revealing it, so a wrong key is reported as such rather than as corrupt data. The associated data
binds each blob to its row (collection, image and face for a sample; person for a template), so a
ciphertext copied onto another row does not decrypt.

The key comes from ``FACEWISE_KEY`` (base64 of 32 random bytes) or from the file named by
``FACEWISE_KEY_FILE`` (the same base64 text, or the 32 raw bytes). ``facewise encrypt keygen`` writes
a new key file (mode 0600); ``facewise encrypt rotate`` re-encrypts every blob of a gallery under a new
key (or encrypts a plaintext gallery, or decrypts one) in one transaction, then vacuums the file so
no old ciphertext or plaintext remains in free pages or the write-ahead log.

The in-memory search matrix holds plaintext vectors (search needs them); the file never does.
Needs the ``crypto`` extra (``pip install 'facewise[crypto]'``, the ``cryptography`` package).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import secrets
import sqlite3
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from facewise import settings
from facewise.errors import FacewiseError, install_hint

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

log = logging.getLogger(__name__)

MAGIC = b"FWE1"
KEY_BYTES = 32
KEY_ID_BYTES = 8
NONCE_BYTES = 12
TAG_BYTES = 16
OVERHEAD = len(MAGIC) + KEY_ID_BYTES + NONCE_BYTES + TAG_BYTES
ALGORITHM = "aes-256-gcm"
ENV_KEY = "FACEWISE_KEY"
ENV_KEY_FILE = "FACEWISE_KEY_FILE"
META_KEY = "encryption"  # meta row of the gallery: "aes-256-gcm:<key id hex>" when encrypted


class EncryptionKeyError(FacewiseError):
    """A key is missing, malformed, or not the one that sealed the data."""

    code = "encryption_key"


class DecryptionError(FacewiseError):
    """A sealed blob does not open (wrong key, tampered or moved ciphertext)."""

    code = "decryption_failed"


def _aesgcm(key: bytes) -> AESGCM:
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError:
        raise FacewiseError(f"encryption at rest needs the 'crypto' extra: {install_hint('crypto')}") from None
    return AESGCM(key)


def key_id_of(key: bytes) -> str:
    return hashlib.sha256(key).digest()[:KEY_ID_BYTES].hex()


class BlobCipher:
    """AES-256-GCM sealing of byte strings, each bound to its associated data."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise EncryptionKeyError(f"an encryption key is {KEY_BYTES} bytes; got {len(key)}")
        self._aead = _aesgcm(bytes(key))
        self._kid = bytes.fromhex(key_id_of(key))

    @property
    def key_id(self) -> str:
        return self._kid.hex()

    @property
    def marker(self) -> str:
        return f"{ALGORITHM}:{self.key_id}"

    def seal(self, data: bytes, aad: bytes) -> bytes:
        nonce = secrets.token_bytes(NONCE_BYTES)
        return MAGIC + self._kid + nonce + self._aead.encrypt(nonce, bytes(data), aad)

    def open(self, blob: bytes, aad: bytes) -> bytes:
        if not is_sealed(blob):
            raise DecryptionError("not an encrypted blob")
        kid = blob_key_id(blob)
        if kid != self.key_id:
            raise EncryptionKeyError(f"data was encrypted with key {kid}; the key given is {self.key_id}")
        start = len(MAGIC) + KEY_ID_BYTES
        nonce = blob[start:start + NONCE_BYTES]
        try:
            return self._aead.decrypt(nonce, blob[start + NONCE_BYTES:], aad)
        except Exception:  # cryptography's InvalidTag: tampered, truncated, or moved to another row
            raise DecryptionError("encrypted blob failed authentication (tampered, or moved to another row)") from None


def is_sealed(blob: bytes | memoryview | None) -> bool:
    return blob is not None and len(blob) >= OVERHEAD and bytes(blob[:len(MAGIC)]) == MAGIC


def blob_key_id(blob: bytes) -> str:
    return bytes(blob[len(MAGIC):len(MAGIC) + KEY_ID_BYTES]).hex()


def sample_aad(collection_id: int, image_sha256: str, face_index: int) -> bytes:
    """A sample's unique identity (not its person: clustering and merges legitimately move samples)."""
    return f"facewise/sample/{collection_id}/{image_sha256}/{face_index}".encode()


def template_aad(person_id: int) -> bytes:
    return f"facewise/template/{person_id}".encode()


def thumbnail_aad(sample_id: int, image_sha256: str) -> bytes:
    return f"facewise/thumbnail/{sample_id}/{image_sha256}".encode()


# -- keys ---------------------------------------------------------------------------------------------
def parse_key(text: bytes | str, where: str, allow_raw: bool = False) -> bytes:
    """A key from base64 text (or, from a file, its 32 raw bytes)."""
    raw = text.encode() if isinstance(text, str) else bytes(text)
    if allow_raw and len(raw) == KEY_BYTES:  # base64 of 32 bytes is 44 characters: no ambiguity
        return raw
    try:
        key = base64.b64decode(raw.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise EncryptionKeyError(f"{where}: not base64 of {KEY_BYTES} random bytes") from None
    if len(key) != KEY_BYTES:
        raise EncryptionKeyError(f"{where}: the key is {len(key)} bytes; it must be {KEY_BYTES} "
                                 "(base64 of 32 random bytes)")
    return key


def read_key_file(path: str | os.PathLike[str]) -> bytes:
    p = Path(path)
    try:
        mode = p.stat().st_mode
        data = p.read_bytes()
    except FileNotFoundError:
        raise EncryptionKeyError(f"{p}: key file not found") from None
    except OSError as exc:
        raise EncryptionKeyError(f"{p}: cannot read the key file ({exc.strerror})") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("key file %s is readable by others (mode %o); chmod 600 it", p, mode & 0o777)
    return parse_key(data, str(p), allow_raw=True)


def key_from_env(env: dict[str, str] | None = None) -> bytes | None:
    """The key named by ``FACEWISE_KEY`` or ``FACEWISE_KEY_FILE``; ``None`` if neither is set."""
    env = settings.key_env() if env is None else env
    if env.get(ENV_KEY):
        if env.get(ENV_KEY_FILE):
            raise EncryptionKeyError(f"set {ENV_KEY} or {ENV_KEY_FILE}, not both")
        return parse_key(env[ENV_KEY], ENV_KEY)
    if env.get(ENV_KEY_FILE):
        return read_key_file(env[ENV_KEY_FILE])
    return None


def cipher_from_env(env: dict[str, str] | None = None) -> BlobCipher | None:
    key = key_from_env(env)
    return None if key is None else BlobCipher(key)


def generate_key_file(path: str | os.PathLike[str]) -> str:
    """Write a new random key (base64) to ``path`` with mode 0600; refuses to overwrite. Returns its key id."""
    key = secrets.token_bytes(KEY_BYTES)
    p = Path(path)
    try:
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise FacewiseError(f"{p}: exists; a key file is never overwritten (a lost key is lost data)") from None
    try:
        os.write(fd, base64.b64encode(key) + b"\n")
    finally:
        os.close(fd)
    return key_id_of(key)


def no_key_error(where: str) -> EncryptionKeyError:
    return EncryptionKeyError(f"{where}: the gallery is encrypted at rest; set {ENV_KEY} or {ENV_KEY_FILE}")


def open_blob(cipher: BlobCipher | None, blob: bytes, aad: bytes, encrypted: bool, where: str) -> bytes:
    """The plaintext of a stored blob: as is in a plaintext gallery, decrypted in an encrypted one."""
    if not encrypted:
        return blob if isinstance(blob, bytes) else bytes(blob)
    if cipher is None:
        raise no_key_error(where)
    return cipher.open(blob, aad)


def bind_gallery(cur: sqlite3.Cursor, cipher: BlobCipher | None, where: str) -> bool:
    """At open, inside the schema transaction: is the gallery encrypted? Marks a new gallery encrypted when
    a key is given; refuses a wrong key, and a key for a gallery that already holds plaintext vectors."""
    row = cur.execute("SELECT value FROM meta WHERE key=?", (META_KEY,)).fetchone()
    if row is None:
        if cipher is None:
            return False
        if cur.execute("SELECT 1 FROM samples UNION ALL SELECT 1 FROM templates LIMIT 1").fetchone() is not None:
            raise EncryptionKeyError(
                f"{where}: a key is set ({ENV_KEY} / {ENV_KEY_FILE}) but the gallery holds unencrypted vectors; "
                f"encrypt them first: facewise encrypt rotate --db {where} --new-key-file FILE")
        cur.execute("INSERT INTO meta(key, value) VALUES(?, ?)", (META_KEY, cipher.marker))
        return True
    if cipher is not None and str(row[0]) != cipher.marker:
        raise EncryptionKeyError(f"{where}: the gallery is encrypted with key {str(row[0]).split(':')[-1]}; "
                                 f"the key given is {cipher.key_id}")
    return True


# -- whole-gallery operations --------------------------------------------------------------------------
@dataclass(frozen=True)
class RotationReport:
    samples: int
    templates: int
    thumbnails: int
    old: str  # "plaintext" or "aes-256-gcm:<key id>"
    new: str

    def to_dict(self) -> dict[str, Any]:
        return {"samples": self.samples, "templates": self.templates, "thumbnails": self.thumbnails,
                "from": self.old, "to": self.new}


def gallery_marker(db: sqlite3.Connection) -> str | None:
    row = db.execute("SELECT value FROM meta WHERE key=?", (META_KEY,)).fetchone()
    return None if row is None else str(row[0])


def _reseal(blob: bytes, aad: bytes, old: BlobCipher | None, new: BlobCipher | None) -> bytes:
    """``old`` is the gallery's current key (``None``: the gallery is plaintext)."""
    plain = bytes(blob) if old is None else old.open(blob, aad)
    return plain if new is None else new.seal(plain, aad)


def _has_table(db: sqlite3.Connection, name: str) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone() is not None


def rotate_gallery(path: str | os.PathLike[str], old: BlobCipher | None, new: BlobCipher | None,
                   timeout: float = 30.0) -> RotationReport:
    """Re-encrypt every vector of a gallery from ``old`` to ``new`` (``None`` = plaintext) in ONE transaction.

    The service's thumbnails are re-keyed as well (plaintext ones from before encryption are sealed).
    Afterwards the file is vacuumed and the write-ahead log truncated, so neither the old ciphertext nor
    any plaintext stays in free pages.
    """
    p = Path(path)
    if not p.is_file():
        raise FacewiseError(f"{p}: no such gallery file")
    db = sqlite3.connect(str(p), timeout=timeout, isolation_level=None)
    try:
        db.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        db.execute("PRAGMA secure_delete=ON")
        if not _has_table(db, "samples") or not _has_table(db, "meta"):
            raise FacewiseError(f"{p}: not a facewise gallery")
        db.execute("BEGIN IMMEDIATE")
        try:
            before = gallery_marker(db) or "plaintext"
            if before == "plaintext":
                old = None
            elif old is None:
                raise no_key_error(str(p))
            elif before != old.marker:
                raise EncryptionKeyError(f"{p}: the gallery is encrypted with key {before.split(':')[-1]}; "
                                         f"the current key given is {old.key_id}")
            n_s = n_t = n_th = 0
            rows = db.execute("SELECT id, collection_id, image_sha256, face_index, embedding FROM samples").fetchall()
            for sid, cid, sha, fi, blob in rows:
                db.execute("UPDATE samples SET embedding=? WHERE id=?",
                           (_reseal(blob, sample_aad(cid, sha, fi), old, new), sid))
                n_s += 1
            for pid, blob in db.execute("SELECT person_id, embedding FROM templates").fetchall():
                db.execute("UPDATE templates SET embedding=? WHERE person_id=?",
                           (_reseal(blob, template_aad(pid), old, new), pid))
                n_t += 1
            if _has_table(db, "service_thumbnails"):
                for sid, sha, blob in db.execute(
                        "SELECT sample_id, image_sha256, jpeg FROM service_thumbnails").fetchall():
                    sealed = is_sealed(blob)
                    if sealed and old is None:
                        continue  # sealed under a key this plaintext gallery does not know: left as is
                    if not sealed and new is None:
                        continue  # plaintext staying plaintext
                    db.execute("UPDATE service_thumbnails SET jpeg=? WHERE sample_id=? AND image_sha256=?",
                               (_reseal(blob, thumbnail_aad(sid, sha), old if sealed else None, new), sid, sha))
                    n_th += 1
            after = "plaintext" if new is None else new.marker
            if new is None:
                db.execute("DELETE FROM meta WHERE key=?", (META_KEY,))
            else:
                db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", (META_KEY, new.marker))
            db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key='generation'")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        scrub_file(db)
    except sqlite3.DatabaseError as exc:
        raise FacewiseError(f"{p}: {exc}") from None
    finally:
        db.close()
    log.info("re-encrypted %d samples, %d templates, %d thumbnails: %s -> %s", n_s, n_t, n_th, before, after)
    return RotationReport(n_s, n_t, n_th, before, after)


def scrub_file(db: sqlite3.Connection) -> None:
    """Rebuild the file without free pages and empty the write-ahead log (best effort under concurrent readers)."""
    try:
        db.execute("VACUUM")
    except sqlite3.OperationalError as exc:  # another connection holds a transaction
        log.warning("VACUUM skipped (%s); free pages are zeroed by secure_delete", exc)
    busy = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    if busy and busy[0]:
        log.warning("the write-ahead log could not be truncated now (readers active); it is on their next checkpoint")
