"""Degradation suite: how verification holds up when the probe face is small, blurred or damaged.

For every pair the second image is degraded; landmarks come from the clean image (so the suite
measures the embedder, not the detector), and the degraded pixels are aligned and embedded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from facewise.errors import ImageError

Degrade = Callable[[np.ndarray, float, np.random.Generator], np.ndarray]


def downscale(face_px: int) -> Degrade:
    def f(img: np.ndarray, face_w: float, rng: np.random.Generator) -> np.ndarray:
        k = min(1.0, face_px / max(face_w, 1.0))
        h, w = img.shape[:2]
        small = cv2.resize(img, (max(1, round(w * k)), max(1, round(h * k))), interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)

    return f


def gaussian_blur(sigma_of_face: float) -> Degrade:
    def f(img: np.ndarray, face_w: float, rng: np.random.Generator) -> np.ndarray:
        return cv2.GaussianBlur(img, (0, 0), max(0.5, sigma_of_face * face_w))

    return f


def motion_blur(length_of_face: float) -> Degrade:
    def f(img: np.ndarray, face_w: float, rng: np.random.Generator) -> np.ndarray:
        n = max(3, int(length_of_face * face_w) | 1)
        line = np.zeros((n, n), np.float32)
        line[n // 2, :] = 1.0 / n
        rot = cv2.getRotationMatrix2D((n / 2 - 0.5, n / 2 - 0.5), float(rng.uniform(0, 180)), 1.0)
        k = cv2.warpAffine(line, rot, (n, n))
        return cv2.filter2D(img, -1, k / max(k.sum(), 1e-6))

    return f


def jpeg(quality: int) -> Degrade:
    def f(img: np.ndarray, face_w: float, rng: np.random.Generator) -> np.ndarray:
        _, buf = cv2.imencode(".jpg", img[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
        decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        if decoded is None:  # cannot happen for a buffer imencode just wrote; says so if it ever does
            raise ImageError(f"JPEG quality {quality}: re-encoded image did not decode")
        return np.asarray(decoded[:, :, ::-1]).copy()

    return f


def elastic(alpha_of_face: float, sigma_of_face: float) -> Degrade:
    """Local elastic deformation: a smooth random displacement field (Simard et al. 2003)."""

    def f(img: np.ndarray, face_w: float, rng: np.random.Generator) -> np.ndarray:
        h, w = img.shape[:2]
        sigma = max(1.0, sigma_of_face * face_w)
        dx = cv2.GaussianBlur(rng.uniform(-1, 1, (h, w)).astype(np.float32), (0, 0), sigma)
        dy = cv2.GaussianBlur(rng.uniform(-1, 1, (h, w)).astype(np.float32), (0, 0), sigma)
        scale = alpha_of_face * face_w / max(float(np.abs(np.r_[dx.ravel(), dy.ravel()]).max()), 1e-6)
        xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        return cv2.remap(img, xs + dx * scale, ys + dy * scale, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)

    return f


CONDITIONS: dict[str, Degrade | None] = {
    "clean": None,
    "face_32px": downscale(32),
    "face_24px": downscale(24),
    "face_16px": downscale(16),
    "gaussian_blur": gaussian_blur(0.04),
    "motion_blur": motion_blur(0.15),
    "jpeg_q10": jpeg(10),
    "elastic": elastic(0.06, 0.08),
}


def describe() -> dict[str, Any]:
    return {
        "face_32px/24px/16px": "image resized so the face box is that wide, then back to its size",
        "gaussian_blur": "sigma = 4 % of the face width",
        "motion_blur": "linear kernel 15 % of the face width, random direction",
        "jpeg_q10": "JPEG quality 10",
        "elastic": "smooth random displacement, max 6 % of the face width, smoothness 8 %",
    }


def run_degradation(pipe: Any, pairs: list[Any], emb: Any, seed: int = 0,
                    progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """TAR at FAR and 10-fold accuracy per condition; ``emb`` holds the clean embeddings (EmbeddedImages)."""
    from facewise.core.imageio import load_image
    from facewise.eval import metrics as mt
    from facewise.eval.embed import central_face, centre_prior

    probes = list(dict.fromkeys(str(p.path2) for p in pairs))
    vec = {name: np.zeros((len(probes), pipe.dim), np.float32) for name in CONDITIONS}
    rng = np.random.default_rng(seed)
    for i, path in enumerate(probes):
        img = load_image(path).pixels
        h, w = img.shape[:2]
        faces = pipe.make_faces(img, pipe.detect_pixels(img))
        det = central_face(faces, w, h) if faces else None
        lm = det.landmarks if det else centre_prior(w, h).landmarks
        face_w = float(np.ptp(lm[:, 0])) * 2.2  # eye-to-eye span ~ 45 % of the face width
        for name, fn in CONDITIONS.items():
            pixels = img if fn is None else fn(img, face_w, rng)
            vec[name][i] = pipe.embed_landmarks(pixels, [lm])[0]
        if progress:
            progress(1)
    where = {p: i for i, p in enumerate(probes)}
    a = emb.vectors[emb.rows([p.path1 for p in pairs])]
    b_idx = np.array([where[str(p.path2)] for p in pairs])
    labels = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    out: dict[str, Any] = {"conditions": describe(), "results": {}}
    n_imp = int((~labels).sum())
    for name in CONDITIONS:
        s = np.einsum("ij,ij->i", a, vec[name][b_idx]).astype(np.float64)
        res = {"accuracy": round(mt.ten_fold_accuracy(s, labels, folds).mean, 5), "auc": round(mt.auc(s, labels), 5)}
        for far in (1e-2, 1e-3):
            if far * n_imp >= 1:
                res[f"tar_at_far_{far:g}"] = round(mt.tar_at_far(s, labels, far), 5)
        out["results"][name] = res
    return out
