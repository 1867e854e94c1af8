"""The bad-input corpus for image decoding (generated here, nothing downloaded)."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from facewise.core.imageio import decode_bytes, load_image
from facewise.errors import ImageError


def _encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)
    arr[:, :40] = (200, 30, 30)  # left half red, so orientation and colour are checkable
    return Image.fromarray(arr)


def test_zero_byte_file_is_rejected_with_its_name(tmp_path):
    f = tmp_path / "empty.jpg"
    f.write_bytes(b"")
    with pytest.raises(ImageError, match=r"empty\.jpg: empty file"):
        load_image(f)


def test_truncated_jpeg_is_an_error_not_a_grey_image(photo):
    data = _encode(photo, "JPEG", quality=90)
    with pytest.raises(ImageError, match=r"truncated|corrupt|cannot decode"):
        decode_bytes(data[: len(data) // 2], "half.jpg")


def test_truncated_png(photo):
    data = _encode(photo, "PNG")
    with pytest.raises(ImageError, match=r"half\.png"):
        decode_bytes(data[: len(data) - 40], "half.png")


def test_random_bytes_with_image_extension(tmp_path):
    f = tmp_path / "noise.jpg"
    f.write_bytes(np.random.default_rng(1).integers(0, 255, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(ImageError, match="not a recognised image format"):
        load_image(f)


def test_valid_png_with_jpg_extension_decodes(tmp_path, photo):
    f = tmp_path / "really_png.jpg"
    f.write_bytes(_encode(photo, "PNG"))
    img = load_image(f)
    assert img.pixels.shape == (60, 80, 3)
    assert np.array_equal(img.pixels, np.asarray(photo))


def _png_header_only(w: int, h: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_decompression_bomb_is_refused_from_the_header():
    with pytest.raises(ImageError, match="exceeds the limit"):
        decode_bytes(_png_header_only(50_000, 50_000), "bomb.png")


def test_pixel_limit_is_configurable(photo):
    with pytest.raises(ImageError, match="4800 pixels exceeds the limit of 1000"):
        decode_bytes(_encode(photo, "PNG"), "small.png", limit=1000)


def test_exif_rotation_is_applied(photo):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    img = decode_bytes(_encode(photo, "JPEG", exif=exif, quality=95), "rotated.jpg")
    assert img.pixels.shape == (80, 60, 3)
    # the red left half ends up on top after a clockwise turn
    assert img.pixels[:30, :, 0].mean() > 150 and img.pixels[:30, :, 1].mean() < 80


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "CMYK", "1"])
def test_modes_become_rgb_uint8(photo, mode):
    im = photo.convert(mode)
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    img = decode_bytes(_encode(im, fmt), f"x.{fmt.lower()}")
    assert img.pixels.dtype == np.uint8 and img.pixels.shape == (60, 80, 3)


def test_alpha_is_composited_on_white():
    im = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    img = decode_bytes(_encode(im, "PNG"), "transparent.png")
    assert (img.pixels == 255).all()


def test_16_bit_png_keeps_its_range():
    arr = (np.linspace(0, 65535, 64 * 64).reshape(64, 64)).astype(np.uint16)
    im = Image.fromarray(arr)
    assert im.mode.startswith("I")
    img = decode_bytes(_encode(im, "PNG"), "deep.png")
    assert img.pixels.dtype == np.uint8
    assert img.pixels.min() <= 1 and img.pixels.max() >= 254  # scaled, not clipped to white


def test_animated_gif_uses_first_frame():
    frames = [Image.new("RGB", (20, 20), c) for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    img = decode_bytes(buf.getvalue(), "anim.gif")
    assert img.pixels[0, 0, 0] > 200 and img.pixels[0, 0, 2] < 50


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageError, match="is a directory"):
        load_image(tmp_path)


def test_non_utf8_file_name(tmp_path, photo):
    name = b"caf\xe9.png"  # latin-1 bytes, not valid UTF-8
    path = tmp_path.as_posix().encode() + b"/" + name
    try:
        with open(path, "wb") as fh:
            fh.write(_encode(photo, "PNG"))
    except OSError:
        pytest.skip("file system refuses non-UTF-8 names")
    import os

    img = load_image(os.fsdecode(path))
    assert img.pixels.shape == (60, 80, 3)


def test_same_bytes_same_hash(photo):
    data = _encode(photo, "PNG")
    assert decode_bytes(data).sha256 == decode_bytes(data).sha256


def test_pil_images_take_the_same_path_as_files(tmp_path, photo):
    """A PIL image (opened from a file or built in memory) decodes like the file: EXIF orientation, alpha on white."""
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    path = tmp_path / "rotated.jpg"
    path.write_bytes(_encode(photo, "JPEG", exif=exif, quality=95))
    from_file, from_pil = load_image(path), load_image(Image.open(path))
    assert from_pil.pixels.shape == from_file.pixels.shape == (80, 60, 3)  # rotated: width and height swap
    assert np.array_equal(from_pil.pixels, from_file.pixels) and from_pil.name == str(path)
    rgba = Image.new("RGBA", (4, 3), (0, 0, 0, 0))
    assert load_image(rgba).pixels.min() == 255 and load_image(rgba).name == "<PIL image>"
    with pytest.raises(ImageError, match="exceeds the limit"):
        load_image(Image.new("L", (100, 100)), limit=50)
