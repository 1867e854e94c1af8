"""Evaluate a presentation-attack (liveness) model on a folder of real and fake samples.

Layout of ``root``::

    root/real/*.{png,jpg,...}   bona fide samples (images and/or videos)
    root/fake/*.{png,jpg,...}   attack samples (images and/or videos)

Every image (and every sampled video frame) is first resized to one fixed size before detection and
scoring.  This matters: in some data sets (e.g. apfol) the real and fake crops come at different
resolutions, and a model scoring native-size images could separate them by size alone.

Metrics (ISO/IEC 30107-3 names), with "live" decided as ``score >= threshold``:

* APCER -- fraction of attack samples accepted as live,
* BPCER -- fraction of bona fide samples rejected as attacks,
* ACER  -- (APCER + BPCER) / 2,
* EER   -- the error rate where APCER equals BPCER (threshold swept over the observed scores).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from facewise.core.imageio import load_image
from facewise.errors import BadInputError, FacewiseError, ImageError
from facewise.eval import metrics

logger = logging.getLogger(__name__)

__all__ = ["LiveScorer", "apcer_bpcer", "collect", "equal_error_rate", "evaluate_liveness", "fit_threshold",
           "iter_samples", "product_eer", "product_rates"]

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".webm", ".mov", ".mkv", ".m4v"})

DetectorFn = Callable[[np.ndarray], np.ndarray | Sequence[Sequence[float]]]


class LiveScorer(Protocol):
    """Anything with ``live_scores(image_rgb, boxes) -> P(live) per box`` (e.g. ``MiniFASNet``)."""

    def live_scores(self, image_rgb: np.ndarray, boxes: np.ndarray) -> np.ndarray: ...


# --------------------------------------------------------------------------------------------- metrics


def apcer_bpcer(
    real_scores: np.ndarray, fake_scores: np.ndarray, threshold: float
) -> tuple[float, float, float]:
    """``(APCER, BPCER, ACER)`` at ``threshold`` (live iff ``score >= threshold``); see :mod:`facewise.eval.metrics`."""
    r = metrics.apcer_bpcer_acer(fake_scores, real_scores, threshold)
    return r.apcer, r.bpcer, r.acer


def equal_error_rate(real_scores: np.ndarray, fake_scores: np.ndarray) -> tuple[float, float]:
    """``(EER, threshold)`` where APCER = BPCER (interpolated); see :func:`facewise.eval.metrics.liveness_eer`."""
    return metrics.liveness_eer(fake_scores, real_scores)


# --------------------------------------------------------------------------------------------- samples


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    interp = cv2.INTER_AREA if image.shape[1] > size[0] and image.shape[0] > size[1] else cv2.INTER_LINEAR
    return cv2.resize(image, size, interpolation=interp)


def _to_rgb(bgr: np.ndarray) -> np.ndarray:
    if bgr.ndim == 2:
        return cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB)
    if bgr.shape[2] == 4:
        return cv2.cvtColor(bgr, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def iter_samples(
    folder: Path, video_stride: int = 10, max_frames_per_video: int | None = None
) -> Iterator[tuple[str, np.ndarray]]:
    """Yield ``(name, image_rgb)`` for every image in ``folder`` and every ``video_stride``-th video frame.

    Files are visited in sorted order; frame names are ``"<file>#<frame index>"``.
    """
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        ext = path.suffix.lower()
        if ext in IMAGE_EXTENSIONS:
            try:  # the product's decoder: EXIF orientation, every mode to RGB
                pixels = load_image(path).pixels
            except ImageError as exc:
                logger.warning("could not read image %s (%s); skipped", path, exc)
                continue
            yield path.name, pixels
        elif ext in VIDEO_EXTENSIONS:
            cap = cv2.VideoCapture(str(path))
            if not cap.isOpened():
                logger.warning("could not open video %s; skipped", path)
                continue
            index = taken = 0
            try:
                while max_frames_per_video is None or taken < max_frames_per_video:
                    ok, frame = cap.read()
                    if not ok:
                        break
                    if index % video_stride == 0:
                        taken += 1
                        yield f"{path.name}#{index}", _to_rgb(frame)
                    index += 1
            finally:
                cap.release()
        else:
            logger.debug("ignoring %s (not an image or video)", path)


def _largest_box(boxes: np.ndarray | Sequence[Sequence[float]] | None) -> np.ndarray | None:
    if boxes is None:
        return None
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.size == 0:
        return None
    arr = np.atleast_2d(arr)[:, :4]
    area = np.clip(arr[:, 2] - arr[:, 0], 0, None) * np.clip(arr[:, 3] - arr[:, 1], 0, None)
    if not np.any(area > 0):
        return None
    return np.asarray(arr[int(np.argmax(area))])


RowFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def collect(
    folder: Path,
    row_fn: RowFn,
    detector_fn: DetectorFn,
    size: tuple[int, int] | None,
    video_stride: int = 10,
    max_frames_per_video: int | None = None,
) -> tuple[list[str], np.ndarray]:
    """``row_fn(image, box[None])`` on the largest detected face of every sample, NaN rows where none.

    Images are resized to ``size`` first (``None``: native size). Returns names and a ``[N, K]`` matrix.
    """
    names: list[str] = []
    rows: list[np.ndarray | None] = []
    for name, rgb in iter_samples(folder, video_stride, max_frames_per_video):
        img = rgb if size is None else _resize(rgb, size)
        box = _largest_box(detector_fn(img))
        names.append(name)
        if box is None:
            logger.debug("no face found in %s/%s: refused, as the product refuses it", folder.name, name)
            rows.append(None)
        else:
            rows.append(np.asarray(row_fn(img, box[None, :]), dtype=np.float64).ravel())
    width = next((len(r) for r in rows if r is not None), 1)
    mat = np.full((len(rows), width), np.nan)
    for i, r in enumerate(rows):
        if r is not None:
            mat[i] = r
    return names, mat


def product_rates(real: np.ndarray, fake: np.ndarray, threshold: float) -> dict[str, float]:
    """APCER / BPCER / ACER as the product decides: NaN (no face) is never accepted."""
    acc_real = np.nan_to_num(real, nan=-np.inf) >= threshold
    acc_fake = np.nan_to_num(fake, nan=-np.inf) >= threshold
    apcer = float(acc_fake.mean()) if fake.size else 0.0
    bpcer = float(1.0 - acc_real.mean()) if real.size else 0.0
    return {"apcer": apcer, "bpcer": bpcer, "acer": (apcer + bpcer) / 2}


def product_eer(real: np.ndarray, fake: np.ndarray) -> tuple[float, float]:
    """``(EER, threshold)`` under the product rule: the swept threshold where APCER and BPCER are closest."""
    cands = np.unique(np.concatenate([real[~np.isnan(real)], fake[~np.isnan(fake)]]))
    if cands.size == 0:
        return 1.0, 0.5
    best = (np.inf, 1.0, 0.5)
    for t in cands:
        r = product_rates(real, fake, float(t))
        gap = abs(r["apcer"] - r["bpcer"])
        if gap < best[0]:
            best = (gap, r["acer"], float(t))
    return best[1], best[2]


def fit_threshold(bona_fide: np.ndarray, target_bpcer: float = 0.05) -> float:
    """The P(live) threshold that refuses ``target_bpcer`` of the user's own detected bona fide faces."""
    s = np.asarray(bona_fide, dtype=np.float64)
    s = s[~np.isnan(s)]
    if s.size < 10:
        raise BadInputError(f"fitting a liveness threshold needs at least 10 bona fide faces, got {s.size}")
    if not 0.0 < target_bpcer < 0.5:
        raise FacewiseError(f"target BPCER must be in (0, 0.5), got {target_bpcer}")
    return float(np.quantile(s, target_bpcer))


