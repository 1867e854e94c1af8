"""Face fidelity of reconstructed or generated images: identity similarity to the originals.

Files are matched by relative path (``ORIG_DIR/a/b.png`` with ``RECON_DIR/a/b.png``; a different
extension is accepted). Each pair is processed and discarded (streaming, bounded memory).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from facewise.core.imageio import is_image_path, load_image
from facewise.core.pipeline import Pipeline
from facewise.errors import ImageError
from facewise.eval.embed import central_face, centre_prior

log = logging.getLogger(__name__)
SIZE_BINS = (("small (<64 px)", 0, 64), ("medium (64-128 px)", 64, 128), ("large (>=128 px)", 128, 1 << 30))


def match_files(orig: Path, recon: Path) -> list[tuple[Path, Path]]:
    by_stem = {}
    for f in recon.rglob("*"):
        if f.is_file() and is_image_path(f):
            by_stem[f.relative_to(recon).with_suffix("").as_posix()] = f
    pairs = []
    for f in sorted(orig.rglob("*")):
        if f.is_file() and is_image_path(f):
            key = f.relative_to(orig).with_suffix("").as_posix()
            if key in by_stem:
                pairs.append((f, by_stem[key]))
    return pairs


def fidelity(pipe: Pipeline, pairs: list[tuple[Path, Path]], threshold: float,
             progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Per pair: the original's central face landmarks are used for both images (same geometry)."""
    sims, sizes, rows = [], [], []
    missing = 0
    for o, r in pairs:
        try:
            io, ir = load_image(o), load_image(r)
        except ImageError as exc:
            log.warning("%s", exc)
            missing += 1
            continue
        h, w = io.pixels.shape[:2]
        faces = pipe.make_faces(io.pixels, pipe.detect_pixels(io.pixels))
        det = central_face(faces, w, h) if faces else None
        lm = det.landmarks if det else centre_prior(w, h).landmarks
        size = det.box.width if det else 0.5 * min(w, h)
        rec = ir.pixels
        if rec.shape[:2] != (h, w):
            import cv2

            rec = cv2.resize(rec, (w, h), interpolation=cv2.INTER_AREA)
        v = pipe.embed_landmarks(io.pixels, [lm])[0], pipe.embed_landmarks(rec, [lm])[0]
        s = float(v[0] @ v[1])
        sims.append(s)
        sizes.append(size)
        rows.append({"original": str(o), "reconstruction": str(r), "similarity": round(s, 5),
                     "face_px": round(size, 1), "face_found": det is not None})
        if progress:
            progress(1)
    sims_a, sizes_a = np.array(sims), np.array(sizes)
    by_size = {}
    for name, lo, hi in SIZE_BINS:
        m = (sizes_a >= lo) & (sizes_a < hi)
        if m.any():
            by_size[name] = {"pairs": int(m.sum()), "mean": round(float(sims_a[m].mean()), 5),
                             "share_above_threshold": round(float((sims_a[m] >= threshold).mean()), 5)}
    return {
        "pairs": len(sims), "unreadable": missing,
        "mean_similarity": round(float(sims_a.mean()), 5) if len(sims) else None,
        "share_above_threshold": round(float((sims_a >= threshold).mean()), 5) if len(sims) else None,
        "threshold": round(threshold, 5), "by_face_size": by_size, "per_pair": rows,
    }
