"""Decisions: which threshold a collection uses, and the estimated FAR of a score.

Order of precedence: an explicit ``threshold`` in the collection settings; else the threshold at
the collection's ``target_far`` (or the profile's ``default_far``) from the collection's own
calibration (``facewise calibrate``) or the profile's shipped calibration; else the profile's
``fallback_threshold`` (logged once as uncalibrated).

:func:`check_decision` is the one rule for what may be decided at: a threshold is a finite number inside the
score range a profile produces (``SCORE_RANGE``; every score is a weighted sum of cosines); a target FAR is a
finite number inside the calibration's table (``[lowest, highest]`` measured FAR), and needs a calibration.
The facade runs it before storing a setting, and :func:`decide` runs it on what is stored, so a collection
that holds an invalid setting (written by an older version or by hand) is refused by name, never a traceback.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from facewise.decision.calibration import Calibration
from facewise.errors import ValidationError
from facewise.models.profiles import Profile

log = logging.getLogger(__name__)
_warned: set[str] = set()


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


SCORE_RANGE = (-1.0, 1.0)  # a profile's score: a weighted sum of cosines (weights sum to 1)
_REL = 1e-9  # as Calibration's own table check: a FAR printed and read back still lies inside


@lru_cache(maxsize=32)
def _calibration(blob: str) -> Calibration:
    return Calibration.from_dict(json.loads(blob))


def calibration_of(profile: Profile, settings: dict[str, Any] | None = None) -> tuple[Calibration | None, str]:
    """The calibration a collection decides with (its own, else the profile's) and where it comes from."""
    settings = settings or {}
    raw = settings.get("calibration") or profile.calibration
    where = "collection" if settings.get("calibration") else "profile"
    if not raw:
        return None, where
    if not isinstance(raw, dict):
        raise ValidationError(f"the {where}'s calibration is not usable (not a JSON object: {str(raw)[:40]!r})")
    try:
        return _calibration(json.dumps(raw, sort_keys=True)), where
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"the {where}'s calibration is not usable ({exc})") from None


def _round(x: float, direction: Any) -> float:
    """``x`` to two significant digits, rounded with ``direction`` (math.ceil / math.floor): a bound printed with
    ``.1e`` that still lies inside the range it names."""
    unit = 10.0 ** (math.floor(math.log10(x)) - 1)
    q = x / unit
    return float(direction(q - _REL * q if direction is math.ceil else q + _REL * q)) * unit


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValidationError(f"{what} must be a number, got {value!r}")
    x = float(value)
    if not math.isfinite(x):
        raise ValidationError(f"{what} must be a finite number, got {x}")
    return x


def check_decision(profile: Profile, settings: dict[str, Any] | None = None, *, threshold: Any = None,
                   target_far: Any = None) -> Decision:
    """The decision at ``threshold`` or ``target_far`` (at most one) with the collection's ``settings``' calibration,
    or :class:`ValidationError` naming what is wrong and the valid range; neither: the profile's default FAR."""
    if threshold is not None and target_far is not None:
        raise ValidationError("give a threshold or a target FAR, not both")
    cal, where = calibration_of(profile, settings)
    if threshold is not None:
        t = _number(threshold, "threshold")
        lo, hi = SCORE_RANGE
        if not lo <= t <= hi:
            raise ValidationError(f"threshold {t:g} is outside the scores profile {profile.name} produces; "
                                  f"choose a value in [{lo:g}, {hi:g}]")
        return Decision(t, "explicit", cal)
    default = target_far is None
    far = profile.default_far if default else _number(target_far, "target FAR")
    label = "the profile's default FAR" if default else "target FAR"
    if cal is None:
        if default:
            return Decision(profile.fallback_threshold, "uncalibrated", None)
        raise ValidationError(f"profile {profile.name} has no calibration, so a target FAR cannot be turned into a "
                              "threshold: set a score threshold instead, or calibrate the collection")
    lo, hi = float(cal.table_fars.min()), float(cal.table_fars.max())
    valid = f"choose a value in [{_round(lo, math.ceil):.1e}, {_round(hi, math.floor):.1e}]"
    if far < lo * (1 - _REL):
        raise ValidationError(f"{label} {far:.1e} is below this calibration's lowest measured FAR {lo:.2e}; {valid}")
    if far > hi * (1 + _REL):
        raise ValidationError(f"{label} {far:.1e} is above this calibration's highest tabulated FAR {hi:.2e}; {valid}")
    return Decision(float(cal.thresholds_at([min(max(far, lo), hi)])[0].threshold), f"far={far:.0e} ({where})", cal)


def decide(profile: Profile, settings: dict[str, Any] | None = None) -> Decision:
    """How a collection with these settings decides; :class:`ValidationError` if what is stored is invalid."""
    settings = settings or {}
    decision = check_decision(profile, settings, threshold=settings.get("threshold"),
                              target_far=None if settings.get("threshold") is not None else settings.get("target_far"))
    if decision.source == "uncalibrated" and profile.name not in _warned:
        _warned.add(profile.name)
        log.warning("profile %s has no calibration: using its fallback threshold %.3f", profile.name,
                    profile.fallback_threshold)
    return decision
