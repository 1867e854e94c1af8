"""Annotated images: boxes, names and scores drawn on a copy of the picture."""

from __future__ import annotations

import cv2
import numpy as np

from facewise.types import Identification

GREEN = (40, 200, 40)
RED = (220, 40, 40)


def annotate(pixels: np.ndarray, results: list[Identification]) -> np.ndarray:
    out = pixels.copy()
    scale = max(0.4, min(out.shape[:2]) / 800)
    thick = max(1, round(2 * scale))
    for r in results:
        b = r.face.box
        color = GREEN if r.person else RED
        p1, p2 = (int(b.x1), int(b.y1)), (int(b.x2), int(b.y2))
        cv2.rectangle(out, p1, p2, color, thick)
        label = f"{r.person or 'unknown'} {r.score:.2f}"
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        y = max(th + base, p1[1])
        cv2.rectangle(out, (p1[0], y - th - base), (p1[0] + tw, y), color, -1)
        cv2.putText(out, label, (p1[0], y - base), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick,
                    cv2.LINE_AA)
    return out
