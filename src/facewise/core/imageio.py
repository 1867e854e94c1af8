"""Safe image decoding: one place turns bytes from anywhere into an RGB uint8 array.

Guards: only the allow-listed decoders (:data:`FORMATS`) ever see the bytes, so a polyglot that one of Pillow's
other plugins would read differently decodes as the format it was sniffed as; a pixel limit checked from the
header before any pixel is decoded and again on what was decoded (decompression bombs); a multi-page file is
walked at most :data:`MAX_FRAMES` pages (its frame count is never computed by walking it all); truncated files are
errors (never silently padded), EXIF orientation is applied, and grey, palette, alpha, CMYK, 16-bit and float
images are converted to 8-bit RGB.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from facewise import settings
from facewise.core.outfiles import Inputs, open_output
from facewise.errors import ImageError

log = logging.getLogger(__name__)

ImageFile.LOAD_TRUNCATED_IMAGES = False
# Our own limit is enforced below; let Pillow's bomb guard be the backstop only.
Image.MAX_IMAGE_PIXELS = None

DEFAULT_MAX_PIXELS = 80_000_000
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
# A multi-page file (TIFF) may hold at most this many pages: only the first is decoded, and counting them all
# (Pillow's n_frames) walks every page, superlinearly.
MAX_FRAMES = 256

# The Pillow plugins that may open encoded bytes, from anywhere (no EPS/PSD/FLI/... parser is reachable).
FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF", "PPM")

try:  # optional HEIC/HEIF support (phones)
    import pillow_heif

    pillow_heif.register_heif_opener()
    FORMATS += ("HEIF",)
except ImportError:  # pragma: no cover - optional extra
    pass


def max_pixels() -> int:
    return settings.max_pixels(DEFAULT_MAX_PIXELS)


@dataclass(frozen=True)
class DecodedImage:
    """Decoded pixels (H, W, 3) uint8 RGB, the sha256 of the source bytes, and a display name."""

    pixels: np.ndarray
    sha256: str
    name: str

    @property
    def size(self) -> tuple[int, int]:
        return int(self.pixels.shape[1]), int(self.pixels.shape[0])


@dataclass(frozen=True)
class EncodedImage:
    """Encoded bytes with a display name, decoded only when used (one image at a time) and under ``limit``."""

    data: bytes
    name: str
    limit: int | None = None

    def decode(self, limit: int | None = None) -> DecodedImage:
        return decode_bytes(self.data, name=self.name, limit=self.limit or limit)


ImageInput = str | os.PathLike[str] | bytes | np.ndarray | Image.Image | DecodedImage | EncodedImage


def _to_rgb_array(im: Image.Image) -> np.ndarray:
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(im).astype(np.float32)
        top = 65535.0 if mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        if mode == "F":
            lo, hi = float(arr.min(initial=0)), float(arr.max(initial=1))
            arr = (arr - lo) / max(hi - lo, 1e-6) * 255.0
        else:
            arr = arr / top * 255.0
        grey = np.clip(arr + 0.5, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, rgba)
    if im.mode != "RGB":
        im = im.convert("RGB")
    return np.ascontiguousarray(np.asarray(im, dtype=np.uint8))


def _check_size(w: int, h: int, name: str, limit: int) -> None:
    if w * h > limit:
        raise ImageError(
            f"{name}: {w}x{h} = {w * h} pixels exceeds the limit of {limit} "
            "(decompression-bomb guard; raise FACEWISE_MAX_PIXELS to allow it)"
        )
    if w < 1 or h < 1:
        raise ImageError(f"{name}: image has no pixels ({w}x{h})")


def _check_pages(im: Image.Image, name: str) -> None:
    """Refuse a TIFF of more than :data:`MAX_FRAMES` pages, walking at most that many (never ``n_frames``)."""
    if im.format != "TIFF":
        return  # GIF, PNG, WebP: only the first frame is decoded and nothing walks the others
    try:
        im.seek(MAX_FRAMES)
    except EOFError:
        pass
    else:
        raise ImageError(f"{name}: a TIFF of more than {MAX_FRAMES} pages is refused (only one image is read)")
    finally:
        im.seek(0)


def _pil_pixels(im: Image.Image, name: str, limit: int, in_place: bool = False) -> np.ndarray:
    """The one conversion of a PIL image to RGB pixels: size guard, first frame, EXIF orientation, mode; the
    pixel limit is checked again on what was decoded."""
    _check_size(*im.size, name, limit)
    if in_place:  # an image we opened ourselves: bound its pages
        _check_pages(im, name)
    elif im.tell() != 0:  # never n_frames: it walks the whole file
        im.seek(0)
    im.load()
    if in_place:  # an image we opened ourselves: turn it without a copy
        ImageOps.exif_transpose(im, in_place=True)
    else:  # the caller's PIL image stays as it is
        im = ImageOps.exif_transpose(im) or im
    _check_size(*im.size, name, limit)
    pixels = _to_rgb_array(im)
    _check_size(int(pixels.shape[1]), int(pixels.shape[0]), name, limit)
    return pixels


def decode_pil(im: Image.Image, name: str = "<PIL image>", limit: int | None = None) -> DecodedImage:
    """A PIL image (as ``Image.open`` gives it, or built in memory) through the same conversion as files:
    EXIF orientation applied, alpha on white, 16-bit and palette modes to RGB. Its sha256 is that of the decoded
    pixels (a PIL image need not have file bytes), so it differs from the same photo given by path."""
    limit = limit or max_pixels()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pixels = _pil_pixels(im, name, limit)
    except ImageError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        raise ImageError(f"{name}: cannot decode image: {exc or type(exc).__name__}") from None
    return DecodedImage(pixels, hashlib.sha256(pixels.tobytes()).hexdigest(), name)


def decode_bytes(data: bytes, name: str = "<bytes>", limit: int | None = None) -> DecodedImage:
    """Decode encoded image bytes; raise :class:`ImageError` naming ``name`` and the reason."""
    if not data:
        raise ImageError(f"{name}: empty file (0 bytes)")
    if len(data) > DEFAULT_MAX_BYTES:
        raise ImageError(f"{name}: file of {len(data)} bytes exceeds the {DEFAULT_MAX_BYTES}-byte limit")
    limit = limit or max_pixels()
    digest = hashlib.sha256(data).hexdigest()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im: Image.Image = Image.open(io.BytesIO(data), formats=FORMATS)
            pixels = _pil_pixels(im, name, limit, in_place=True)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not a recognised image format (accepted: {', '.join(FORMATS)})") from None
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        reason = str(exc) or type(exc).__name__
        if "truncated" in reason.lower() or isinstance(exc, EOFError):
            reason = f"truncated or corrupt image data ({reason})"
        raise ImageError(f"{name}: cannot decode image: {reason}") from None
    except Exception as exc:  # a decoder plugin failing any other way (IndexError...) on malformed data
        log.debug("decoder failure on %s", name, exc_info=True)
        raise ImageError(f"{name}: cannot decode image: malformed data ({type(exc).__name__}: {exc})") from None
    return DecodedImage(pixels=pixels, sha256=digest, name=name)


def load_image(source: ImageInput, limit: int | None = None) -> DecodedImage:
    """Load an image from a path, encoded bytes, an RGB uint8 array, a PIL image or a :class:`DecodedImage`."""
    if isinstance(source, DecodedImage):
        return source
    if isinstance(source, EncodedImage):
        return source.decode(limit)
    if isinstance(source, np.ndarray):
        arr = source
        if arr.ndim == 2:
            arr = np.repeat(arr[:, :, None], 3, axis=2)
        if arr.ndim != 3 or arr.shape[2] not in (3, 4):
            raise ImageError(f"<array>: expected an H x W x 3 RGB array, got shape {arr.shape}")
        if arr.dtype != np.uint8:
            raise ImageError(f"<array>: expected dtype uint8, got {arr.dtype}")
        arr = np.ascontiguousarray(arr[:, :, :3])
        return DecodedImage(arr, hashlib.sha256(arr.tobytes()).hexdigest(), "<array>")
    if isinstance(source, Image.Image):
        filename = getattr(source, "filename", "") or ""
        return decode_pil(source, name=os.fsdecode(filename) if filename else "<PIL image>", limit=limit)
    if isinstance(source, bytes | bytearray | memoryview):
        return decode_bytes(bytes(source), limit=limit)
    path = Path(source)
    name = os.fsdecode(path)
    try:
        if path.is_dir():
            raise ImageError(f"{name}: is a directory, not an image")
        size = path.stat().st_size
        if size > DEFAULT_MAX_BYTES:
            raise ImageError(f"{name}: file of {size} bytes exceeds the {DEFAULT_MAX_BYTES}-byte limit")
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageError(f"{name}: no such file") from None
    except PermissionError:
        raise ImageError(f"{name}: permission denied") from None
    except IsADirectoryError:
        raise ImageError(f"{name}: is a directory, not an image") from None
    return decode_bytes(data, name=name, limit=limit)


IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".pgm", ".ppm", ".heic"}


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def save_rgb(path: Path, pixels: np.ndarray, quality: int = 92, inputs: Inputs = ()) -> None:
    """Write RGB pixels (format from the suffix, JPEG by default) through :func:`facewise.core.outfiles.open_output`:
    atomically, never through a link, never over one of ``inputs``."""
    fmt = Image.registered_extensions().get(Path(path).suffix.lower(), "JPEG")
    with open_output(path, inputs) as fh:
        Image.fromarray(pixels).save(fh, format=fmt, quality=quality)
