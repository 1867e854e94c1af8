"""Decisions: which threshold a collection uses, and the estimated FAR (per comparison) and FPIR (per search) of
a score.

Two questions, two rates. **Verification** (1:1, "is this Ada?") compares once: its risk is the per-comparison
false-accept rate FAR. **Identification** (1:N, "who is this?") compares a stranger with every one of the N
persons searched and names them if any passes: its risk is the false-positive identification rate
``FPIR = 1 - (1 - FAR(t)) ** N`` (:func:`fpir`), which grows with the gallery: FAR 1e-3 names a stranger 1 time
in 3 from 400 people. So identification decides at a target FPIR (default :data:`DEFAULT_FPIR`) whose
threshold follows the number of persons searched; verification at a target FAR.

Order of precedence: an explicit ``threshold`` in the collection settings; else the collection's ``target_far``
(both questions); else, for identification, the collection's ``target_fpir`` (default :data:`DEFAULT_FPIR`)
converted at the gallery's size, and for verification the profile's ``default_far``; each through the
collection's own calibration (``facewise calibrate``) or the profile's shipped one; else the profile's
``fallback_threshold`` (logged once as uncalibrated). A target FPIR the calibration cannot reach at this gallery
size (a per-comparison FAR below the lowest it measured) decides at that lowest FAR and says so in ``source``,
with the FPIR that really holds.

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


DEFAULT_FPIR = 0.01  # identification: a stranger is named at most 1 time in 100 searches, whatever the gallery size


def fpir(far: float, n: int) -> float:
    """Chance that a stranger gets some name from a search of ``n`` persons, each compared at per-comparison
    false-accept rate ``far``: ``1 - (1 - far) ** n`` (independent comparisons; ``far`` for ``n <= 1``)."""
    far = min(max(float(far), 0.0), 1.0)
    if n <= 1:
        return far
    return float(-math.expm1(n * math.log1p(-far))) if far < 1.0 else 1.0


def far_for_fpir(target: float, n: int) -> float:
    """The per-comparison FAR at which a search of ``n`` persons names a stranger with chance ``target``."""
    t = _number(target, "target FPIR", "target_fpir")
    if not 0.0 < t < 1.0:
        raise ValidationError(f"target FPIR {t:g} must lie in (0, 1)", what="target_fpir", value=t, valid="(0, 1)")
    return t if n <= 1 else float(-math.expm1(math.log1p(-t) / n))


@dataclass(frozen=True)
class Decision:
    threshold: float
    source: str  # "explicit" | "far=1e-03 (collection)" | "fpir=1e-02 at 400 persons (profile)" | "uncalibrated"
    calibration: Calibration | None
    searched: int = 0  # persons an identification searches (0: a one-to-one decision)

    @property
    def far_at_threshold(self) -> float | None:
        """The per-comparison FAR of the threshold in force."""
        return self.far_of(self.threshold)

    @property
    def fpir(self) -> float | None:
        """The FPIR of the threshold in force: the chance that a stranger gets a name from a search of the
        ``searched`` persons (``None`` uncalibrated)."""
        return self.fpir_of(self.threshold)

    def fpir_of(self, score: float, n: int | None = None) -> float | None:
        """Estimated chance that a stranger searched against ``n`` persons (default: ``searched``) scores ``score``
        or more with one of them."""
        far = self.far_of(score)
        return None if far is None else fpir(far, max(1, self.searched if n is None else n))

    def explain(self) -> str:
        """The threshold in force and why, in one line."""
        far, rate = self.far_at_threshold, self.fpir
        rates = "" if far is None else f"; FAR per comparison {self.format_far(far)}"
        if rate is not None and self.searched:
            rates += f", FPIR {rate:.1e} over {self.searched} persons"
        return f"threshold {self.threshold:.4f} ({self.source}{rates})"

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


def _number(value: Any, what: str, key: str | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValidationError(f"{what} must be a number, got {value!r}", what=key, value=repr(value)[:40])
    x = float(value)
    if not math.isfinite(x):
        raise ValidationError(f"{what} must be a finite number, got {x}", what=key, value=str(x))
    return x


def check_decision(profile: Profile, settings: dict[str, Any] | None = None, *, threshold: Any = None,
                   target_far: Any = None, target_fpir: Any = None, searched: int | None = None,
                   clamp: bool = False) -> Decision:
    """The decision at ``threshold``, ``target_far`` or ``target_fpir`` (at most one) with the collection's
    ``settings``' calibration, or :class:`ValidationError` naming what is wrong and the valid range. ``searched``:
    the persons an identification searches (``None``: a one-to-one decision). None given: identification at
    :data:`DEFAULT_FPIR`, verification at the profile's default FAR. ``clamp``: a target FPIR out of reach at this
    gallery size decides at the nearest FAR the calibration has (and says so) instead of raising."""
    if sum(x is not None for x in (threshold, target_far, target_fpir)) > 1:
        raise ValidationError("give one of a threshold, a target FAR or a target FPIR, not several")
    cal, where = calibration_of(profile, settings)
    n = 0 if searched is None else max(0, int(searched))
    if threshold is not None:
        t = _number(threshold, "threshold", "threshold")
        lo, hi = SCORE_RANGE
        if not lo <= t <= hi:
            raise ValidationError(f"threshold {t:g} is outside the scores profile {profile.name} produces; "
                                  f"choose a value in [{lo:g}, {hi:g}]", what="threshold", value=t,
                                  valid=f"[{lo:g}, {hi:g}]")
        return Decision(t, "explicit", cal, n)
    if target_fpir is not None or (target_far is None and searched is not None):
        return _at_fpir(profile, cal, where, target_fpir, n, clamp)
    default = target_far is None
    far = profile.default_far if default else _number(target_far, "target FAR", "target_far")
    label = "the profile's default FAR" if default else "target FAR"
    if cal is None:
        if default:
            return Decision(profile.fallback_threshold, "uncalibrated", None, n)
        raise ValidationError(f"profile {profile.name} has no calibration, so a target FAR cannot be turned into a "
                              "threshold: set a score threshold instead, or calibrate the collection",
                              what="target_far", value=far)
    lo, hi = float(cal.table_fars.min()), float(cal.table_fars.max())
    bounds = f"[{_round(lo, math.ceil):.1e}, {_round(hi, math.floor):.1e}]"
    valid = f"choose a value in {bounds}"
    if far < lo * (1 - _REL):
        raise ValidationError(f"{label} {far:.1e} is below this calibration's lowest measured FAR {lo:.2e}; {valid}",
                              what="target_far", value=far, valid=bounds)
    if far > hi * (1 + _REL):
        raise ValidationError(f"{label} {far:.1e} is above this calibration's highest tabulated FAR {hi:.2e}; "
                              f"{valid}", what="target_far", value=far, valid=bounds)
    return Decision(float(cal.thresholds_at([min(max(far, lo), hi)])[0].threshold), f"far={far:.0e} ({where})", cal,
                    n)


def _at_fpir(profile: Profile, cal: Calibration | None, where: str, target: Any, n: int, clamp: bool) -> Decision:
    """Identification at a target FPIR over ``n`` persons (``target`` None: :data:`DEFAULT_FPIR`)."""
    default = target is None
    rate = DEFAULT_FPIR if default else _number(target, "target FPIR", "target_fpir")
    per_comparison = far_for_fpir(rate, max(1, n))
    if cal is None:
        if default:
            return Decision(profile.fallback_threshold, "uncalibrated", None, n)
        raise ValidationError(f"profile {profile.name} has no calibration, so a target FPIR cannot be turned into a "
                              "threshold: set a score threshold instead, or calibrate the collection",
                              what="target_fpir", value=rate)
    lo, hi = float(cal.table_fars.min()), float(cal.table_fars.max())
    size = f"{max(1, n)} person{'s' if n != 1 else ''}"
    reach = (fpir(lo, max(1, n)), fpir(hi, max(1, n)))
    bounds = f"[{_round(reach[0], math.ceil):.1e}, {_round(reach[1], math.floor):.1e}]"
    label = "the default FPIR" if default else "target FPIR"
    source = f"fpir={rate:.0e} at {size} ({'default' if default else where})"
    if per_comparison < lo * (1 - _REL):
        if not (clamp or default):
            raise ValidationError(f"{label} {rate:.1e} over {size} needs a FAR per comparison of {per_comparison:.1e}, "
                                  f"below this calibration's lowest measured FAR {lo:.2e}; choose a value in {bounds} "
                                  "(or calibrate on more impostor pairs)", what="target_fpir", value=rate, valid=bounds)
        per_comparison, source = lo, f"{source}, capped at the calibration's lowest FAR {lo:.1e}"
    elif per_comparison > hi * (1 + _REL):
        if not (clamp or default):
            raise ValidationError(f"{label} {rate:.1e} over {size} needs a FAR per comparison of {per_comparison:.1e}, "
                                  f"above this calibration's highest tabulated FAR {hi:.2e}; choose a value in "
                                  f"{bounds}", what="target_fpir", value=rate, valid=bounds)
        per_comparison, source = hi, f"{source}, capped at the calibration's highest FAR {hi:.1e}"
    t = float(cal.thresholds_at([min(max(per_comparison, lo), hi)])[0].threshold)
    return Decision(t, source, cal, n)


def decide(profile: Profile, settings: dict[str, Any] | None = None, searched: int | None = None) -> Decision:
    """How a collection with these settings decides: an identification over ``searched`` persons, or (``None``) a
    one-to-one verification; :class:`ValidationError` if what is stored is invalid. A stored target FPIR the
    calibration cannot reach at today's gallery size is capped (and says so), never an error."""
    settings = settings or {}
    explicit = settings.get("threshold")
    far = None if explicit is not None else settings.get("target_far")
    rate = None if explicit is not None or far is not None or searched is None else settings.get("target_fpir")
    decision = check_decision(profile, settings, threshold=explicit, target_far=far, target_fpir=rate,
                              searched=searched, clamp=True)
    if decision.source == "uncalibrated" and profile.name not in _warned:
        _warned.add(profile.name)
        log.warning("profile %s has no calibration: using its fallback threshold %.3f", profile.name,
                    profile.fallback_threshold)
    return decision
