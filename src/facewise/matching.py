"""Decisions: which threshold a collection uses, and the estimated FAR of a score.

Order of precedence: an explicit ``threshold`` in the collection settings; else the threshold at
the collection's ``target_far`` (or the profile's ``default_far``) from the collection's own
calibration (``facewise calibrate``) or the profile's shipped calibration; else the profile's
``fallback_threshold`` (logged as uncalibrated).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from .profiles import Profile

log = logging.getLogger(__name__)
_warned: set[str] = set()


@dataclass(frozen=True)
class Decision:
    threshold: float
    source: str  # "explicit" | "far=1e-03 (collection)" | "far=1e-03 (profile)" | "uncalibrated"
    calibration: dict[str, Any] | None

    def far_of(self, score: float) -> float | None:
        if not self.calibration:
            return None
        from .eval.metrics import Calibration

        return float(Calibration.from_dict(self.calibration).far_of(score))


def decide(profile: Profile, settings: dict[str, Any] | None = None) -> Decision:
    settings = settings or {}
    cal = settings.get("calibration") or profile.calibration
    where = "collection" if settings.get("calibration") else "profile"
    if settings.get("threshold") is not None:
        return Decision(float(settings["threshold"]), "explicit", cal)
    far = float(settings.get("target_far") or profile.default_far)
    if cal:
        from .eval.metrics import Calibration

        t = float(Calibration.from_dict(cal).thresholds_at([far])[0][0])
        return Decision(t, f"far={far:.0e} ({where})", cal)
    if profile.name not in _warned:
        _warned.add(profile.name)
        log.warning("profile %s has no calibration: using its fallback threshold %.3f", profile.name,
                    profile.fallback_threshold)
    return Decision(profile.fallback_threshold, "uncalibrated", None)
