"""Embed a set of images once for evaluation, with an on-disk cache so reruns are fast.

Face choice: the most central of the faces at least half as large as the largest one (benchmark
images are cropped around their subject). When no face is found, ``no_face="center"`` places the
first embedder's alignment template on a centred square of half the image's shorter side (the
usual prior for cropped-face benchmarks; counted and reported), and ``no_face="reject"`` marks the
image so every pair using it is scored -1 (always "different"). Each image records what found its
face (``found_by``): ``first``, a retry of the detector (``upscaled``, ``padded``), a stage of the
profile's detector cascade (``cascade:<model>``, core/cascade.py), ``centre prior`` or ``rejected``.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from facewise.core.imageio import load_image
from facewise.core.pipeline import Pipeline
from facewise.core.quality import assess, yaw_from_landmarks
from facewise.errors import ImageError
from facewise.types import Box, Detection, Face

log = logging.getLogger(__name__)

NoFace = Literal["center", "reject"]
ARCFACE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)


@dataclass
class EmbeddedImages:
    paths: list[str]
    vectors: np.ndarray  # (N, D) fused profile vectors; zero rows for unreadable images
    yaw: np.ndarray
    quality: np.ndarray
    no_face: np.ndarray  # bool: no face detected (fallback used or rejected)
    failed: np.ndarray  # bool: image could not be read
    found_by: np.ndarray | None = None  # str: what found each image's face (module docstring)

    def found_by_counts(self) -> dict[str, int]:
        """How many images each way other than the detector's first pass found their face."""
        if self.found_by is None:
            return {}
        kinds, counts = np.unique(self.found_by[self.found_by != "first"], return_counts=True)
        return {str(k): int(c) for k, c in zip(kinds, counts, strict=True)}

    def rows(self, paths: Sequence[str | os.PathLike[str]]) -> np.ndarray:
        where = {p: i for i, p in enumerate(self.paths)}
        return np.array([where[os.fspath(p)] for p in paths], np.int64)


def central_face(faces: list[Face], width: int, height: int) -> Face:
    biggest = max(f.box.area for f in faces)
    cx, cy = width / 2, height / 2

    def off_centre(f: Face) -> float:
        x, y = f.box.center
        return (x - cx) ** 2 + (y - cy) ** 2

    return min((f for f in faces if f.box.area >= 0.5 * biggest), key=off_centre)


def centre_prior(width: int, height: int) -> Detection:
    side = 0.5 * min(width, height)
    lm = ARCFACE_112 / 112.0 * side + np.array([(width - side) / 2, (height - side) / 2], np.float32)
    box = Box((width - side) / 2, (height - side) / 2, (width + side) / 2, (height + side) / 2)
    return Detection(box=box, landmarks=lm.astype(np.float32), score=0.0, found_by="centre prior")


def _cache_key(pipeline: Pipeline, no_face: NoFace) -> str:
    options = sorted(pipeline.profile.detector_options.items())
    yaw = "" if pipeline.profile.yaw == "landmarks" else pipeline.profile.yaw
    cascade = ",".join(pipeline.profile.detector_cascade)
    key = f"{pipeline.profile.signature}|{pipeline.profile.detector}|{options if options else ''}{yaw}|{no_face}|v1"
    key += f"|{cascade}" if cascade else ""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _file_key(path: str) -> str:
    try:
        st = os.stat(path)
        return f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}"
    except OSError:
        return f"{os.path.abspath(path)}|missing"


