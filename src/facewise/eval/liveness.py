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

from facewise.eval import metrics

logger = logging.getLogger(__name__)

__all__ = ["LiveScorer", "apcer_bpcer", "equal_error_rate", "evaluate_liveness", "iter_samples"]

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
            bgr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            if bgr is None:
                logger.warning("could not read image %s; skipped", path)
                continue
            if bgr.dtype != np.uint8:
                bgr = cv2.convertScaleAbs(bgr, alpha=255.0 / max(float(bgr.max()), 1.0))
            yield path.name, _to_rgb(bgr)
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


def _score_folder(
    folder: Path,
    model: LiveScorer,
    detector_fn: DetectorFn,
    size: tuple[int, int],
    video_stride: int,
    max_frames_per_video: int | None,
) -> tuple[list[str], np.ndarray, int]:
    names: list[str] = []
    scores: list[float] = []
    no_face = 0
    whole = np.array([0.0, 0.0, float(size[0]), float(size[1])])
    for name, rgb in iter_samples(folder, video_stride, max_frames_per_video):
        img = _resize(rgb, size)
        box = _largest_box(detector_fn(img))
        if box is None:
            no_face += 1
            logger.debug("no face found in %s/%s; scoring the whole image", folder.name, name)
            box = whole
        names.append(name)
        scores.append(float(np.asarray(model.live_scores(img, box[None, :])).ravel()[0]))
    return names, np.asarray(scores, dtype=np.float64), no_face


# --------------------------------------------------------------------------------------------- main


def evaluate_liveness(
    root: Path,
    model: LiveScorer,
    detector_fn: DetectorFn,
    size: int | tuple[int, int] = 224,
    threshold: float | None = None,
    video_stride: int = 10,
    max_frames_per_video: int | None = None,
) -> dict[str, Any]:
    """Score ``root/real`` and ``root/fake`` with ``model`` and report APCER / BPCER / ACER / EER.

    Args:
        root: folder holding ``real/`` and ``fake/``.
        model: object with ``live_scores(image_rgb, boxes)`` returning P(live) per box.
        detector_fn: ``detector_fn(image_rgb) -> boxes``, rows ``(x1, y1, x2, y2, ...)`` in pixels of
            the resized image (extra columns ignored); the largest box is scored.  When no face is
            found the whole resized image is used as the box (counted in ``no_face``).
        size: every image / frame is resized to ``size x size`` (or ``(width, height)``) first.
        threshold: decision threshold on P(live).  ``None`` reports at 0.5 and at the EER threshold.
        video_stride: every ``video_stride``-th frame of a video in ``real/`` or ``fake/`` is a sample.
        max_frames_per_video: optional cap on samples per video.

    Returns:
        A dict with ``threshold``, ``apcer``, ``bpcer``, ``acer`` (at ``threshold``, 0.5 if None),
        ``eer``, ``eer_threshold``, ``at_eer_threshold`` (APCER/BPCER/ACER there), ``n_real``,
        ``n_fake``, ``no_face`` (``{"real": k, "fake": k}``), ``size`` as ``(width, height)``,
        and ``scores`` / ``names`` (per class, for further analysis).
    """
    root = Path(root)
    wh = (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if video_stride < 1:
        raise ValueError("video_stride must be >= 1")
    folders = {label: root / label for label in ("real", "fake")}
    for label, folder in folders.items():
        if not folder.is_dir():
            raise FileNotFoundError(f"missing {label}/ folder under {root}")

    names: dict[str, list[str]] = {}
    scores: dict[str, np.ndarray] = {}
    no_face: dict[str, int] = {}
    for label, folder in folders.items():
        names[label], scores[label], no_face[label] = _score_folder(
            folder, model, detector_fn, wh, video_stride, max_frames_per_video
        )
        logger.info("%s: %d samples, %d without a detected face", label, len(names[label]), no_face[label])

    thr = 0.5 if threshold is None else float(threshold)
    apcer, bpcer, acer = apcer_bpcer(scores["real"], scores["fake"], thr)
    eer, eer_thr = equal_error_rate(scores["real"], scores["fake"])
    e_apcer, e_bpcer, e_acer = apcer_bpcer(scores["real"], scores["fake"], eer_thr)
    result: dict[str, Any] = {
        "threshold": thr,
        "apcer": apcer,
        "bpcer": bpcer,
        "acer": acer,
        "eer": eer,
        "eer_threshold": eer_thr,
        "at_eer_threshold": {"apcer": e_apcer, "bpcer": e_bpcer, "acer": e_acer},
        "n_real": int(scores["real"].size),
        "n_fake": int(scores["fake"].size),
        "no_face": no_face,
        "size": wh,
        "scores": scores,
        "names": names,
    }
    logger.info(
        "liveness @%.3f: APCER %.4f BPCER %.4f ACER %.4f | EER %.4f @%.4f",
        thr,
        apcer,
        bpcer,
        acer,
        eer,
        eer_thr,
    )
    return result
