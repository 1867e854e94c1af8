"""The Python facade: ``FaceWise(db=..., profile=...)``."""

from __future__ import annotations

import gzip
import json
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal

import numpy as np

from facewise.core.analysis import Analyzer, Gate
from facewise.core.imageio import DecodedImage, EncodedImage, ImageInput, is_image_path, load_image
from facewise.core.outfiles import open_output
from facewise.core.pipeline import Pipeline
from facewise.core.quality import QualityPolicy
from facewise.decision.fusion import FusionScorer
from facewise.decision.matching import Decision, check_decision, decide
from facewise.errors import (
    BadInputError,
    EnrollmentError,
    FacewiseError,
    ImageError,
    InvalidNameError,
    InvalidSettingError,
    ModelNotFoundError,
    MultipleFacesError,
    NoFaceError,
    NotFoundError,
    ProfileMismatchError,
    ValidationError,
)
from facewise.gallery import NewSample, SQLiteStore, Store
from facewise.gallery.exchange import EXPORT_FORMAT, read_export
from facewise.gallery.maintenance import Erasure, ErasureHooks
from facewise.gallery.names import check_name
from facewise.gallery.store import CollectionInfo, SearchHit
from facewise.models.profiles import Profile, load_profile
from facewise.types import Candidate, EnrollResult, Face, Identification, Person, Sample, Verification

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


