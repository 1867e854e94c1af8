"""Similarity constants stated as error rates, converted through a profile's own calibration.

Profiles score on different scales: ``fast``'s strangers sit near cosine 0, ``default``'s (dlib) near 0.85. A
constant such as "re-attach a lost track at similarity 0.45" means FAR 5e-5 for ``fast`` and accepts almost
every stranger for ``default``. So every similarity constant of facewise (clustering, tracking, naming in video)
is stated as a per-comparison false-accept rate, and :class:`ScoreScale` turns it into the profile's score:
the score whose estimated FAR is that rate, read off the calibration's FAR knots (log-interpolated; any rate in
``[1 / n_impostor, 1]``). A profile without a calibration keeps the cosine constants given as fallbacks.

Open-set identification (:func:`fpir`): a stranger searched against ``n`` persons is named when the best of
``n`` impostor scores passes the threshold, so the false-positive identification rate is
``1 - (1 - FAR(t)) ** n`` (independent comparisons); :func:`far_for_fpir` inverts it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from facewise.decision.calibration import Calibration
from facewise.decision.matching import calibration_of, far_for_fpir, fpir
from facewise.errors import ValidationError
from facewise.models.profiles import Profile

__all__ = ["ScoreScale", "far_for_fpir", "fpir"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoreScale:
    """A profile's score scale: the score at a per-comparison FAR, and the FAR of scores."""

    profile: str
    calibration: Calibration | None

    @classmethod
    def of(cls, profile: Profile) -> ScoreScale:
        try:
            cal, _ = calibration_of(profile)
        except ValidationError as exc:
            log.warning("profile %s: calibration not usable (%s); similarity constants fall back", profile.name, exc)
            cal = None
        return cls(profile.name, cal)

    @property
    def calibrated(self) -> bool:
        return self.calibration is not None

    def _knots(self) -> tuple[np.ndarray, np.ndarray]:
        cal = self.calibration
        assert cal is not None
        return np.asarray(cal.knot_scores, np.float64), np.log(np.asarray(cal.knot_fars, np.float64))

    def at_far(self, far: float, fallback: float) -> float:
        """The score whose estimated FAR is ``far`` (clipped to the calibration's range); ``fallback`` (a cosine
        constant) when the profile has no calibration."""
        if self.calibration is None:
            return float(fallback)
        scores, log_fars = self._knots()  # scores ascending, FARs descending
        lf = math.log(min(max(float(far), float(np.exp(log_fars[-1]))), 1.0))
        return float(np.interp(lf, log_fars[::-1], scores[::-1]))

    def far(self, scores: npt.ArrayLike) -> np.ndarray:
        """Estimated per-comparison FAR of each score (1 below every impostor; ``1/n`` above every one); without
        a calibration, ``nan``."""
        s = np.asarray(scores, np.float64)
        if self.calibration is None:
            return np.full(s.shape, np.nan)
        knots, log_fars = self._knots()
        floor = 1.0 / self.calibration.n_impostor
        return np.asarray(np.maximum(np.exp(np.interp(s, knots, log_fars, left=0.0, right=math.log(floor))), floor))

    def evidence(self, scores: npt.ArrayLike, fallback: npt.ArrayLike | None = None) -> np.ndarray:
        """How strongly scores say "same person", in [0, 1] on every profile's scale: ``-log10(FAR) / 4``
        (FAR 1e-4 or less: 1; FAR 0.1: 0.25; a typical stranger: ~0.05). Uncalibrated: ``max(score, 0)``."""
        if self.calibration is None:
            return np.clip(np.asarray(scores if fallback is None else fallback, np.float64), 0.0, 1.0)
        return np.asarray(np.clip(-np.log10(self.far(scores)) / 4.0, 0.0, 1.0))
