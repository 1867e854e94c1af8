"""One profile's face work, with no gallery: detect, analyze (attributes), embed, compare.

::

    from facewise import FaceEngine

    engine = FaceEngine("fast")
    a, b = engine.one_face("a.jpg"), engine.one_face("b.jpg")
    print(engine.compare(a, b))

A :class:`FaceEngine` is built from a profile (name or :class:`~facewise.models.profiles.Profile`, plus threads and a
quality policy) or from a :class:`~facewise.core.pipeline.Pipeline` and :class:`~facewise.core.analysis.Analyzer`
built once elsewhere (the REST service shares them between every handle of a profile). A gallery collection
(:class:`facewise.collection.Collection`) holds an engine; the doors (video, batch, service, CLI) call the engine's
operations, never the pipeline behind it.
"""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np

from facewise.core.analysis import Analyzer, Gate, LiveThreshold
from facewise.core.imageio import DecodedImage, ImageInput
from facewise.core.pipeline import Pipeline
from facewise.core.quality import QualityPolicy
from facewise.decision.fusion import FusionScorer
from facewise.errors import ModelNotFoundError, MultipleFacesError, NoFaceError, ProfileMismatchError, ValidationError
from facewise.models.profiles import Profile, load_profile
from facewise.models.protocols import Detector
from facewise.types import Detection, Face

log = logging.getLogger(__name__)

FaceChoice = Literal["only", "largest"] | int


def parse_face_choice(text: str, option: str = "face") -> FaceChoice:
    """A face choice written as text (a CLI option, a form field): ``only``, ``largest`` or a face index 0..9999;
    anything else is a :class:`ValidationError` naming ``option`` (``"²"`` is a digit to ``str.isdigit``, not to
    ``int``, so only ASCII digits count)."""
    if text in ("only", "largest"):
        return "only" if text == "only" else "largest"
    if text.isascii() and text.isdigit() and len(text) <= 4:
        return int(text)
    raise ValidationError(f"{option} must be only, largest or a face index 0..9999 (got {text[:20]!r})",
                          what=option, value=text[:20], valid="only, largest or 0..9999")


def pick_face(faces: list[Face], choice: FaceChoice, source: str) -> Face:
    """Select the face to use from an image; refuse ambiguity unless told which one."""
    if not faces:
        raise NoFaceError(f"{source}: no face found")
    if isinstance(choice, int) and not isinstance(choice, bool):
        if not 0 <= choice < len(faces):
            raise ValidationError(f"{source}: face index {choice} out of range (found {len(faces)} faces)",
                                  what="face", value=choice, valid=f"0..{len(faces) - 1}")
        return faces[choice]
    if choice == "largest" or len(faces) == 1:
        return max(faces, key=lambda f: f.box.area)
    raise MultipleFacesError(
        f"{source}: {len(faces)} faces found; say which one to use: largest or an index 0..{len(faces) - 1}",
        what="face", value="only", valid=f"largest or 0..{len(faces) - 1}")


