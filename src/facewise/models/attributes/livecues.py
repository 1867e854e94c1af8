"""Cheap presentation-attack cues that do not depend on one data set's look.

Each cue is one number computed with OpenCV/numpy from the face box (and, for the edge cue, the wider
crop around it), so a small fusion model can weigh them next to MiniFASNet's two scales:

* ``hf_energy``  -- share of the face crop's spectral energy at high spatial frequencies (log); a
  replayed or printed face has lost fine detail (resampling, defocus) or gained a screen's grid.
* ``moire``      -- peakiness of the high-frequency spectrum (log of max over median magnitude in the
  band): screen pixels beat with the camera's sensor into periodic moire, which shows as peaks.
* ``specular``   -- share of face pixels that are near-white and unsaturated (glare on a screen or glossy
  paper; a live face's highlights are small).
* ``saturation``, ``chroma_std`` -- colour statistics (mean HSV saturation; spread of Cr and Cb): screens
  and prints shift and compress a face's colour gamut.
* ``edge``       -- the longest straight line in the wider crop (4x the box) outside the face, as a share
  of the crop side: a phone, monitor or paper border.

The face crop is the box resized to :data:`CROP` pixels, the same for every source resolution.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

__all__ = ["CROP", "CUE_NAMES", "face_cues", "wide_crop"]

CROP = 128
CUE_NAMES: tuple[str, ...] = ("hf_energy", "moire", "specular", "saturation", "chroma_std", "edge")


def _box_crop(image: np.ndarray, box: Sequence[float], scale: float, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Square crop of side ``scale * max(w, h)`` around the box centre (padded with edge pixels), resized.

    Returns the crop and the face box in the crop's pixel coordinates.
    """
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    side = max(x2 - x1, y2 - y1, 2.0) * scale
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left, top = round(cx - side / 2), round(cy - side / 2)
    s = max(2, round(side))
    h, w = image.shape[:2]
    pad = [max(0, -top), max(0, top + s - h), max(0, -left), max(0, left + s - w)]
    patch = image[max(0, top) : min(h, top + s), max(0, left) : min(w, left + s)]
    if any(pad):
        patch = cv2.copyMakeBorder(patch, pad[0], pad[1], pad[2], pad[3], cv2.BORDER_REPLICATE)
    interp = cv2.INTER_AREA if s > size else cv2.INTER_LINEAR
    out = cv2.resize(patch, (size, size), interpolation=interp)
    k = size / s
    face = np.array([(x1 - left) * k, (y1 - top) * k, (x2 - left) * k, (y2 - top) * k])
    return out, face


def wide_crop(image: np.ndarray, box: Sequence[float], size: int = CROP) -> np.ndarray:
    """The 4x crop the edge cue looks at (for drawing)."""
    return _box_crop(image, box, 4.0, size)[0]


def _spectrum_cues(grey: np.ndarray) -> tuple[float, float]:
    g = grey.astype(np.float32) - float(grey.mean())
    win = np.outer(np.hanning(g.shape[0]), np.hanning(g.shape[1])).astype(np.float32)
    mag = np.abs(np.fft.fftshift(np.fft.fft2(g * win)))
    n = g.shape[0]
    yy, xx = np.mgrid[:n, :n]
    r = np.hypot(yy - n / 2, xx - n / 2) / (n / 2)
    power = mag**2
    total = float(power[(r > 0.02) & (r <= 1.0)].sum()) + 1e-9
    band = (r > 0.35) & (r <= 1.0)
    hf = float(power[band].sum()) / total
    peak = float(np.log((mag[band].max() + 1e-6) / (np.median(mag[band]) + 1e-6)))
    return float(np.log(hf + 1e-6)), peak


def face_cues(image_rgb: np.ndarray, box: Sequence[float]) -> dict[str, float]:
    """The cues of :data:`CUE_NAMES` for one face box ``(x1, y1, x2, y2)`` in an RGB uint8 image."""
    face, _ = _box_crop(image_rgb, box, 1.0, CROP)
    grey = cv2.cvtColor(face, cv2.COLOR_RGB2GRAY)
    hf, moire = _spectrum_cues(grey)
    hsv = cv2.cvtColor(face, cv2.COLOR_RGB2HSV)
    sat = hsv[:, :, 1].astype(np.float32) / 255.0
    val = hsv[:, :, 2].astype(np.float32) / 255.0
    specular = float(np.mean((val > 0.9) & (sat < 0.2)))
    ycc = cv2.cvtColor(face, cv2.COLOR_RGB2YCrCb).astype(np.float32) / 255.0
    chroma = float(ycc[:, :, 1].std() + ycc[:, :, 2].std())

    wide, fbox = _box_crop(image_rgb, box, 4.0, 256)
    edges = cv2.Canny(cv2.cvtColor(wide, cv2.COLOR_RGB2GRAY), 60, 160)
    x1, y1, x2, y2 = (int(v) for v in fbox)
    edges[max(0, y1) : max(0, y2), max(0, x1) : max(0, x2)] = 0  # the face itself is not a border
    lines = cv2.HoughLinesP(edges, 1, np.pi / 180, threshold=60, minLineLength=40, maxLineGap=4)
    edge = 0.0
    if lines is not None and len(lines):  # OpenCV 4 answers None for no line, OpenCV 5 an empty (0, 4) array
        seg = lines.reshape(-1, 4).astype(np.float32)
        edge = float(np.hypot(seg[:, 2] - seg[:, 0], seg[:, 3] - seg[:, 1]).max() / 256.0)
    return {"hf_energy": hf, "moire": moire, "specular": specular, "saturation": float(sat.mean()),
            "chroma_std": chroma, "edge": edge}