def embed_images(pipeline: Pipeline, paths: Sequence[str | os.PathLike[str]], *, cache_dir: Path | None = None,
                 no_face: NoFace = "center", progress: Callable[[int], None] | None = None) -> EmbeddedImages:
    """Vectors for every distinct path (order kept), reusing cached rows whose files did not change."""
    uniq = list(dict.fromkeys(os.fspath(p) for p in paths))
    n, dim = len(uniq), pipeline.dim
    vec = np.zeros((n, dim), np.float32)
    yaw = np.zeros(n, np.float32)
    qual = np.zeros(n, np.float32)
    noface = np.zeros(n, bool)
    failed = np.zeros(n, bool)
    found = np.full(n, "first", dtype="<U40")
    cached: dict[str, int] = {}
    cache_file = None
    if cache_dir is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        cache_file = cache_path(pipeline, cache_dir, no_face)
        if cache_file.exists():
            with np.load(cache_file, allow_pickle=False) as z:
                keys = list(z["keys"])
                where = {k: i for i, k in enumerate(keys)}
                # caches written before found_by was kept: "not recorded" (or centre prior / rejected)
                fb = z["found_by"] if "found_by" in z.files else np.where(
                    z["failed"], "unreadable", np.where(
                        z["no_face"], "centre prior" if no_face == "center" else "rejected", "not recorded"))
                for i, p in enumerate(uniq):
                    j = where.get(_file_key(p))
                    if j is not None:
                        vec[i], yaw[i], qual[i] = z["vectors"][j], z["yaw"][j], z["quality"][j]
                        noface[i], failed[i], found[i] = z["no_face"][j], z["failed"][j], fb[j]
                        cached[p] = i
            log.info("eval cache %s: %d of %d images reused", cache_file, len(cached), n)
    for i, p in enumerate(uniq):
        if p in cached:
            if progress:
                progress(1)
            continue
        try:
            img = load_image(p)
        except ImageError as exc:
            log.warning("%s", exc)
            failed[i] = noface[i] = True
            found[i] = "unreadable"
            if progress:
                progress(1)
            continue
        h, w = img.pixels.shape[:2]
        dets = pipeline.detect_pixels(img.pixels)
        faces = pipeline.make_faces(img.pixels, dets)
        if faces:
            f = central_face(faces, w, h)
            lm, yaw[i], qual[i] = f.landmarks, f.yaw, f.quality.score
            found[i] = str(f.attributes.get("found_by", "first"))
        else:
            noface[i] = True
            found[i] = "centre prior" if no_face == "center" else "rejected"
            d = centre_prior(w, h)
            lm = d.landmarks
            yaw[i] = yaw_from_landmarks(lm)
            qual[i] = assess(img.pixels, d, float(yaw[i]), pipeline.quality_policy).score
        if faces or no_face == "center":
            vec[i] = pipeline.embed_landmarks(img.pixels, [lm])[0]
        if progress:
            progress(1)
    emb = EmbeddedImages(uniq, vec, yaw, qual, noface, failed, found)
    if cache_file is not None and len(cached) < n:
        save_cache(cache_file, emb)
    if noface.any():
        log.info("no face found in %d of %d images (%s)", int(noface.sum()), n,
                 "scored on the centre prior" if no_face == "center" else "rejected")
    return emb


def cache_path(pipeline: Pipeline, cache_dir: Path, no_face: NoFace = "center") -> Path:
    """Where :func:`embed_images` keeps this pipeline's rows in ``cache_dir``."""
    return cache_dir / f"{pipeline.profile.name}-{_cache_key(pipeline, no_face)}.npz"


def save_cache(cache_file: Path, emb: EmbeddedImages) -> None:
    """Write ``emb`` where :func:`embed_images` reads it (``bench/pose.py`` hands its vectors to
    ``facewise calibrate --cache`` this way, so the calibration does not embed LFW again)."""
    found = emb.found_by if emb.found_by is not None else np.full(len(emb.paths), "not recorded")
    tmp = cache_file.with_name(cache_file.name + ".tmp.npz")
    np.savez(tmp, keys=np.array([_file_key(p) for p in emb.paths]), vectors=emb.vectors, yaw=emb.yaw,
             quality=emb.quality, no_face=emb.no_face, failed=emb.failed, found_by=found)
    tmp.replace(cache_file)
