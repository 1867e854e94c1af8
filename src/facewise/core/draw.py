"""Annotated images: boxes, names and scores drawn on a copy of the picture."""

from __future__ import annotations

import cv2
import numpy as np

from facewise.types import Face, Identification

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


def _label(out: np.ndarray, text: str, p1: tuple[int, int], color: tuple[int, int, int], scale: float,
           thick: int) -> None:
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    y = max(th + base, p1[1])
    cv2.rectangle(out, (p1[0], y - th - base), (p1[0] + tw, y), color, -1)
    cv2.putText(out, text, (p1[0], y - base), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)


def annotate_analysis(pixels: np.ndarray, faces: list[Face]) -> np.ndarray:
    """Boxes coloured by the liveness decision, the cues that fired, and the occlusion map as a tint.

    Map cells tint red where blurring them raised P(live) (the cell argued for an attack) and green
    where it lowered P(live); the strength follows the size of the change (full at 0.25).
    """
    out = pixels.copy()
    scale = max(0.4, min(out.shape[:2]) / 800)
    thick = max(1, round(2 * scale))
    for f in faces:
        live = f.attributes.get("live")
        m = (live or {}).get("map")
        if m:
            x1, y1, x2, y2 = m["box"]
            delta = np.asarray(m["delta"], dtype=np.float64)
            cells = cv2.resize(delta, (x2 - x1, y2 - y1), interpolation=cv2.INTER_NEAREST)
            alpha = np.clip(np.abs(cells) / 0.25, 0, 1)[..., None] * 0.5
            tint = np.where(cells[..., None] > 0, np.array(RED, float), np.array(GREEN, float))
            roi = out[y1:y2, x1:x2].astype(np.float64)
            out[y1:y2, x1:x2] = (roi * (1 - alpha) + tint * alpha).round().astype(np.uint8)
        b = f.box
        ok = live is None or live.get("is_live", True)
        color = GREEN if ok else RED
        p1, p2 = (int(b.x1), int(b.y1)), (int(b.x2), int(b.y2))
        cv2.rectangle(out, p1, p2, color, thick)
        if live is not None:
            text = f"{'live' if ok else 'attack'} {live['score']:.2f}"
            if live.get("fired"):
                text += ": " + ", ".join(live["fired"])
            _label(out, text, p1, color, scale, thick)
    return out
