"""Hostile files built here, byte by byte (nothing downloaded): polyglots, page bombs."""

from __future__ import annotations

import fractions
import struct
from pathlib import Path

import numpy as np

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


def repeated_frames(path: Path, frames: int, size: tuple[int, int] = (320, 240), step: int = 33,
                    den: int = 1000, rate: int = 1000) -> Path:
    """``frames`` frames ``step``/``den`` s apart: a key frame, then one P-frame's packet muxed again and again.
    ``rate`` is what the stream declares (an MKV at 1000 reads as 1000 fps: no usable length)."""
    import av

    tb = fractions.Fraction(1, den)
    w, h = size
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=rate)
        s.width, s.height, s.pix_fmt, s.time_base = w, h, "yuv420p", tb
        s.options = {"preset": "ultrafast"}
        img = np.zeros((h, w, 3), np.uint8)
        img[:, : w // 2] = 200
        frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
        packets = []
        for i in range(2):
            frame.pts, frame.time_base = i * step, tb
            packets += list(s.encode(frame))
        packets += list(s.encode())
        packets[0].stream = s
        c.mux(packets[0])
        data = bytes(packets[1])
        for i in range(1, frames):
            p = av.Packet(data)
            p.pts = p.dts = i * step
            p.time_base, p.stream = tb, s
            c.mux(p)
    return path