class FaceWise:
    """Detect, enrol, identify and verify faces with one profile over one gallery collection.

    ``db`` is a SQLite file path, a ``postgresql://`` / ``milvus://`` URL, any :class:`~facewise.gallery.Store`,
    or ``None`` for an in-memory gallery. ``profile=None`` uses the collection's own profile (``default`` for a
    new collection); a profile other than the collection's is refused (:class:`ProfileMismatchError`).

    ``create=True`` (the default) creates a missing gallery file and collection when first needed; a new gallery
    file is only created once the profile's models have loaded, and enrolment creates the collection only when
    it stores a face, so a start that fails (a model missing) leaves nothing behind. ``create=False`` opens only
    what exists: a missing file or collection is a :class:`NotFoundError`, and nothing is ever created.
    Otherwise models load on first use; they are never downloaded.

    A process serving many handles (the REST service) builds the heavy parts once and injects them:
    ``pipeline`` (a :class:`Pipeline` of this profile, with its model sessions), ``analyzer`` and
    ``erasure`` (the :class:`~facewise.gallery.maintenance.ErasureHooks` told of every person, sample or
    collection this handle deletes, so derived data elsewhere is erased too). Its handles use
    ``create=False``: a request or job in flight cannot bring a deleted collection back.
    """

    def __init__(self, db: str | os.PathLike[str] | Store | None = None, profile: str | Profile | None = "default",
                 collection: str = "default", threads: int = 0, quality: QualityPolicy | None = None, *,
                 create: bool = True, pipeline: Pipeline | None = None, analyzer: Analyzer | None = None,
                 erasure: ErasureHooks | None = None) -> None:
        self.collection, self.create = collection, create
        path = _local_path(db)
        if not create and path is not None and not path.is_file():
            raise NotFoundError(f"{path}: no such gallery file (nothing was created)", what="db", value=str(path))
        if create and path is not None and not path.exists():  # models first: a failed start creates no file
            self.profile = _as_profile(profile or "default")
            self.pipeline = self._pipeline(pipeline, threads, quality).load()
            self.store: Any = _open(db)
        else:
            self.store = _open(db)
            try:
                stored = self._lookup(None) if profile is None else None
                self.profile = _as_profile(profile or (stored.profile if stored else "default"),
                                           stored.name if stored else None)
                if not create:
                    self._existing_info()  # missing: NotFoundError; another profile: ProfileMismatchError
                self.pipeline = self._pipeline(pipeline, threads, quality)
            except BaseException:
                if self.store is not db:  # opened here: closed here
                    self.store.close()
                raise
        self.analyzer = analyzer or Analyzer(threads=max(1, threads))
        self.erasure = erasure or ErasureHooks()
        self.scorer = FusionScorer(self.profile)

    # -- lifecycle ------------------------------------------------------------------------------
    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> FaceWise:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _pipeline(self, given: Pipeline | None, threads: int, quality: QualityPolicy | None) -> Pipeline:
        if given is None:
            return Pipeline(self.profile, threads=threads, quality=quality)
        if given.profile.signature != self.profile.signature:
            raise ProfileMismatchError(f"the pipeline given runs profile {given.profile.name!r}, "
                                       f"not {self.profile.name!r}")
        return given

    def _existing_info(self) -> CollectionInfo | None:
        return self._lookup(self.profile)

    def _lookup(self, profile: Profile | None) -> CollectionInfo | None:
        """The collection if it exists (checked against ``profile`` when given), else ``None``; with
        ``create=False`` a missing collection is a :class:`NotFoundError` naming the ones there are."""
        try:
            info: CollectionInfo = self.store.get_collection(self.collection)
        except NotFoundError:
            if self.create:
                return None
            names = ", ".join(repr(c.name) for c in self.store.list_collections()) or "none"
            raise NotFoundError(f"collection {self.collection!r} does not exist (nothing was created; "
                                f"collections here: {names})") from None
        if profile is not None and (info.signature != profile.signature or info.dim != profile.dim):
            raise ProfileMismatchError(
                f"collection {info.name!r} holds vectors of profile {info.profile!r} ({info.dim}-d); it cannot be "
                f"used with profile {profile.name!r} ({profile.dim}-d): open it with profile {info.profile!r} (or "
                "without naming a profile) or use another collection", what="profile", value=profile.name,
                valid=info.profile)
        return info

    @property
    def info(self) -> CollectionInfo:
        """The collection, bound to this profile (created on first use unless ``create=False``)."""
        info = self._existing_info()
        if info is None:
            return self.store.ensure_collection(self.collection, self.profile.name, self.profile.signature,
                                                self.profile.dim)
        return info

    @property
    def decision(self) -> Decision:
        """How the collection identifies (a search of all its persons: by default at a target FPIR, so the
        threshold follows the gallery's size); :class:`InvalidSettingError` if what it stores is invalid."""
        info = self.info
        return self._decide(info.settings, info.persons)

    @property
    def verification_decision(self) -> Decision:
        """How the collection verifies (one comparison: at a target FAR)."""
        return self._decide(self.info.settings)

    def _decide(self, settings: dict[str, Any], searched: int | None = None) -> Decision:
        try:
            return decide(self.profile, settings, searched)
        except ValidationError as exc:
            raise InvalidSettingError(
                f"collection {self.collection!r} holds an invalid decision setting: {exc}. Set a valid threshold "
                "or target rate to open it", what=exc.what, value=exc.value, valid=exc.valid) from None

    def index_info(self) -> dict[str, Any]:
        """Which search the collection runs and why (``{"index", "setting", "reason"}``): in a SQLite gallery the
        ``index`` setting (``auto`` by default: exact search, HNSW from 50,000 faces where faiss is installed);
        a server store searches with its own index."""
        info = self.info
        if "ann" not in getattr(self.store, "capabilities", ()):
            return {"index": "store", "setting": None, "reason": f"searched by the store's own index "
                                                                 f"({type(self.store).__name__})"}
        from facewise.gallery.ann import index_in_force

        return index_in_force(info.settings, info.samples)

    def set_threshold(self, threshold: float | None = None, target_far: float | None = None,
                      target_fpir: float | None = None) -> Decision:
        """Decide at a raw score, at a target false-accept rate per comparison (identification and verification),
        or at a target FPIR (identification: the chance a stranger gets a name from a search of the whole
        gallery; its threshold follows the number of persons). Clears the others.

        Refused with :class:`ValidationError` (nothing stored) unless the value is finite and inside the range the
        collection can decide at now (``facewise.decision.matching.check_decision``).
        """
        if sum(x is not None for x in (threshold, target_far, target_fpir)) != 1:
            raise ValidationError("give exactly one of threshold, target_far or target_fpir")
        info = self.info
        check_decision(self.profile, info.settings, threshold=threshold, target_far=target_far,
                       target_fpir=target_fpir, searched=info.persons if target_fpir is not None else None)
        # a None value removes the key: exactly one rule is stored
        self.store.update_settings(self.collection, threshold=threshold, target_far=target_far,
                                   target_fpir=target_fpir)
        return self.decision

    def set_calibration(self, calibration: dict[str, Any]) -> Decision:
        """Store the collection's own calibration (``Calibration.to_dict()``, ``facewise calibrate --db``).

        Refused with :class:`ValidationError` (nothing stored) when it is not usable or when the collection's
        stored decision (its target FAR) would fall outside it.
        """
        try:
            settings = {**self.info.settings, "calibration": calibration}
            decide(self.profile, settings)
            decide(self.profile, settings, self.info.persons)
        except ValidationError as exc:
            raise ValidationError(f"this calibration cannot serve collection {self.collection!r}: {exc} (set "
                                  "another decision first)", what=exc.what, value=exc.value,
                                  valid=exc.valid) from None
        self.store.update_settings(self.collection, calibration=calibration)
        return self.decision

    # -- faces ----------------------------------------------------------------------------------
    def detect(self, image: ImageInput) -> list[Face]:
        """Faces with boxes, landmarks, yaw and quality (no identity vectors)."""
        img, dets = self.pipeline.detect(image)
        return self.pipeline.make_faces(img.pixels, dets)

    def faces(self, image: ImageInput) -> list[Face]:
        """Faces with their profile vectors (``Face.embedding``)."""
        return self.pipeline.analyze(image)[1]

    def analyze(self, image: ImageInput, what: tuple[str, ...] | None = None) -> list[Face]:
        """Faces with quality reasons plus, in ``Face.attributes``, the face attributes named in ``what``
        (default: every registered one; as shipped liveness, head pose and expression; ``"live_map"`` adds
        the liveness occlusion map). An unknown name is a :class:`~facewise.errors.ValidationError`."""
        img, dets = self.pipeline.detect(image)
        return self.analyzer.analyze(img.pixels, self.pipeline.make_faces(img.pixels, dets), what)

    # -- enrolment ------------------------------------------------------------------------------
    def enroll(self, person: str, images: ImageInput | Iterable[ImageInput], *, face: FaceChoice = "only",
               metadata: dict[str, Any] | None = None, gate: Gate | None = None,
               progress: Callable[[EnrollResult], None] | None = None,
               person_id: int | None = None) -> list[EnrollResult]:
        """Enrol one person from images. Bad images are reported, not stored; storing is one transaction.

        ``images`` is a list of images, or one image (a path, bytes, an array or a PIL image is one item, never
        iterated). An enrolment that stores nothing is an :class:`EnrollmentError` carrying every photo's result
        with its reason (photos already enrolled count as stored: a re-run is not an error).

        ``gate`` refuses faces below a quality score or not live, with the reasons in the result.
        ``person_id``: store the faces for that existing person (``person`` is then its name, for the results),
        checked inside the storing transaction: if the person was deleted meanwhile, :class:`NotFoundError` and
        nothing is stored (a name would create the person again).
        """
        if person_id is None:
            person = check_name(person)  # a bad name is refused before any work
        given: list[Any] = [images] if _is_one_image(images) else list(images)  # type: ignore[arg-type]
        items: list[tuple[str, ImageInput]] = [(person, img) for img in given]
        return self.enroll_items(items, face=face, metadata=metadata, gate=gate, progress=progress,
                                 person_id=person_id)

    def enroll_folder(self, root: str | os.PathLike[str], *, face: FaceChoice = "only", gate: Gate | None = None,
                      progress: Callable[[EnrollResult], None] | None = None) -> list[EnrollResult]:
        """Enrol every ``root/<person>/*.jpg`` (one sub-folder per person)."""
        items: list[tuple[str, ImageInput]] = list(folder_items(Path(root)))
        return self.enroll_items(items, face=face, gate=gate, progress=progress)

    def enroll_items(self, items: list[tuple[str, ImageInput]], *, face: FaceChoice = "only",
                     metadata: dict[str, Any] | None = None, gate: Gate | None = None,
                     progress: Callable[[EnrollResult], None] | None = None,
                     person_id: int | None = None) -> list[EnrollResult]:
        """Enrol (person, image) pairs; all accepted samples are stored in one transaction (for ``person_id``,
        when given: see :meth:`enroll`)."""
        gate = gate or Gate()
        exists = self._existing_info() is not None  # another profile: refused before any work
        results: list[EnrollResult] = []
        pending: list[tuple[int, NewSample]] = []
        seen: set[tuple[str, int]] = set()
        for person, src in items:
            name = src if isinstance(src, str) else os.fspath(src) if isinstance(src, os.PathLike) else "<image>"
            try:
                if person_id is None:
                    check_name(person)  # (one bad folder name does not refuse the others)
                img = load_image(src)
                name = img.name if img.name not in ("<bytes>", "<array>") else name
                _, faces = self.pipeline.analyze(img, embed=False)
                chosen = pick_face(faces, face, name)
                key = (img.sha256, chosen.index)
                if key in seen or (exists and self.store.has_image(self.collection, img.sha256, chosen.index)):
                    res = EnrollResult(name, person, "duplicate", reason="image already enrolled", face=chosen)
                elif (refusal := self._gate_refusal(img.pixels, chosen, gate)) is not None:
                    res = EnrollResult(name, person, "rejected", face=chosen, reason=refusal)
                else:
                    vec = self.pipeline.embed_landmarks(img.pixels, [chosen.landmarks])[0]
                    chosen.embedding = vec
                    seen.add(key)
                    res = EnrollResult(name, person, "added", face=chosen)
                    pending.append((len(results), NewSample(
                        person=person, image_sha256=img.sha256, embedding=vec, model=self.profile.signature,
                        face_index=chosen.index, box=chosen.box.as_list(),
                        source=os.fsencode(os.path.basename(name)).decode("utf-8", "backslashreplace"),
                        landmarks=np.round(chosen.landmarks, 2).tolist(), quality=chosen.quality.score,
                        yaw=chosen.yaw, metadata=metadata, person_id=person_id)))
            except (ImageError, NoFaceError, MultipleFacesError, InvalidNameError) as exc:
                res = EnrollResult(name, person, "rejected", reason=str(exc), code=exc.code)
            results.append(res)
            if progress:
                progress(res)
        if pending:  # the collection is created only now, with something to store
            _ = self.info
            ids = self.store.add_samples(self.collection, [s for _, s in pending])
            for (i, _), sid in zip(pending, ids, strict=True):
                if sid is None:
                    results[i].status, results[i].reason = "duplicate", "image already enrolled"
                results[i].sample_id = sid
        added = sum(r.status == "added" for r in results)
        log.info("enrolled %d of %d images into %r", added, len(results), self.collection)
        if not results:
            raise EnrollmentError("no image was given, so nothing was enrolled", results)
        if added == 0 and not any(r.status == "duplicate" for r in results):
            reasons = "; ".join(f"{os.path.basename(r.source)}: {r.reason}" for r in results[:3])
            more = f" (and {len(results) - 3} more)" if len(results) > 3 else ""
            raise EnrollmentError(f"nothing was enrolled: every image was rejected ({reasons}{more})", results)
        return results

    def _rescore(self, face: Face, hits: list[SearchHit]) -> list[SearchHit]:
        """Re-score candidates with the profile's pose/quality-aware fusion (no-op for plain profiles)."""
        if self.scorer.plain or not hits:
            return hits
        ids = [h.sample_id for h in hits]
        vecs = self.store.sample_vectors(self.collection, ids)
        meta = self.store.sample_meta(self.collection, ids)
        scores = self.scorer.scores(np.tile(face.vector, (len(ids), 1)), vecs, face.yaw,
                                    np.array([meta[i]["yaw"] for i in ids]), face.quality.score,
                                    np.array([meta[i]["quality"] for i in ids]))
        rescored = [SearchHit(h.person_id, h.name, float(s), h.sample_id) for h, s in zip(hits, scores, strict=True)]
        return sorted(rescored, key=lambda h: -h.score)

    def _gate_refusal(self, pixels: np.ndarray, face: Face, gate: Gate) -> str | None:
        """Why ``face`` fails the gate, or ``None``."""
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

    # -- recognition ----------------------------------------------------------------------------
    def identify(self, image: ImageInput, top_k: int = 1) -> list[Identification]:
        """Every face of an image with its best person, or "unknown" (``person=None``) below the threshold."""
        _, faces = self.pipeline.analyze(image)
        if not faces:
            return []
        decision = self.decision
        queries = np.stack([f.embedding for f in faces if f.embedding is not None])
        k = max(1, top_k) if self.scorer.plain else max(10, 3 * top_k)
        hits = self.store.search(self.collection, queries, k=k)
        out = []
        for f, fh in zip(faces, hits, strict=True):
            fh = self._rescore(f, fh)[: max(1, top_k)]
            cands = [Candidate(h.person_id, h.name, h.score, decision.far_of(h.score)) for h in fh]
            best = cands[0] if cands else None
            known = best is not None and best.score >= decision.threshold
            out.append(Identification(
                face=f, person=best.name if known and best else None,
                person_id=best.person_id if known and best else None,
                score=best.score if best else 0.0, far=best.far if best else None,
                threshold=decision.threshold, candidates=cands[:top_k] if top_k > 1 else [],
                fpir=decision.fpir_of(best.score) if best else None, searched=decision.searched))
        return out

    def _one_face(self, image: ImageInput, face: FaceChoice, gate: Gate | None = None) -> tuple[Face, str | None]:
        img, faces = self.pipeline.analyze(image)
        chosen = pick_face(faces, face, img.name)
        refusal = self._gate_refusal(img.pixels, chosen, gate) if gate else None
        return chosen, refusal

    def verify(self, a: ImageInput, b: ImageInput, face: FaceChoice = "only",
               gate: Gate | None = None, *, other_face: FaceChoice | None = None) -> Verification:
        """Are the faces of two images the same person? ``face`` picks the face of ``a``, ``other_face`` that of
        ``b`` (default: the same choice as ``face``): ``"only"`` (the default, as in the CLI and REST) refuses a
        photo with several faces (:class:`MultipleFacesError`), ``"largest"`` or an index says which.

        With a ``gate``, a probe ``a`` that is not live (or below quality) is answered "not same"
        with the reason, not an exception.
        """
        fa, refusal = self._one_face(a, face, gate)
        fb, _ = self._one_face(b, face if other_face is None else other_face)
        score = float(self.scorer.scores(fa.vector, fb.vector, fa.yaw, fb.yaw, fa.quality.score,
                                         fb.quality.score)[0])
        return self._verdict(score, self._decide(self._settings_or_empty()), refusal, [fa, fb])

    def verify_person(self, image: ImageInput, person: str | int, face: FaceChoice = "only",
                      gate: Gate | None = None) -> Verification:
        """Is the face in ``image`` the enrolled ``person``? (best score over the person's samples)."""
        vecs = self.store.person_vectors(self.collection, person)
        if len(vecs) == 0:
            raise NotFoundError(f"person {person!r} has no samples to verify against")
        probe, refusal = self._one_face(image, face, gate)
        meta = self.store.list_samples(self.collection, person)
        scores = self.scorer.scores(np.tile(probe.vector, (len(vecs), 1)), vecs, probe.yaw,
                                    np.array([m.yaw for m in meta]), probe.quality.score,
                                    np.array([m.quality for m in meta]))
        score = float(scores.max())
        return self._verdict(score, self.verification_decision, refusal, [probe])

    def _settings_or_empty(self) -> dict[str, Any]:
        try:
            return self.store.get_collection(self.collection).settings
        except FacewiseError:
            return {}

    def _verdict(self, score: float, decision: Decision, refusal: str | None = None,
                 faces: list[Face] | None = None) -> Verification:
        return Verification(score=score, same=score >= decision.threshold and refusal is None,
                            threshold=decision.threshold, far=decision.far_of(score), profile=self.profile.name,
                            reason=refusal, faces=[{"index": f.index, "box": f.box.as_list()} for f in faces or []])

    # -- gallery management ---------------------------------------------------------------------
    def persons(self, offset: int = 0, limit: int | None = None) -> list[Person]:
        _ = self.info
        return self.store.list_persons(self.collection, offset, limit)

    def person(self, person: str | int) -> Person:
        return self.store.get_person(self.collection, person)

    def add_person(self, name: str, metadata: dict[str, Any] | None = None) -> Person:
        _ = self.info
        return self.store.add_person(self.collection, name, metadata)

    def rename_person(self, person: str | int, new_name: str) -> Person:
        return self.store.rename_person(self.collection, person, new_name)

    def delete_person(self, person: str | int) -> int:
        """Delete a person, their samples and template; then every listener of ``erasure`` erases what it
        derived from them."""
        found = self.store.get_person(self.collection, person)
        sample_ids = tuple(s.id for s in self.store.list_samples(self.collection, found.id))
        n = self.store.delete_person(self.collection, found.id)
        self.erasure.emit(Erasure(self.collection, found.id, found.name, sample_ids))
        return n

    def samples(self, person: str | int | None = None) -> list[Sample]:
        _ = self.info
        return self.store.list_samples(self.collection, person)

    def delete_sample(self, sample_id: int) -> None:
        self.store.delete_sample(self.collection, sample_id)
        self.erasure.emit(Erasure(self.collection, sample_ids=(sample_id,)))

    def delete_collection(self) -> None:
        """Delete this collection with everything in it; listeners of ``erasure`` erase what they derived."""
        self.store.delete_collection(self.collection)
        self.erasure.emit(Erasure(self.collection, whole_collection=True))

    def export(self, path: str | os.PathLike[str]) -> int:
        """Write the collection (persons, samples, vectors, settings) to JSON (``.gz`` compresses)."""
        info = self.info
        encrypted = self.store.encrypted
        doc: dict[str, Any] = {"format": EXPORT_FORMAT, "version": 1, "collection": info.to_dict(),
                               "plaintext_vectors": True, "source_encrypted": encrypted,
                               "persons": list(self.store.export_rows(self.collection))}
        if encrypted:
            log.warning("%s: the gallery is encrypted at rest, but an export holds its face vectors in plaintext; "
                        "keep it as safe as the key", os.fspath(path))
        data = json.dumps(doc).encode()
        path = Path(path)
        # biometric data: owner-only from the first byte, atomic, never through a planted symlink
        with open_output(path, mode=0o600) as f:
            f.write(gzip.compress(data) if path.suffix == ".gz" else data)
        return sum(len(p["samples"]) for p in doc["persons"])

    def import_(self, path: str | os.PathLike[str]) -> int:
        """Merge an exported collection into this one (same profile required); returns samples added."""
        doc = read_export(path)
        src = doc["collection"]
        if src.get("signature") != self.profile.signature:
            raise ProfileMismatchError(
                f"{path}: exported with profile {src.get('profile')!r}; this collection uses {self.profile.name!r}"
            )
        samples = [
            NewSample(person=p["name"], image_sha256=s["image_sha256"], face_index=s["face_index"],
                      source=s["source"], box=s["box"], landmarks=s["landmarks"], quality=s["quality"],
                      yaw=s["yaw"], model=s["model"], embedding=np.asarray(s["embedding"], np.float32),
                      metadata=p.get("metadata"))
            for p in doc["persons"] for s in p["samples"]
        ]
        _ = self.info
        ids = self.store.add_samples(self.collection, samples)
        return sum(i is not None for i in ids)


