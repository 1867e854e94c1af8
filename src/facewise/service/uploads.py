"""Uploads: files read under their size limits, types sniffed from the content (never the file name). The body
budget of each route is checked before the body is read, by :mod:`facewise.service.gate`."""

from __future__ import annotations

import io
import logging
import os
import warnings
from collections.abc import Callable

from fastapi import UploadFile
from PIL import Image, UnidentifiedImageError

from facewise.core.imageio import FORMATS, DecodedImage, decode_bytes
from facewise.service.config import Limits
from facewise.service.errors import ApiError

log = logging.getLogger(__name__)

# Pillow plugins allowed to open an upload: core/imageio's list, the one the decoder itself uses.
IMAGE_FORMATS = list(FORMATS)

CHUNK = 1024 * 1024


def safe_name(name: str | None, fallback: str = "upload") -> str:
    """The file name a client gave, reduced to a short base name for logs and sample records."""
    base = os.path.basename((name or "").replace("\\", "/")).strip()
    base = "".join(c for c in base if c.isprintable())[:120]
    return base or fallback


async def read_limited(upload: UploadFile, limit: int) -> bytes:
    """An uploaded file's bytes; 413 as soon as it passes ``limit``."""
    parts, total = [], 0
    while chunk := await upload.read(CHUNK):
        total += len(chunk)
        if total > limit:
            raise ApiError(413, "payload_too_large",
                           f"{safe_name(upload.filename)}: file exceeds the {limit}-byte upload limit")
        parts.append(chunk)
    return b"".join(parts)


def decode_cost(fmt: str, mode: str, transparency: bool, pixels: int) -> int:
    """Bytes the decoder takes at its peak for such an image (measured with Pillow: a JPEG about 10 per pixel,
    a WebP 18, with alpha 30: its decoder's buffers, Pillow's, the alpha composite and the RGB array)."""
    alpha = mode in ("RGBA", "LA", "PA") or (mode == "P" and transparency)
    if fmt == "WEBP":
        per_pixel = 30 if alpha else 18
    else:
        per_pixel = 16 if alpha or mode in ("I;16", "I;16B", "I;16L", "I", "F") else 10
    return per_pixel * pixels


def sniff_image(data: bytes, name: str, limits: Limits) -> int:
    """The image's pixel count from its header (415 if it is not an allowed image; 413 over the pixel limit or
    when decoding it would take more memory than one image may)."""
    if not data:
        raise ApiError(422, "bad_image", f"{name}: empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as im:
                w, h = im.size
                cost = decode_cost(str(im.format), im.mode, "transparency" in im.info, w * h)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise ApiError(415, "unsupported_media_type",
                       f"{name}: not an image of an accepted type ({', '.join(IMAGE_FORMATS)}); "
                       "the type is read from the content, not the file name") from None
    if w * h > limits.max_pixels:
        raise ApiError(413, "too_many_pixels",
                       f"{name}: {w}x{h} = {w * h} pixels exceeds the limit of {limits.max_pixels}")
    if cost > limits.max_decode_bytes:
        raise ApiError(413, "too_many_pixels",
                       f"{name}: decoding this {w}x{h} image would take about {cost >> 20} MiB, more than the "
                       f"{limits.max_decode_bytes >> 20} MiB one image may; send a smaller image (or a JPEG)")
    return w * h


def decode_upload(data: bytes, name: str, limits: Limits) -> DecodedImage:
    """Sniff, check the limits, then decode (EXIF-rotated RGB); errors name the file."""
    sniff_image(data, name, limits)
    return decode_bytes(data, name=name, limit=limits.max_pixels)


async def read_images(uploads: list[UploadFile], limits: Limits) -> list[tuple[str, bytes]]:
    """Read and sniff every upload of a request before any work starts (all or nothing): each image under the
    per-image limits, and their pixels together under the request's pixel budget (413 ``pixel_budget``), all
    from the headers, before a single pixel is decoded."""
    if not uploads:
        raise ApiError(422, "invalid_request", "no image uploaded")
    if len(uploads) > limits.max_files:
        raise ApiError(413, "too_many_files", f"{len(uploads)} files; at most {limits.max_files} per request")
    out, pixels, budget = [], 0, max(limits.max_request_pixels, limits.max_pixels)
    for up in uploads:
        name = safe_name(up.filename, "image")
        data = await read_limited(up, limits.max_image_bytes)
        pixels += sniff_image(data, name, limits)
        if pixels > budget:
            raise ApiError(413, "pixel_budget",
                           f"the images of this request hold more than {budget} pixels together "
                           f"(at {name}: {pixels}); send fewer or smaller images per request")
        out.append((name, data))
    return out


VIDEO_SIGNATURES: dict[str, Callable[[bytes], bool]] = {
    "mp4": lambda b: b[4:8] == b"ftyp",
    "webm/mkv": lambda b: b[:4] == b"\x1a\x45\xdf\xa3",
    "avi": lambda b: b[:4] == b"RIFF" and b[8:12] == b"AVI ",
    "mpeg-ts": lambda b: len(b) > 188 and b[0] == 0x47 and b[188] == 0x47,
}


def sniff_video(head: bytes, name: str) -> str:
    for kind, test in VIDEO_SIGNATURES.items():
        if len(head) >= 12 and test(head):
            return kind
    raise ApiError(415, "unsupported_media_type",
                   f"{name}: not a video of an accepted type (MP4/MOV, WebM/MKV, AVI, MPEG-TS); "
                   "the type is read from the content, not the file name")
