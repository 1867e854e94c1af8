"""Decisions: which threshold a collection uses, and the estimated FAR of a score.

Order of precedence: an explicit ``threshold`` in the collection settings; else the threshold at
the collection's ``target_far`` (or the profile's ``default_far``) from the collection's own
calibration (``facewise calibrate``) or the profile's shipped calibration; else the profile's
``fallback_threshold`` (logged once as uncalibrated).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from facewise.decision.calibration import Calibration
from facewise.models.profiles import Profile

log = logging.getLogger(__name__)
_warned: set[str] = set()


@lru_cache(maxsize=32)
def _calibration(blob: str) -> Calibration:
    return Calibration.from_dict(json.loads(blob))


@dataclass(frozen=True)
class Decision:
    threshold: float
    source: str  # "explicit" | "far=1e-03 (collection)" | "far=1e-03 (profile)" | "uncalibrated"
    calibration: Calibration | None

    @property
    def far_floor(self) -> float | None:
        """The smallest FAR the calibration can tell apart (1 / number of impostor scores)."""
        return None if self.calibration is None else 1.0 / self.calibration.n_impostor

    def format_far(self, far: float | None) -> str:
        """``1.2e-04``, ``<=5.0e-07`` at the calibration's resolution, or ``n/a`` when uncalibrated."""
        if far is None:
            return "n/a"
        floor = self.far_floor
        return f"<={far:.1e}" if floor is not None and far <= floor * 1.0001 else f"{far:.1e}"

    def far_of(self, score: float) -> float | None:
        """Estimated false-accept rate of a score (``None`` when uncalibrated)."""
        if self.calibration is None:
            return None
        return float(self.calibration.far_of(score).far)


def decide(profile: Profile, settings: dict[str, Any] | None = None) -> Decision:
    settings = settings or {}
    raw = settings.get("calibration") or profile.calibration
    where = "collection" if settings.get("calibration") else "profile"
    cal = _calibration(json.dumps(raw, sort_keys=True)) if raw else None
    if settings.get("threshold") is not None:
        return Decision(float(settings["threshold"]), "explicit", cal)
    far = float(settings.get("target_far") or profile.default_far)
    if cal is not None:
        return Decision(float(cal.thresholds_at([far])[0].threshold), f"far={far:.0e} ({where})", cal)
    if profile.name not in _warned:
        _warned.add(profile.name)
        log.warning("profile %s has no calibration: using its fallback threshold %.3f", profile.name,
                    profile.fallback_threshold)
    return Decision(profile.fallback_threshold, "uncalibrated", None)
