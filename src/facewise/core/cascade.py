"""Detector cascade: faces the profile's detector misses, looked for by the next detectors in turn.

When the profile's detector finds no face (after its own retries, e.g. YuNet upscaled or padded), each
detector of the profile's ``detector_cascade`` looks in order, and the first that finds a face gives the
detections, tagged ``found_by="cascade:<model>"`` (plus the stage's own retry in brackets). Only models
whose files resolve take part; a missing one is skipped with one WARNING line. Every door (library,
CLI, service, batch, video stills, evaluation) detects through :meth:`Pipeline.detect_pixels`, so they
all get it; the evaluation's centre-prior fallback (``eval/embed.py``) comes after every stage.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from facewise.models.catalogue import is_available
from facewise.models.protocols import Detector
from facewise.models.registry import load_detector
from facewise.types import Detection

log = logging.getLogger(__name__)
_skipped: set[str] = set()


def cascade_detectors(models: Sequence[str], threads: int = 0, providers: tuple[str, ...] = ()) -> list[Detector]:
    """The cascade's detectors whose files resolve, in order; a missing one is skipped with a log line."""
    out = []
    for m in models:
        if not is_available(m):
            if m not in _skipped:
                _skipped.add(m)
                log.warning("detector cascade: %s is not installed (see `facewise models info %s`); skipped", m, m)
            continue
        out.append(load_detector(m, threads, providers=providers))
    return out


def next_stages(stages: Sequence[Detector], pixels: np.ndarray, missed_by: str) -> list[Detection]:
    """The detections of the first stage that finds a face (tagged with its name), else none."""
    for stage in stages:
        dets = [replace(d, found_by=f"cascade:{stage.model_id}" + ("" if d.found_by == "first" else f" ({d.found_by})"))
                for d in stage.detect(pixels)]
        if dets:
            log.debug("detector cascade: %s found %d face(s) that %s missed", stage.model_id, len(dets), missed_by)
            return dets
    return []


def detect_with_cascade(first: Detector, stages: Sequence[Detector], pixels: np.ndarray) -> list[Detection]:
    """``first``'s detections, else those of the first stage that finds a face."""
    return first.detect(pixels) or next_stages(stages, pixels, first.model_id)