def folder_items(root: Path) -> list[tuple[str, Path]]:
    """``root/<person>/<image>`` pairs, sorted; raises if the layout holds no images."""
    if not root.is_dir():
        raise NotFoundError(f"{root}: not a folder (expected <folder>/<person>/*.jpg)")
    items = [(d.name, f) for d in sorted(root.iterdir()) if d.is_dir()
             for f in sorted(d.iterdir()) if f.is_file() and is_image_path(f)]
    if not items:
        raise BadInputError(f"{root}: no images found in <person>/ sub-folders")
    return items


def _local_path(db: object) -> Path | None:
    """The file of a SQLite gallery given by path; ``None`` for a URL, ``:memory:``, a store object or nothing."""
    if not isinstance(db, str | os.PathLike):
        return None
    from facewise.gallery.open import is_server_address

    text = os.fspath(db)
    return None if is_server_address(text) or text in (":memory:", "") else Path(text)


def _open(db: str | os.PathLike[str] | Store | None) -> Any:
    if db is None:
        return SQLiteStore(":memory:")
    if isinstance(db, str | os.PathLike):
        from facewise.gallery.open import open_store  # a path, or postgresql://… / milvus://… (docs/SCALE.md)

        return open_store(db)
    return db


def _as_profile(profile: str | Profile, collection: str | None = None) -> Profile:
    if not isinstance(profile, str):
        return profile
    try:
        return load_profile(profile)
    except FacewiseError as exc:
        if collection is None:
            raise
        raise ValidationError(f"collection {collection!r} uses profile {profile!r}, which is not a shipped one: "
                              f"give its JSON file as the profile ({exc})", what="profile", value=profile,
                              valid=exc.valid) from None


def _is_one_image(obj: object) -> bool:
    """One image (a path, bytes, an array, a decoded or encoded image, a PIL image), never a list to iterate."""
    if isinstance(obj, str | bytes | bytearray | memoryview | os.PathLike | np.ndarray | DecodedImage | EncodedImage):
        return True
    return type(obj).__module__.startswith("PIL.") and hasattr(obj, "getbands")  # without importing PIL