class FaceEngine:
    """Detect, analyze, embed and compare faces with one profile (no gallery).

    ``pipeline`` and ``analyzer``, when given, are used instead of building new ones (a pipeline of another
    profile is a :class:`ProfileMismatchError`); ``threads`` and ``quality`` then do not apply to the pipeline.
    Models load on first use; nothing is downloaded.
    """

    def __init__(self, profile: str | Profile = "default", threads: int = 0, quality: QualityPolicy | None = None,
                 *, pipeline: Pipeline | None = None, analyzer: Analyzer | None = None) -> None:
        self.profile: Profile = load_profile(profile) if isinstance(profile, str) else profile
        if pipeline is not None and pipeline.profile.signature != self.profile.signature:
            raise ProfileMismatchError(f"the pipeline given runs profile {pipeline.profile.name!r}, "
                                       f"not {self.profile.name!r}")
        self.pipeline = pipeline or Pipeline(self.profile, threads=threads, quality=quality)
        self.analyzer = analyzer or Analyzer(threads=max(1, threads))
        self.scorer = FusionScorer(self.profile)

    @property
    def threads(self) -> int:
        return self.pipeline.threads

    @property
    def dim(self) -> int:
        return self.profile.dim

    def load(self) -> FaceEngine:
        """Load the profile's models now (a missing one fails here, before any work)."""
        self.pipeline.load()
        return self

    # -- detect -----------------------------------------------------------------------------------
    def detect(self, image: ImageInput) -> list[Face]:
        """Faces with boxes, landmarks, yaw and quality (no identity vectors)."""
        return self.detect_image(image)[1]

    def detect_image(self, image: ImageInput) -> tuple[DecodedImage, list[Face]]:
        """:meth:`detect`, with the decoded image."""
        img, dets = self.pipeline.detect(image)
        return img, self.pipeline.make_faces(img.pixels, dets)

    def faces_of(self, pixels: np.ndarray, detections: list[Detection]) -> list[Face]:
        """Faces (yaw, quality) of detections made on ``pixels`` by another detector (video tracking)."""
        return self.pipeline.make_faces(pixels, detections)

    def tracking_detectors(self, low_score: float) -> tuple[Detector, Detector | None]:
        """The profile's detector with a low score threshold (ByteTrack's second stage needs the low-confidence
        boxes), plus the same model tuned for small crops to refine small faces' landmarks where the detector
        can be scaled so (YuNet). Both come from the model registry, cached per process."""
        from facewise.models.registry import detector_knobs, load_detector

        model_id, threads = self.profile.detector, self.pipeline.threads
        knobs = detector_knobs(model_id)
        base = self.pipeline.detector
        if "score_threshold" not in knobs:
            return base, None
        default = float(getattr(base, "score_threshold", low_score))
        providers = self.profile.providers  # (the profile's devices, as Pipeline loads its detector)
        det = load_detector(model_id, threads, score_threshold=min(low_score, default), providers=providers)
        refine = None
        if {"min_side", "max_side"} <= knobs:
            refine = load_detector(model_id, threads, score_threshold=0.3, min_side=0, max_side=640,
                                   providers=providers)
        return det, refine

    @property
    def detector_score_threshold(self) -> float:
        """The score below which the profile's own detector drops a face (0.5 where it has no such knob)."""
        return float(getattr(self.pipeline.detector, "score_threshold", 0.5))

    # -- analyze ----------------------------------------------------------------------------------
    def analyze(self, image: ImageInput, what: tuple[str, ...] | None = None) -> list[Face]:
        """Faces with quality reasons plus, in ``Face.attributes``, the attributes named in ``what`` (default:
        every registered one). An unknown name is a :class:`~facewise.errors.ValidationError`."""
        img, faces = self.detect_image(image)
        return self.attributes(img.pixels, faces, what)

    def attributes(self, pixels: np.ndarray, faces: list[Face], what: tuple[str, ...] | None = None) -> list[Face]:
        """Fill ``Face.attributes`` of faces found on ``pixels`` (see :meth:`analyze`)."""
        return self.analyzer.analyze(pixels, faces, what)

    def set_live_threshold(self, threshold: LiveThreshold | None) -> None:
        """Decide liveness at a calibrated threshold (``facewise calibrate-liveness``); ``None``: the model's own."""
        self.analyzer.set_live_threshold(threshold)

    def gate_refusal(self, pixels: np.ndarray, face: Face, gate: Gate) -> str | None:
        """Why ``face`` fails the gate (quality, liveness), or ``None``."""
        if gate.require_live:
            self.analyzer.analyze(pixels, [face], what=("live",))
            live = face.attributes.get("live")
            if live is None:
                raise ModelNotFoundError("liveness was required but the anti-spoofing model minifasnet-v2-v1se is not "
                                         "on the model path (`facewise models info minifasnet-v2-v1se` names its "
                                         "files)")
            if not live["is_live"]:
                return f"not live: P(live) {live['score']:.2f} < {live['threshold']:.2f}"
        if gate.min_quality is not None and face.quality.score < gate.min_quality:
            return (f"quality {face.quality.score:.2f} < {gate.min_quality:.2f}: "
                    + "; ".join(face.quality.reasons))
        return None

    # -- embed ------------------------------------------------------------------------------------
    def faces(self, image: ImageInput) -> list[Face]:
        """Faces with their profile vectors (``Face.embedding``)."""
        return self.embedded(image)[1]

    def embedded(self, image: ImageInput, embed: bool = True) -> tuple[DecodedImage, list[Face]]:
        """The decoded image and its faces, largest first, with their vectors unless ``embed=False``."""
        return self.pipeline.analyze(image, embed=embed)

    def embed(self, pixels: np.ndarray, faces: list[Face]) -> np.ndarray:
        """The profile vectors (N, dim) of faces found on ``pixels``, by their landmarks (faces unchanged)."""
        return self.pipeline.embed_landmarks(pixels, [f.landmarks for f in faces])

    def embed_missing(self, pixels: np.ndarray, faces: list[Face]) -> int:
        """Set ``Face.embedding`` of the faces that have none; returns how many were embedded."""
        todo = [f for f in faces if f.embedding is None]
        if todo:
            for f, v in zip(todo, self.embed(pixels, todo), strict=True):
                f.embedding = v
        return len(todo)

    def one_face(self, image: ImageInput, face: FaceChoice = "only",
                 gate: Gate | None = None) -> tuple[Face, str | None]:
        """The chosen face of an image with its vector, and why it fails ``gate`` (``None``: it passes)."""
        img, faces = self.embedded(image)
        chosen = pick_face(faces, face, img.name)
        refusal = self.gate_refusal(img.pixels, chosen, gate) if gate else None
        return chosen, refusal

    # -- compare ----------------------------------------------------------------------------------
    @property
    def plain(self) -> bool:
        """Whether a score is the plain dot product (no pose/quality-aware fusion to re-score with)."""
        return self.scorer.plain

    def compare(self, a: Face, b: Face) -> float:
        """The profile's (pose/quality-aware) similarity of two embedded faces."""
        return float(self.scorer.scores(a.vector, b.vector, a.yaw, b.yaw, a.quality.score, b.quality.score)[0])

    def compare_many(self, probe: Face, vectors: np.ndarray, yaws: np.ndarray, qualities: np.ndarray) -> np.ndarray:
        """Scores of one embedded face against stored vectors (N, dim) with their yaws and qualities."""
        n = len(vectors)
        return self.scorer.scores(np.tile(probe.vector, (n, 1)), vectors, probe.yaw, yaws, probe.quality.score,
                                  qualities)
