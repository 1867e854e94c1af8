"""Drawing redaction masks: gaussian blur, pixelation or a solid fill, in an ellipse or a box a little larger
than the face.

``strength`` (1.0 by default) scales each style: ``gaussian`` brings the masked region down to about
``12 / strength`` pixels across before blurring it back up (nothing of the face survives at 1.0; larger is
stronger); ``pixelate`` shows ``10 / strength`` blocks across the face; ``box`` ignores it (a solid fill in
``color``). The mask is the face box grown by ``margin`` of its width on the left and right and of its height
above and below (hair, chin, ears); ``shape="ellipse"`` inscribes an ellipse in that box, which still covers
the whole face box from a margin of 0.22 up.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facewise.errors import ValidationError

STYLES = ("gaussian", "pixelate", "box")
SHAPES = ("ellipse", "box")


@dataclass(frozen=True)
class MaskStyle:
    """How a face is hidden (see the module docstring)."""

    style: str = "gaussian"
    strength: float = 1.0
    shape: str = "ellipse"
    margin: float = 0.3
    color: tuple[int, int, int] = (0, 0, 0)  # RGB of the ``box`` fill

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise ValidationError(f"mask style {self.style!r}: expected one of {', '.join(STYLES)}")
        if self.shape not in SHAPES:
            raise ValidationError(f"mask shape {self.shape!r}: expected one of {', '.join(SHAPES)}")
        if not 0.1 <= self.strength <= 10.0:
            raise ValidationError(f"mask strength {self.strength}: expected a number in [0.1, 10]")
        if not 0.0 <= self.margin <= 2.0:
            raise ValidationError(f"mask margin {self.margin}: expected a number in [0, 2]")

    def to_dict(self) -> dict[str, object]:
        return {"style": self.style, "strength": self.strength, "shape": self.shape, "margin": self.margin}


BoxT = tuple[float, float, float, float]


def grow(box: BoxT, margin: float) -> BoxT:
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    return x1 - margin * w, y1 - margin * h, x2 + margin * w, y2 + margin * h


def mask_rect(box: BoxT, margin: float, width: int, height: int) -> tuple[int, int, int, int] | None:
    """The grown box in whole pixels, clipped to the frame; None when nothing of it is inside."""
    gx1, gy1, gx2, gy2 = grow(box, margin)
    x1, y1 = max(0, int(np.floor(gx1))), max(0, int(np.floor(gy1)))
    x2, y2 = min(width, int(np.ceil(gx2))), min(height, int(np.ceil(gy2)))
    if x2 - x1 < 1 or y2 - y1 < 1:
        return None
    return x1, y1, x2, y2


def _effect(roi: np.ndarray, style: MaskStyle) -> np.ndarray:
    h, w = roi.shape[:2]
    if style.style == "box":
        out = np.empty_like(roi)
        out[:] = style.color
        return out
    side = max(h, w)
    if style.style == "pixelate":
        blocks = max(2.0, 10.0 / style.strength)
        k = blocks / side
        small = cv2.resize(roi, (max(1, round(w * k)), max(1, round(h * k))), interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
    across = max(2.0, 12.0 / style.strength)  # gaussian: down to a few pixels, then a smooth way back up
    k = across / side
    small = cv2.resize(roi, (max(1, round(w * k)), max(1, round(h * k))), interpolation=cv2.INTER_AREA)
    up = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    ksize = max(3, (side // max(2, round(across)) | 1))
    return cv2.GaussianBlur(up, (ksize, ksize), 0)


def draw_masks(rgb: np.ndarray, boxes: list[BoxT], style: MaskStyle) -> int:
    """Hide every box in ``rgb`` (H x W x 3 uint8, changed in place); returns how many masks were drawn."""
    height, width = rgb.shape[:2]
    drawn = 0
    for box in boxes:
        rect = mask_rect(box, style.margin, width, height)
        if rect is None:
            continue
        x1, y1, x2, y2 = rect
        roi = rgb[y1:y2, x1:x2]
        fx = _effect(roi, style)
        if style.shape == "box":
            roi[:] = fx
        else:
            gx1, gy1, gx2, gy2 = grow(box, style.margin)
            mask = np.zeros(roi.shape[:2], np.uint8)
            centre = (round((gx1 + gx2) / 2 - x1), round((gy1 + gy2) / 2 - y1))
            axes = (max(1, round((gx2 - gx1) / 2)), max(1, round((gy2 - gy1) / 2)))
            cv2.ellipse(mask, centre, axes, 0, 0, 360, 255, -1)
            sel = mask.astype(bool)
            roi[sel] = fx[sel]
        drawn += 1
    return drawn
