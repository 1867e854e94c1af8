"""Measuring the active challenge: recorded videos, and a photo moved, tilted and perspective-warped.

:func:`photo_attack_frames` turns one still into the frames a camera would see of that photo held up
and moved: turned about its vertical axis (the "head turn" a photo can fake), tilted back, rotated
in-plane, slid sideways and brought closer, via the homography of a plane seen by a pinhole camera.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from facewise.errors import BadInputError, NotFoundError

__all__ = ["photo_attack_frames", "video_frames"]


def _plane_homography(w: int, h: int, yaw: float, pitch: float, roll: float, tx: float, scale: float) -> np.ndarray:
    f = float(max(w, h))
    k = np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1.0]])
    ry, rx, rz = np.radians([yaw, pitch, roll])
    rot_y = np.array([[np.cos(ry), 0, np.sin(ry)], [0, 1, 0], [-np.sin(ry), 0, np.cos(ry)]])
    rot_x = np.array([[1, 0, 0], [0, np.cos(rx), -np.sin(rx)], [0, np.sin(rx), np.cos(rx)]])
    rot_z = np.array([[np.cos(rz), -np.sin(rz), 0], [np.sin(rz), np.cos(rz), 0], [0, 0, 1.0]])
    r = rot_z @ rot_y @ rot_x
    centre = np.array([[1, 0, -w / 2], [0, 1, -h / 2], [0, 0, 1.0]])
    hom = k @ np.column_stack([r[:, 0], r[:, 1], [tx, 0, f / scale]]) @ centre
    return np.asarray(hom / hom[2, 2])


def photo_attack_frames(photo_rgb: np.ndarray, seconds: float = 6.0, fps: float = 15.0,
                        max_turn: float = 50.0) -> Iterator[tuple[float, np.ndarray]]:
    """``(t, frame)`` of ``photo_rgb`` held in front of a camera: turned +-``max_turn`` degrees, tilted, moved."""
    h, w = photo_rgb.shape[:2]
    n = max(2, int(seconds * fps))
    for i in range(n):
        u = i / (n - 1)
        yaw = max_turn * np.sin(2 * np.pi * u)  # turned one way, then the other
        pitch = 25.0 * np.sin(np.pi * u) ** 2  # tilted back in the middle
        roll = 10.0 * np.sin(4 * np.pi * u)
        tx = 0.1 * w * np.sin(2 * np.pi * u + 1.0)
        scale = 1.0 + 0.4 * u  # brought closer
        hom = _plane_homography(w, h, yaw, pitch, roll, tx, scale)
        yield i / fps, cv2.warpPerspective(photo_rgb, hom, (w, h), borderMode=cv2.BORDER_CONSTANT,
                                           borderValue=(90, 90, 90))


def video_frames(source: Path | str | int, stride: int = 1) -> Iterator[tuple[float, np.ndarray]]:
    """``(t, RGB frame)`` of every ``stride``-th frame of a video file (t from its frame rate) or of a camera
    given by its index (an int or an all-digit string; wall-clock t). The source is opened before the first frame
    is asked for: a missing file is a :class:`NotFoundError`, one that cannot be opened a :class:`BadInputError`."""
    text = str(source)
    camera = isinstance(source, int) or text.isdigit()
    if not camera and not Path(text).is_file():
        raise NotFoundError(f"{text}: no such video file (or give a camera index such as 0)")
    cap = cv2.VideoCapture(int(text) if camera else text)
    if not cap.isOpened():
        raise BadInputError(f"cannot open {'camera' if camera else 'video'} {text}")
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0

    def frames() -> Iterator[tuple[float, np.ndarray]]:
        start, index = time.monotonic(), 0
        try:
            while True:
                ok, frame = cap.read()
                if not ok:
                    return
                if index % stride == 0:
                    t = (time.monotonic() - start) if camera else index / fps
                    yield t, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                index += 1
        finally:
            cap.release()

    return frames()