# --------------------------------------------------------------------------------------------- main


def evaluate_liveness(
    root: Path,
    model: LiveScorer,
    detector_fn: DetectorFn,
    size: int | tuple[int, int] | None = 224,
    threshold: float | None = None,
    video_stride: int = 10,
    max_frames_per_video: int | None = None,
) -> dict[str, Any]:
    """Score ``root/real`` and ``root/fake`` with ``model`` and report APCER / BPCER / ACER / EER.

    Scored exactly as the product decides: the largest detected face is scored; a sample with no
    detected face is refused (never accepted as live), whatever its class, and counted in ``no_face``.
    ``faces_only`` repeats the rates over the samples with a face.

    Args:
        root: folder holding ``real/`` and ``fake/``.
        model: object with ``live_scores(image_rgb, boxes)`` returning P(live) per box.
        detector_fn: ``detector_fn(image_rgb) -> boxes``, rows ``(x1, y1, x2, y2, ...)`` in pixels of
            the resized image (extra columns ignored).
        size: every image / frame is resized to ``size x size`` (or ``(width, height)``) first; ``None``
            keeps the native size (only fair when real and fake share one size).
        threshold: decision threshold on P(live) (0.5 if None).
        video_stride: every ``video_stride``-th frame of a video in ``real/`` or ``fake/`` is a sample.
        max_frames_per_video: optional cap on samples per video.

    Returns:
        A dict with ``threshold``, ``apcer``, ``bpcer``, ``acer``, ``eer``, ``eer_threshold``,
        ``at_eer_threshold``, ``faces_only``, ``n_real``, ``n_fake``, ``no_face`` (``{"real": k, "fake": k}``),
        ``size`` and ``scores`` / ``names`` (per class; NaN where no face was found).
    """
    root = Path(root)
    wh = None if size is None else (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if video_stride < 1:
        raise FacewiseError("video_stride must be >= 1")
    folders = {label: root / label for label in ("real", "fake")}
    for label, folder in folders.items():
        if not folder.is_dir():
            raise FacewiseError(f"missing {label}/ folder under {root}")

    names: dict[str, list[str]] = {}
    scores: dict[str, np.ndarray] = {}
    for label, folder in folders.items():
        names[label], mat = collect(folder, model.live_scores, detector_fn, wh, video_stride, max_frames_per_video)
        scores[label] = mat[:, 0]
        if not names[label]:
            raise FacewiseError(f"no images or videos in {folder}")
    no_face = {label: int(np.isnan(s).sum()) for label, s in scores.items()}
    logger.info("no face detected (refused): %s", no_face)

    thr = 0.5 if threshold is None else float(threshold)
    rates = product_rates(scores["real"], scores["fake"], thr)
    eer, eer_thr = product_eer(scores["real"], scores["fake"])
    faces = {k: v[~np.isnan(v)] for k, v in scores.items()}
    result: dict[str, Any] = {
        "threshold": thr,
        **rates,
        "eer": eer,
        "eer_threshold": eer_thr,
        "at_eer_threshold": product_rates(scores["real"], scores["fake"], eer_thr),
        "faces_only": product_rates(faces["real"], faces["fake"], thr),
        "n_real": int(scores["real"].size),
        "n_fake": int(scores["fake"].size),
        "no_face": no_face,
        "size": wh,
        "scores": scores,
        "names": names,
    }
    logger.info("liveness @%.3f: APCER %.4f BPCER %.4f ACER %.4f | EER %.4f @%.4f",
                thr, rates["apcer"], rates["bpcer"], rates["acer"], eer, eer_thr)
    return result
