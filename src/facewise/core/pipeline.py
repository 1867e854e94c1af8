"""decode -> detect -> 5 landmarks -> align -> quality -> embed -> Face records."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cached_property

import numpy as np

from facewise.core.align import align_many
from facewise.core.cascade import cascade_detectors, next_stages
from facewise.core.imageio import DecodedImage, ImageInput, load_image
from facewise.core.quality import QualityPolicy, assess, yaw_from_landmarks
from facewise.errors import FacewiseError
from facewise.models._embed_util import l2_normalise
from facewise.models.catalogue import card
from facewise.models.profiles import Profile, load_profile
from facewise.models.protocols import Detector, Embedder, HeadPoseModel, Landmarker
from facewise.models.registry import load_detector, load_embedder, load_headpose, load_landmarker
from facewise.types import Detection, Face

log = logging.getLogger(__name__)
EMBED_BATCH = 1  # faces per model call in a crowd (when ``crowd_yield_s`` is set)


_HOLDS_SMALL_WORK: ContextVar[bool] = ContextVar("facewise_small_work", default=False)


class _SmallWork:
    """Image work in progress in this process (a server sets it per request, so its gaps count too), a crowd's
    embedding loop excepted. Embedding a crowd goes a face at a time and lets that work go first (some embedders
    hold the GIL): one request with a 100-face image cannot make everyone else's single-face request wait for all
    of it. The mark travels in a context variable, so it follows a request from thread to thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.active = 0

    def _add(self, n: int) -> None:
        with self._lock:
            self.active += n

    @contextmanager
    def running(self) -> Iterator[None]:
        if _HOLDS_SMALL_WORK.get():
            yield
            return
        _HOLDS_SMALL_WORK.set(True)
        self._add(1)
        try:
            yield
        finally:
            self._add(-1)
            _HOLDS_SMALL_WORK.set(False)

    @contextmanager
    def crowd(self) -> Iterator[None]:
        """The current work embeds a crowd: it does not count as small work meanwhile."""
        counted = _HOLDS_SMALL_WORK.get()
        if counted:
            self._add(-1)
        try:
            yield
        finally:
            if counted:
                self._add(1)

    def wait_idle(self, limit_s: float) -> None:
        deadline = time.monotonic() + limit_s
        while self.active > 0 and time.monotonic() < deadline:
            time.sleep(0.005)


SMALL_WORK = _SmallWork()


