"""Profiles: a detector plus one or more embedders fused at score level, with their calibration.

A profile's face vector is the concatenation of each embedder's unit vector scaled by the square
root of its weight (weights sum to 1), so the fused score sum_i w_i cos_i is a single dot
product and the gallery searches one matrix.

Models score on different scales (dlib's cosines of strangers sit near 0.84 with a spread of 0.035;
reid-0095's near 0 with 0.097), so an embedder entry may give ``shift`` and ``scale`` (the mean and
spread of its impostor cosines): its ``weight`` then applies to the normalised score
``(cos - shift) / scale`` and the effective cosine weight is ``weight / scale``, renormalised.

``calibration`` holds the impostor-score summary measured by ``facewise calibrate`` (protocol in
docs/ACCURACY.md) from which thresholds at a target FAR and the FAR of any score are derived.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facewise.errors import FacewiseError, ValidationError
from facewise.models.catalogue import card, is_available

PROFILE_DIR = Path(__file__).parent


@dataclass(frozen=True)
class EmbedderSpec:
    """``weight``: effective weight on the raw cosine (the profile's weights sum to 1); ``shift``/``scale``:
    the model's impostor-cosine mean and spread, used to fuse in normalised units when weights change."""

    model: str
    weight: float
    shift: float = 0.0
    scale: float = 1.0
    flip: bool | None = None  # flip test-time augmentation for this model; None: the profile's setting

    @property
    def score_weight(self) -> float:
        """The weight on the normalised score (not yet renormalised across the profile)."""
        return self.weight * self.scale


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    detector: str
    embedders: tuple[EmbedderSpec, ...]
    landmarks: str | None = None  # optional landmark refiner run on every detection
    detector_fallback: str | None = None  # used (with a log line) where the detector is not installed
    detector_options: dict[str, Any] = field(default_factory=dict)  # keyword arguments of the detector backend
    detector_cascade: tuple[str, ...] = ()  # detectors asked in turn when the detector finds no face (core/cascade)
    yaw: str = "landmarks"  # where each face's yaw (quality, pose-aware fusion) comes from: landmarks | fsanet
    flip: bool = False
    default_far: float = 1e-3
    fallback_threshold: float = 0.5
    calibration: dict[str, Any] | None = None
    fusion: dict[str, Any] = field(default_factory=dict)
    providers: tuple[str, ...] = ()  # execution providers in order (models/runtime.py); FACEWISE_PROVIDERS wins

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Profile:
        embs: list[EmbedderSpec] = []
        for e in d["embedders"]:
            scale, shift = float(e.get("scale", 1.0)), float(e.get("shift", 0.0))
            if not scale > 0:
                raise FacewiseError(f"profile {d.get('name')!r}: embedder {e['model']!r} scale must be positive")
            flip = e.get("flip")
            embs.append(EmbedderSpec(e["model"], float(e.get("weight", 1.0)) / scale, shift, scale,
                                     None if flip is None else bool(flip)))
        total = sum(e.weight for e in embs)
        if total <= 0:
            raise FacewiseError(f"profile {d.get('name')!r}: embedder weights must sum to a positive number")
        normalised = tuple(EmbedderSpec(e.model, e.weight / total, e.shift, e.scale, e.flip) for e in embs)
        return cls(
            name=d["name"], description=d.get("description", ""), detector=d["detector"], embedders=normalised,
            landmarks=d.get("landmarks"), detector_options=dict(d.get("detector_options", {})),
            yaw=_yaw_source(d), detector_fallback=d.get("detector_fallback"),
            detector_cascade=tuple(str(m) for m in d.get("detector_cascade", [])),
            flip=bool(d.get("flip", False)), default_far=float(d.get("default_far", 1e-3)),
            fallback_threshold=float(d.get("fallback_threshold", 0.5)), calibration=d.get("calibration"),
            fusion=d.get("fusion", {}), providers=_providers(d),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "description": self.description, "detector": self.detector,
            "landmarks": self.landmarks, "detector_options": self.detector_options, "yaw": self.yaw,
            "detector_fallback": self.detector_fallback,
            "embedders": [self._embedder_dict(e) for e in self.embedders],
            "flip": self.flip, "default_far": self.default_far, "fallback_threshold": self.fallback_threshold,
            "calibration": self.calibration, "fusion": self.fusion,
            **({"providers": list(self.providers)} if self.providers else {}),
            **({"detector_cascade": list(self.detector_cascade)} if self.detector_cascade else {}),
        }

    def _embedder_dict(self, e: EmbedderSpec) -> dict[str, Any]:
        out: dict[str, Any] = {"model": e.model, "weight": e.weight}
        if e.shift != 0.0 or e.scale != 1.0:
            total = sum(x.score_weight for x in self.embedders)
            out.update(weight=round(e.score_weight / total, 9), shift=e.shift, scale=e.scale)
        if e.flip is not None:
            out["flip"] = e.flip
        return out

    def flips(self, e: EmbedderSpec) -> bool:
        """Whether embedder ``e`` averages in the mirrored crop."""
        return self.flip if e.flip is None else e.flip

    @property
    def active_detector(self) -> str:
        """The detector that runs: the profile's, or its fallback where that one is not installed."""
        if self.detector_fallback and not is_available(self.detector):
            return self.detector_fallback
        return self.detector

    @property
    def models(self) -> list[str]:
        return [self.active_detector, *([self.landmarks] if self.landmarks else []), *(e.model for e in self.embedders),
                *(["fsanet"] if self.yaw == "fsanet" else [])]

    @property
    def dim(self) -> int:
        return sum(int(card(e.model).output_dim or 0) for e in self.embedders)

    @property
    def signature(self) -> str:
        """Identifies what makes vectors comparable: embedders, weights, flip. Detectors may differ."""
        key = json.dumps([[e.model, round(e.weight, 6)] + ([] if e.flip is None else [e.flip]) for e in self.embedders]
                         + [self.flip] + ([self.landmarks] if self.landmarks else []))
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    def available(self) -> bool:
        return all(is_available(m) for m in self.models)

    @property
    def commercial_use(self) -> bool:
        """True only when every model's card says yes."""
        return self.commercial == "yes"

    @property
    def commercial(self) -> str:
        """"no" if any model's card says no, else "unclear" if any says unclear, else "yes" (the installed
        models of the detector cascade count: they run when the detector misses)."""
        states = {card(m).commercial for m in [*self.models, *(m for m in self.detector_cascade if is_available(m))]}
        return "no" if "no" in states else "unclear" if "unclear" in states else "yes"


def _yaw_source(d: dict[str, Any]) -> str:
    yaw = str(d.get("yaw", "landmarks"))
    if yaw not in ("landmarks", "fsanet"):
        raise FacewiseError(f"profile {d.get('name')!r}: yaw must be landmarks or fsanet, got {yaw!r}")
    return yaw


def _providers(d: dict[str, Any]) -> tuple[str, ...]:
    from facewise.settings import PROVIDER_NAMES

    raw = d.get("providers", [])
    names = tuple(str(x).lower() for x in (raw if isinstance(raw, list) else [raw]))
    bad = [x for x in names if x not in PROVIDER_NAMES]
    if bad:
        raise FacewiseError(f"profile {d.get('name')!r}: unknown providers {bad}; "
                            f"choose from {', '.join(PROVIDER_NAMES)}")
    return names


# profiles registered at run time (:func:`register`), by name: in-process only
_REGISTERED: dict[str, Profile] = {}


def register(profile: Profile) -> None:
    """Make ``profile`` loadable by its name in this process (:func:`load_profile`, a service's or a collection's
    profile name), e.g. :func:`facewise.testing.fake_profile`. A shipped profile's name is refused; registering the
    same name again replaces it."""
    if (PROFILE_DIR / f"{profile.name}.json").is_file():
        raise ValidationError(f"profile {profile.name!r} is shipped with facewise: register it under another name",
                              what="profile", value=profile.name)
    _REGISTERED[profile.name] = profile


def unregister(name: str) -> None:
    """Forget a profile registered with :func:`register` (unknown names are ignored)."""
    _REGISTERED.pop(name, None)


def profile_names() -> list[str]:
    """The shipped profiles and those registered in this process, by name."""
    return sorted({p.stem for p in PROFILE_DIR.glob("*.json")} | set(_REGISTERED))


def load_profile(name_or_path: str | Path) -> Profile:
    """A shipped profile by name (``default``, ``fast``, ``accurate``), one registered in this process
    (:func:`register`) or a JSON file path."""
    if isinstance(name_or_path, str) and name_or_path in _REGISTERED:
        return _REGISTERED[name_or_path]
    path = Path(name_or_path)
    if path.suffix != ".json":
        path = PROFILE_DIR / f"{name_or_path}.json"
    if not path.is_file():
        known = ", ".join(profile_names())
        raise ValidationError(f"unknown profile {str(name_or_path)[:80]!r}; choose one of {known} or a profile .json "
                              "file", what="profile", value=str(name_or_path)[:200], valid=known)
    return Profile.from_dict(json.loads(path.read_text()))
