"""A collection's export file (``FaceWise.export`` / ``facewise export``): its format marker and the one reader
that ``import`` trusts, bounded in what it decompresses."""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path
from typing import Any

from facewise import settings
from facewise.errors import BadInputError, NotFoundError

__all__ = ["EXPORT_FORMAT", "MAX_IMPORT_BYTES", "BadExportError", "read_export"]

EXPORT_FORMAT = "facewise-collection"
MAX_IMPORT_BYTES = 1 << 30  # an export read by import, once decompressed (FACEWISE_MAX_IMPORT_MB overrides)


def _export_bytes(path: str | os.PathLike[str], raw: bytes, cap: int) -> bytes:
    """The export's JSON bytes: ``.gz`` members decompressed a bounded piece at a time, refused past ``cap``."""
    too_big = f"{path}: the export decompresses to more than {cap >> 20} MiB (set FACEWISE_MAX_IMPORT_MB to allow it)"
    if raw[:2] != b"\x1f\x8b":
        if len(raw) > cap:
            raise BadExportError(f"{path}: the export is larger than {cap >> 20} MiB (set FACEWISE_MAX_IMPORT_MB "
                                 "to allow it)")
        return raw
    out = bytearray()
    data = raw
    while data:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        out += d.decompress(data, cap + 1 - len(out))
        while d.unconsumed_tail and len(out) <= cap:
            out += d.decompress(d.unconsumed_tail, cap + 1 - len(out))
        if len(out) > cap:
            raise BadExportError(too_big)
        if not d.eof:
            raise BadExportError(f"{path}: not a facewise export (the compressed data is truncated)")
        data = d.unused_data.lstrip(b"\0")
    return bytes(out)


def read_export(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The document of a ``FaceWise.export`` file (.json or .json.gz); a missing file is a
    :class:`NotFoundError`, anything else than an export a :class:`BadExportError` (exit 3), and so is one larger
    than ``FACEWISE_MAX_IMPORT_MB`` once decompressed (never decompressed whole first)."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise NotFoundError(f"{path}: no such file") from None
    except OSError as exc:
        raise BadExportError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    try:
        doc = json.loads(_export_bytes(path, raw, settings.max_import_bytes(MAX_IMPORT_BYTES)))
    except (ValueError, OSError, EOFError, zlib.error) as exc:
        raise BadExportError(f"{path}: not a facewise export ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != EXPORT_FORMAT:
        raise BadExportError(f"{path}: not a facewise export (missing format marker)")
    if not isinstance(doc.get("collection"), dict) or not isinstance(doc.get("persons"), list):
        raise BadExportError(f"{path}: not a facewise export (no collection or persons)")
    return doc


class BadExportError(BadInputError):
    """A file given to ``import`` is not a readable facewise export: bad input (exit 3, HTTP 422)."""

    code = "bad_export"
