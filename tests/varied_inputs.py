"""Varied inputs generated at test time from the shared data: what users' photos look like, not what LFW does.

LFW's images are all 250×250 and FERET's all 256×384, so a suite on them alone never meets a process that sees
photos of many sizes, modes, orientations, crowds or faceless scenes. :func:`varied_inputs` builds such a set from
shared photos and video frames, encoded as files would be (the decoder is part of what is tested); a seed picks
the sample, so each profile sees different inputs and a failure names its seed and input.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from conftest import DATA, LFW

EXAMPLES = DATA / "video" / "face_recognition_examples" / "examples"
VIDEOS = [EXAMPLES / "short_hamilton_clip.mp4", DATA / "video" / "facenet_pytorch_data" / "examples" / "video.mp4",
          DATA / "video" / "misc" / "huimiang_1543684773.avi", DATA / "video" / "misc" / "huimiang_1543684810.avi"]
FACES = ["Aaron_Peirsol/Aaron_Peirsol_0001.jpg", "Abdullah_Gul/Abdullah_Gul_0014.jpg", "Zico/Zico_0003.jpg",
         "George_W_Bush/George_W_Bush_0007.jpg", "Serena_Williams/Serena_Williams_0001.jpg",
         "Colin_Powell/Colin_Powell_0040.jpg", "Tony_Blair/Tony_Blair_0018.jpg", "Laura_Bush/Laura_Bush_0001.jpg"]
# every EXIF orientation (1 = as stored ... 8) is written on a photo turned so that the orientation undoes it
_UNDO = {1: [], 2: [Image.Transpose.FLIP_LEFT_RIGHT], 3: [Image.Transpose.ROTATE_180],
         4: [Image.Transpose.FLIP_TOP_BOTTOM], 5: [Image.Transpose.TRANSPOSE], 6: [Image.Transpose.ROTATE_90],
         7: [Image.Transpose.TRANSVERSE], 8: [Image.Transpose.ROTATE_270]}


@dataclass(frozen=True)
class Input:
    label: str
    data: bytes


def _face(name: str) -> Image.Image:
    return Image.open(LFW / "images" / name).convert("RGB")


def _encode(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _group() -> Image.Image:
    return Image.open(EXAMPLES / "two_people.jpg").convert("RGB")


def sizes(rng: random.Random, n: int) -> list[Input]:
    """One face photo at ``n`` distinct sizes: tiny (16 px), odd, extreme aspect ratios, up to 8000 px wide."""
    fixed = [(16, 16), (23, 41), (64, 64), (8000, 600), (60, 3000), (3000, 90), (1, 1), (4001, 2999)]
    out = []
    for i in range(n):
        w, h = fixed[i] if i < len(fixed) else (rng.randint(32, 2600), rng.randint(32, 1800))
        img = _face(rng.choice(FACES)).resize((w, h))
        out.append(Input(f"size {w}x{h}", _encode(img, "JPEG", quality=90)))
    return out


def modes(rng: random.Random) -> list[Input]:
    """Every pixel layout a file may hold: greyscale, 16-bit, CMYK, alpha, palette, bilevel, and other formats."""
    face = _face(rng.choice(FACES))
    grey16 = Image.fromarray((np.asarray(face.convert("L"), np.uint16) * 257).astype(np.uint16))
    rgba = face.convert("RGBA")
    half_clear = face.convert("RGBA")
    alpha = np.full(face.size[::-1], 255, np.uint8)
    alpha[:, : face.size[0] // 3] = 0
    half_clear.putalpha(Image.fromarray(alpha))
    return [
        Input("greyscale JPEG", _encode(face.convert("L"), "JPEG")),
        Input("16-bit greyscale PNG", _encode(grey16, "PNG")),
        Input("CMYK JPEG", _encode(face.convert("CMYK"), "JPEG")),
        Input("RGBA PNG", _encode(rgba, "PNG")),
        Input("RGBA PNG, a third transparent", _encode(half_clear, "PNG")),
        Input("palette PNG", _encode(face.convert("P", palette=Image.Palette.ADAPTIVE), "PNG")),
        Input("greyscale+alpha PNG", _encode(face.convert("LA"), "PNG")),
        Input("bilevel PNG", _encode(face.convert("1"), "PNG")),
        Input("TIFF", _encode(face, "TIFF")),
        Input("WebP", _encode(face, "WEBP")),
        Input("GIF", _encode(face, "GIF")),
        Input("BMP", _encode(face, "BMP")),
    ]


def orientations() -> list[Input]:
    """A group photo under every EXIF orientation, stored turned so that the tag makes it upright."""
    group = _group()
    out = []
    for tag, ops in _UNDO.items():
        img = group
        for op in ops:
            img = img.transpose(op)
        exif = Image.Exif()
        exif[0x0112] = tag
        out.append(Input(f"EXIF orientation {tag}", _encode(img, "JPEG", exif=exif.tobytes())))
    return out


def collage(rng: random.Random, cols: int, rows: int, cell: int) -> Input:
    """Many faces in one photo: LFW faces on a grid (a crowd the detector must all find)."""
    canvas = Image.new("RGB", (cols * cell, rows * cell), (90, 90, 90))
    for i in range(cols * rows):
        canvas.paste(_face(rng.choice(FACES)).resize((cell, cell)), ((i % cols) * cell, (i // cols) * cell))
    return Input(f"collage of {cols * rows} faces ({cols * cell}x{rows * cell})", _encode(canvas, "JPEG"))


def video_frames(rng: random.Random, per_video: int = 1) -> list[Input]:
    """Frames of every shared video at a random position each (PNG, as a webcam page would send them)."""
    import av

    out = []
    for path in VIDEOS:
        if not path.exists():
            continue
        with av.open(str(path)) as container:
            count = container.streams.video[0].frames or 60
            wanted = sorted(rng.randrange(count) for _ in range(per_video))
            for i, frame in enumerate(container.decode(video=0)):
                while wanted and wanted[0] == i:
                    out.append(Input(f"{path.name} frame {i}", _encode(frame.to_image(), "PNG")))
                    wanted.pop(0)
                if not wanted:
                    break
    return out


def faceless() -> list[Input]:
    """Scenes without a face: flat, noise, a gradient, and a room of straight lines (the liveness cues' case)."""
    flat = Image.new("RGB", (640, 480), (128, 128, 128))
    noise = Image.fromarray(np.random.default_rng(7).integers(0, 256, (480, 640, 3), dtype=np.uint8))
    grad = Image.fromarray(np.tile(np.linspace(0, 255, 800, dtype=np.uint8), (300, 1)))
    lines = Image.new("RGB", (800, 600), (235, 230, 220))
    draw = ImageDraw.Draw(lines)
    for k in range(0, 800, 60):
        draw.line([(k, 0), (k + 40, 600)], fill=(20, 20, 20), width=3)
    draw.rectangle([100, 100, 500, 400], outline=(0, 0, 0), width=5)
    return [Input("flat grey", _encode(flat, "PNG")), Input("noise", _encode(noise, "PNG")),
            Input("gradient", _encode(grad, "PNG")), Input("straight lines", _encode(lines, "JPEG"))]


def varied_inputs(seed: int, n_sizes: int = 12) -> list[Input]:
    """The varied set for one seed: sizes, modes, orientations, a crowd, video frames, faceless scenes."""
    rng = random.Random(seed)
    parts: list[Callable[[], list[Input]]] = [
        lambda: sizes(rng, n_sizes), lambda: modes(rng), orientations,
        lambda: [collage(rng, rng.randint(3, 6), rng.randint(2, 4), rng.choice([120, 160, 250]))],
        lambda: video_frames(rng), faceless]
    return [item for part in parts for item in part()]


def size_sweep(seed: int, n: int) -> list[np.ndarray]:
    """``n`` distinct image sizes of one photo (RGB arrays): more shapes than any detector's shape cache holds."""
    rng = random.Random(seed)
    face = _face(FACES[0])
    seen: set[tuple[int, int]] = set()
    out = []
    while len(out) < n:
        w, h = rng.randint(200, 1400), rng.randint(160, 900)
        if (w // 32, h // 32) in seen:
            continue
        seen.add((w // 32, h // 32))
        out.append(np.asarray(face.resize((w, h))))
    return out


def shared_ready() -> Path | None:
    """The first shared folder this tier needs that is missing, else None."""
    for path in (LFW / "images", EXAMPLES):
        if not path.exists():
            return path
    return None