class Pipeline:
    """Runs one profile's models. Models load on first use; nothing is downloaded."""

    def __init__(self, profile: Profile | str = "default", threads: int = 0,
                 quality: QualityPolicy | None = None, max_faces: int | None = None,
                 crowd_yield_s: float = 0.0) -> None:
        self.profile = load_profile(profile) if isinstance(profile, str) else profile
        self.threads = threads
        self.max_faces = max_faces  # analyse at most this many faces per image, the largest
        # > 0 (a server): each slice of a crowd waits up to this long while other threads detect or embed a few
        # faces, so one image of a crowd does not hold up everyone else's request
        self.crowd_yield_s = crowd_yield_s
        self.quality_policy = quality or QualityPolicy()
        self._load_lock = threading.Lock()

    @cached_property
    def detector(self) -> Detector:
        with self._load_lock:
            name = self.profile.active_detector
            if name != self.profile.detector:
                log.warning("profile %s: detector %s is not installed (see `facewise models info %s`); using %s",
                            self.profile.name, self.profile.detector, self.profile.detector, name)
                return load_detector(name, self.threads, providers=self.profile.providers)
            options = tuple(sorted(self.profile.detector_options.items()))
            return load_detector(name, self.threads, options, providers=self.profile.providers)

    @cached_property
    def cascade(self) -> list[Detector]:
        """The profile's ``detector_cascade`` (those installed): asked in turn when the detector finds no face
        (loaded then, so a profile whose detector always finds a face never pays for it)."""
        with self._load_lock:
            return cascade_detectors(self.profile.detector_cascade, self.threads, self.profile.providers)

    @cached_property
    def landmarker(self) -> Landmarker | None:
        if not self.profile.landmarks:
            return None
        with self._load_lock:
            return load_landmarker(self.profile.landmarks, self.threads, self.profile.providers)

    @cached_property
    def embedders(self) -> list[tuple[Embedder, float, bool]]:
        with self._load_lock:
            return [(load_embedder(e.model, self.threads, self.profile.providers), e.weight, self.profile.flips(e))
                    for e in self.profile.embedders]

    @cached_property
    def headpose(self) -> HeadPoseModel | None:
        """FSA-Net, when the profile takes each face's yaw from it (right on profiles, where the
        five-landmark estimate saturates); the registry's copy, shared with the ``pose`` attribute."""
        if self.profile.yaw != "fsanet":
            return None
        with self._load_lock:
            return load_headpose("fsanet", self.threads or 1, self.profile.providers)

    @property
    def dim(self) -> int:
        return self.profile.dim

    def load(self) -> Pipeline:
        """Load every model now (fails early with a clear error if one is missing)."""
        _ = self.detector, self.landmarker, self.embedders, self.headpose
        return self

    def detect(self, image: ImageInput) -> tuple[DecodedImage, list[Detection]]:
        with SMALL_WORK.running():
            img = load_image(image)
            return img, self.detect_pixels(img.pixels)

    def detect_pixels(self, pixels: np.ndarray) -> list[Detection]:
        """Detections on decoded pixels (the profile's detector, then its cascade where it finds nothing),
        landmarks refined when the profile names a refiner."""
        dets = self.detector.detect(pixels)
        if not dets and self.profile.detector_cascade:  # the cascade loads on the first miss
            dets = next_stages(self.cascade, pixels, self.detector.model_id)
        if self.max_faces is not None and len(dets) > self.max_faces:
            log.info("%d faces found, analysing the %d largest", len(dets), self.max_faces)
            dets = sorted(dets, key=lambda d: -d.box.area)[: self.max_faces]
        return self.landmarker.refine(pixels, dets) if self.landmarker is not None and dets else dets

    def yaws(self, pixels: np.ndarray, dets: list[Detection]) -> list[float]:
        """Each detection's yaw in degrees, from the profile's source (landmarks or FSA-Net)."""
        if self.headpose is not None and dets:
            boxes = np.array([[d.box.x1, d.box.y1, d.box.x2, d.box.y2] for d in dets], np.float32)
            return [float(y) for y in self.headpose.estimate(pixels, boxes)[:, 0]]
        return [yaw_from_landmarks(d.landmarks) for d in dets]

    def make_faces(self, pixels: np.ndarray, dets: list[Detection]) -> list[Face]:
        faces = []
        for i, (d, yaw) in enumerate(zip(dets, self.yaws(pixels, dets), strict=True)):
            q = assess(pixels, d, yaw, self.quality_policy)
            face = Face(index=i, box=d.box, landmarks=d.landmarks, det_score=d.score, quality=q, yaw=yaw)
            if d.found_by != "first":  # a retry of the detector or the cascade found it (reported per face)
                face.attributes["found_by"] = d.found_by
            faces.append(face)
        return faces

    def embed_landmarks(self, pixels: np.ndarray, landmarks: list[np.ndarray]) -> np.ndarray:
        """Fused, L2-normalised profile vectors (N, dim) for faces given by their five landmarks."""
        if not landmarks:
            return np.zeros((0, self.dim), np.float32)
        if self.crowd_yield_s > 0 and len(landmarks) > EMBED_BATCH:  # a crowd: in slices, small work first
            parts = []
            with SMALL_WORK.crowd():
                for i in range(0, len(landmarks), EMBED_BATCH):
                    SMALL_WORK.wait_idle(self.crowd_yield_s)
                    parts.append(self.embed_many([(pixels, landmarks[i:i + EMBED_BATCH])])[0])
            return np.vstack(parts)
        with SMALL_WORK.running():
            return self.embed_many([(pixels, landmarks)])[0]

    def embed_many(self, items: list[tuple[np.ndarray, list[np.ndarray]]]) -> list[np.ndarray]:
        """:meth:`embed_landmarks` for the faces of several images, one inference call per embedder
        (the crop and its mirror in the same call when the embedder flips)."""
        counts = [len(lms) for _, lms in items]
        total = sum(counts)
        if total == 0:
            return [np.zeros((0, self.dim), np.float32) for _ in items]
        blocks = []
        for emb, weight, flip in self.embedders:
            crops = np.concatenate([align_many(px, lms, emb.template, emb.size) for px, lms in items if lms])
            if flip:
                both = emb.embed(np.concatenate([crops, crops[:, :, ::-1]]))
                vec = l2_normalise(both[:total] + both[total:])
            else:
                vec = emb.embed(crops)
            blocks.append(vec * np.sqrt(weight))
        fused = np.ascontiguousarray(np.hstack(blocks), dtype=np.float32)
        return np.split(fused, np.cumsum(counts)[:-1])

    def analyze(self, image: ImageInput, embed: bool = True) -> tuple[DecodedImage, list[Face]]:
        """Every face of an image, largest first, with quality and (optionally) its vector."""
        with SMALL_WORK.running():
            img, dets = self.detect(image)
            faces = self.make_faces(img.pixels, dets)
            if embed and faces:
                vecs = self.embed_landmarks(img.pixels, [f.landmarks for f in faces])
                for f, v in zip(faces, vecs, strict=True):
                    f.embedding = v
            return img, faces

    def analyze_many(self, images: list[ImageInput], workers: int = 2, embed: bool = True, batch: int = 32,
                     ) -> list[tuple[DecodedImage, list[Face]] | FacewiseError]:
        """:meth:`analyze` over many images: decoding, detection and quality run on ``workers`` threads
        (inference releases the GIL) while this thread embeds the faces found so far, ``batch`` faces of
        several images per inference call. Results keep the input order; an image that fails gives its
        exception in its place."""
        from concurrent.futures import ThreadPoolExecutor

        def detect_one(img: ImageInput) -> tuple[DecodedImage, list[Face]] | FacewiseError:
            try:
                decoded, dets = self.detect(img)
            except FacewiseError as exc:  # bad image: reported in its place
                return exc
            return decoded, self.make_faces(decoded.pixels, dets)

        results: list[tuple[DecodedImage, list[Face]] | FacewiseError] = []
        pending: list[tuple[DecodedImage, list[Face]]] = []

        def flush() -> None:
            vecs = self.embed_many([(d.pixels, [f.landmarks for f in faces]) for d, faces in pending])
            for (_, faces), v in zip(pending, vecs, strict=True):
                for f, row in zip(faces, v, strict=True):
                    f.embedding = row
            pending.clear()

        def take(res: tuple[DecodedImage, list[Face]] | FacewiseError) -> None:
            results.append(res)
            if embed and not isinstance(res, FacewiseError) and res[1]:
                pending.append(res)
                if sum(len(f) for _, f in pending) >= batch:
                    flush()

        if workers <= 1:
            for img in images:
                take(detect_one(img))
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                for res in pool.map(detect_one, images):
                    take(res)
        if pending:
            flush()
        return results

    def block_slices(self) -> list[tuple[str, slice]]:
        """Where each embedder's (weighted) block sits in the fused vector."""
        out, start = [], 0
        for e in self.profile.embedders:
            dim = int(card(e.model).output_dim or 0)
            out.append((e.model, slice(start, start + dim)))
            start += dim
        return out
