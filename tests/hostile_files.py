"""Hostile files built here, byte by byte (nothing downloaded): polyglots, page bombs."""

from __future__ import annotations

import struct

_TIFF_TYPES = {3: "<HH", 4: "<I"}


def _ifd(offset: int, next_ifd: int, width: int = 1, height: int = 1) -> bytes:
    """One TIFF directory at ``offset`` for a ``width`` x ``height`` 8-bit grey strip right behind it."""
    entries = [(256, 3, width), (257, 3, height), (258, 3, 8), (259, 3, 1), (262, 3, 1), (273, 4, 0),
               (278, 3, height), (279, 4, width * height)]
    strip = offset + 2 + 12 * len(entries) + 4
    out = struct.pack("<H", len(entries))
    for tag, kind, value in entries:
        value = strip if tag == 273 else value
        out += struct.pack("<HHI", tag, kind, 1) + (struct.pack("<HH", value, 0) if kind == 3
                                                     else struct.pack("<I", value))
    return out + struct.pack("<I", next_ifd) + b"\x80" * (width * height)


def tiff_fli_polyglot(side: int = 6000) -> bytes:
    """A valid 1x1 TIFF whose first bytes are also an FLI header of ``side`` x ``side`` (one black frame):
    the TIFF's directory offset (bytes 4..7) carries FLI's magic 0xAF11 and a frame count of 1."""
    ifd_offset = 0x0001AF11
    head = bytearray(128)
    head[0:4] = b"II*\0"
    struct.pack_into("<HHHHH", head, 4, 0xAF11, 1, side, side, 8)  # magic, frames, width, height, depth
    frame = struct.pack("<IHH8x", 16 + 6, 0xF1FA, 1) + struct.pack("<IH", 6, 13)  # one BLACK chunk
    data = bytes(head) + frame
    return data + b"\0" * (ifd_offset - len(data)) + _ifd(ifd_offset, 0)


def many_page_tiff(pages: int = 65536) -> bytes:
    """A TIFF of ``pages`` one-pixel pages (about 100 bytes each)."""
    out = bytearray(b"II*\0" + struct.pack("<I", 8))
    size = len(_ifd(0, 0))
    for i in range(pages):
        offset = len(out)
        out += _ifd(offset, offset + size if i < pages - 1 else 0)
    return bytes(out)
