"""One gallery collection seen through one engine: enrol, identify, verify, manage, export.

A :class:`Collection` is a :class:`~facewise.core.engine.FaceEngine` (the profile's face work), a
:class:`~facewise.gallery.Store` and a collection name. It owns the rules of the data the doors share:

* the collection exists only when created explicitly (:meth:`Collection.ensure`; enrolment and import call it once
  they have something to store, so a failed enrolment creates nothing); ``create=False`` opens only what exists;
* a decision is a snapshot: :meth:`Collection.decision` reads the collection's settings once, and
  :meth:`Collection.identify` / verification decide with one snapshot per call (given, or read once) and report
  the threshold they used;
* a failed enrolment stores nothing (:class:`EnrollmentError`), one image given where a list is expected is one
  item, one face is taken from a photo (``face="only"``);
* a delete tells the erasure hooks what it erased.

:class:`facewise.FaceWise` is this plus its engine, opened from a path or URL.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from facewise.core.analysis import Gate
from facewise.core.engine import FaceChoice, FaceEngine, pick_face
from facewise.core.imageio import DecodedImage, EncodedImage, ImageInput, is_image_path, load_image
from facewise.core.outfiles import open_output
from facewise.decision.matching import Decision, check_decision, decide
from facewise.errors import (
    BadInputError,
    EnrollmentError,
    FacewiseError,
    ImageError,
    InvalidNameError,
    InvalidSettingError,
    MultipleFacesError,
    NoFaceError,
    NotFoundError,
    ProfileMismatchError,
    ValidationError,
)
from facewise.gallery import NewSample, Store
from facewise.gallery.exchange import EXPORT_FORMAT, read_export
from facewise.gallery.maintenance import Erasure, ErasureHooks
from facewise.gallery.names import check_name
from facewise.gallery.store import CollectionInfo, SearchHit
from facewise.models.profiles import Profile
from facewise.types import Candidate, EnrollResult, Face, Identification, Person, Sample, Verification

log = logging.getLogger(__name__)

# called for every face an enrolment adds, while its decoded image is at hand: (item index, image, result)
AddedFn = Callable[[int, DecodedImage, EnrollResult], None]


def find_collection(store: Store, name: str, profile: Profile | None, create: bool = True) -> CollectionInfo | None:
    """Collection ``name`` if it exists (checked against ``profile`` when given), else ``None``; with
    ``create=False`` a missing collection is a :class:`NotFoundError` naming the ones there are."""
    try:
        info = store.get_collection(name)
    except NotFoundError:
        if create:
            return None
        names = ", ".join(repr(c.name) for c in store.list_collections()) or "none"
        raise NotFoundError(f"collection {name!r} does not exist (nothing was created; "
                            f"collections here: {names})") from None
    if profile is not None and (info.signature != profile.signature or info.dim != profile.dim):
        raise ProfileMismatchError(
            f"collection {info.name!r} holds vectors of profile {info.profile!r} ({info.dim}-d); it cannot be "
            f"used with profile {profile.name!r} ({profile.dim}-d): open it with profile {info.profile!r} (or "
            "without naming a profile) or use another collection", what="profile", value=profile.name,
            valid=info.profile)
    return info


def folder_items(root: Path) -> list[tuple[str, Path]]:
    """``root/<person>/<image>`` pairs, sorted; raises if the layout holds no images."""
    if not root.is_dir():
        raise NotFoundError(f"{root}: not a folder (expected <folder>/<person>/*.jpg)")
    items = [(d.name, f) for d in sorted(root.iterdir()) if d.is_dir()
             for f in sorted(d.iterdir()) if f.is_file() and is_image_path(f)]
    if not items:
        raise BadInputError(f"{root}: no images found in <person>/ sub-folders")
    return items


def is_one_image(obj: object) -> bool:
    """One image (a path, bytes, an array, a decoded or encoded image, a PIL image), never a list to iterate."""
    if isinstance(obj, str | bytes | bytearray | memoryview | os.PathLike | np.ndarray | DecodedImage | EncodedImage):
        return True
    return type(obj).__module__.startswith("PIL.") and hasattr(obj, "getbands")  # without importing PIL


class Collection:
    """The persons and faces of collection ``name`` in ``store``, recognised with ``engine``'s profile.

    ``create=False``: a missing collection is a :class:`NotFoundError` and nothing is ever created (a request or a
    job in flight cannot bring a deleted collection back). ``erasure`` is told of every person, sample or
    collection deleted through this handle. The store is not closed here: whoever opened it closes it.
    """

    def __init__(self, engine: FaceEngine, store: Store, name: str = "default", *, create: bool = True,
                 erasure: ErasureHooks | None = None) -> None:
        self.engine, self.store, self.name, self.create = engine, store, name, create
        self.erasure = erasure or ErasureHooks()

    @property
    def profile(self) -> Profile:
        return self.engine.profile

    # -- the collection itself ------------------------------------------------------------------
    def lookup(self) -> CollectionInfo | None:
        """The collection if it exists (``None`` if not, or :class:`NotFoundError` with ``create=False``);
        :class:`ProfileMismatchError` when it holds another profile's vectors. Creates nothing."""
        return find_collection(self.store, self.name, self.profile, self.create)

    def ensure(self) -> CollectionInfo:
        """The collection, created now for this profile if missing (unless ``create=False``: then
        :class:`NotFoundError`)."""
        info = self.lookup()
        if info is None:
            p = self.profile
            return self.store.ensure_collection(self.name, p.name, p.signature, p.dim)
        return info

    def decision(self) -> Decision:
        """A snapshot of how the collection identifies now (a search of all its persons: by default at a target
        FPIR, so the threshold follows the gallery's size); :class:`InvalidSettingError` if what it stores is
        invalid. Read it once per operation and pass it on: the settings may change between two reads."""
        info = self.ensure()
        return self._decide(info.settings, info.persons)

    def verification_decision(self) -> Decision:
        """A snapshot of how the collection verifies (one comparison: at a target FAR)."""
        return self._decide(self.ensure().settings)

    def _decide(self, settings: dict[str, Any], searched: int | None = None) -> Decision:
        try:
            return decide(self.profile, settings, searched)
        except ValidationError as exc:
            raise InvalidSettingError(
                f"collection {self.name!r} holds an invalid decision setting: {exc}. Set a valid threshold "
                "or target rate to open it", what=exc.what, value=exc.value, valid=exc.valid) from None

    def index_info(self) -> dict[str, Any]:
        """Which search the collection runs and why (``{"index", "setting", "reason"}``): in a SQLite gallery the
        ``index`` setting (``auto`` by default: exact search, HNSW from 50,000 faces where faiss is installed);
        a server store searches with its own index."""
        info = self.ensure()
        if "ann" not in self.store.capabilities:
            return {"index": "store", "setting": None, "reason": f"searched by the store's own index "
                                                                 f"({type(self.store).__name__})"}
        from facewise.gallery.ann import index_in_force

        return index_in_force(info.settings, info.samples)

    def set_threshold(self, threshold: float | None = None, target_far: float | None = None,
                      target_fpir: float | None = None) -> Decision:
        """See :meth:`facewise.FaceWise.set_threshold`."""
        if sum(x is not None for x in (threshold, target_far, target_fpir)) != 1:
            raise ValidationError("give exactly one of threshold, target_far or target_fpir")
        info = self.ensure()
        check_decision(self.profile, info.settings, threshold=threshold, target_far=target_far,
                       target_fpir=target_fpir, searched=info.persons if target_fpir is not None else None)
        # a None value removes the key: exactly one rule is stored
        self.store.update_settings(self.name, threshold=threshold, target_far=target_far, target_fpir=target_fpir)
        return self.decision()

    def set_calibration(self, calibration: dict[str, Any]) -> Decision:
        """See :meth:`facewise.FaceWise.set_calibration`."""
        info = self.ensure()
        try:
            settings = {**info.settings, "calibration": calibration}
            decide(self.profile, settings)
            decide(self.profile, settings, info.persons)
        except ValidationError as exc:
            raise ValidationError(f"this calibration cannot serve collection {self.name!r}: {exc} (set "
                                  "another decision first)", what=exc.what, value=exc.value,
                                  valid=exc.valid) from None
        self.store.update_settings(self.name, calibration=calibration)
        return self.decision()

    def delete(self) -> None:
        """Delete this collection with everything in it; listeners of ``erasure`` erase what they derived."""
        self.store.delete_collection(self.name)
        self.erasure.emit(Erasure(self.name, whole_collection=True))

    # -- enrolment ------------------------------------------------------------------------------
    def enroll(self, person: str, images: ImageInput | Iterable[ImageInput], *, face: FaceChoice = "only",
               metadata: dict[str, Any] | None = None, gate: Gate | None = None,
               progress: Callable[[EnrollResult], None] | None = None, person_id: int | None = None,
               on_added: AddedFn | None = None) -> list[EnrollResult]:
        """See :meth:`facewise.FaceWise.enroll`; ``on_added`` as in :meth:`enroll_items`."""
        if person_id is None:
            person = check_name(person)  # a bad name is refused before any work
        given: list[ImageInput] = ([images] if is_one_image(images)  # type: ignore[list-item]
                                   else list(images))  # type: ignore[arg-type]
        return self.enroll_items([(person, img) for img in given], face=face, metadata=metadata, gate=gate,
                                 progress=progress, person_id=person_id, on_added=on_added)

    def enroll_items(self, items: list[tuple[str, ImageInput]], *, face: FaceChoice = "only",
                     metadata: dict[str, Any] | None = None, gate: Gate | None = None,
                     progress: Callable[[EnrollResult], None] | None = None, person_id: int | None = None,
                     on_added: AddedFn | None = None) -> list[EnrollResult]:
        """Enrol (person, image) pairs; all accepted samples are stored in one transaction (for ``person_id``,
        when given: see :meth:`facewise.FaceWise.enroll`). ``on_added(i, image, result)`` is called for each
        face accepted for storing, while the decoded image is at hand (a thumbnail needs no second decode)."""
        gate = gate or Gate()
        engine = self.engine
        exists = self.lookup() is not None  # another profile: refused before any work
        results: list[EnrollResult] = []
        pending: list[tuple[int, NewSample]] = []
        seen: set[tuple[str, int]] = set()
        for i, (person, src) in enumerate(items):
            name = src if isinstance(src, str) else os.fspath(src) if isinstance(src, os.PathLike) else "<image>"
            try:
                if person_id is None:
                    check_name(person)  # (one bad folder name does not refuse the others)
                img = load_image(src)
                name = img.name if img.name not in ("<bytes>", "<array>") else name
                _, faces = engine.embedded(img, embed=False)
                chosen = pick_face(faces, face, name)
                key = (img.sha256, chosen.index)
                if key in seen or (exists and self.store.has_image(self.name, img.sha256, chosen.index)):
                    res = EnrollResult(name, person, "duplicate", reason="image already enrolled", face=chosen)
                elif (refusal := engine.gate_refusal(img.pixels, chosen, gate)) is not None:
                    res = EnrollResult(name, person, "rejected", face=chosen, reason=refusal)
                else:
                    vec = engine.embed(img.pixels, [chosen])[0]
                    chosen.embedding = vec
                    seen.add(key)
                    res = EnrollResult(name, person, "added", face=chosen)
                    pending.append((len(results), NewSample(
                        person=person, image_sha256=img.sha256, embedding=vec, model=self.profile.signature,
                        face_index=chosen.index, box=chosen.box.as_list(),
                        source=os.fsencode(os.path.basename(name)).decode("utf-8", "backslashreplace"),
                        landmarks=np.round(chosen.landmarks, 2).tolist(), quality=chosen.quality.score,
                        yaw=chosen.yaw, metadata=metadata, person_id=person_id)))
                    if on_added is not None:
                        on_added(i, img, res)
            except (ImageError, NoFaceError, MultipleFacesError, InvalidNameError) as exc:
                res = EnrollResult(name, person, "rejected", reason=str(exc), code=exc.code)
            results.append(res)
            if progress:
                progress(res)
        if pending:  # the collection is created only now, with something to store
            self.ensure()
            ids = self.store.add_samples(self.name, [s for _, s in pending])
            for (i, _), sid in zip(pending, ids, strict=True):
                if sid is None:
                    results[i].status, results[i].reason = "duplicate", "image already enrolled"
                results[i].sample_id = sid
        added = sum(r.status == "added" for r in results)
        log.info("enrolled %d of %d images into %r", added, len(results), self.name)
        if not results:
            raise EnrollmentError("no image was given, so nothing was enrolled", results)
        if added == 0 and not any(r.status == "duplicate" for r in results):
            reasons = "; ".join(f"{os.path.basename(r.source)}: {r.reason}" for r in results[:3])
            more = f" (and {len(results) - 3} more)" if len(results) > 3 else ""
            raise EnrollmentError(f"nothing was enrolled: every image was rejected ({reasons}{more})", results)
        return results

    # -- recognition ----------------------------------------------------------------------------
    def search(self, queries: np.ndarray, k: int = 1) -> list[list[SearchHit]]:
        """The ``k`` nearest samples of each query vector (rows of ``queries``), best first, by the plain score."""
        return self.store.search(self.name, queries, k=k)

    def _rescore(self, face: Face, hits: list[SearchHit]) -> list[SearchHit]:
        """Re-score candidates with the profile's pose/quality-aware fusion (no-op for plain profiles)."""
        if self.engine.plain or not hits:
            return hits
        ids = [h.sample_id for h in hits]
        vecs = self.store.sample_vectors(self.name, ids)
        meta = self.store.sample_meta(self.name, ids)
        scores = self.engine.compare_many(face, vecs, np.array([meta[i]["yaw"] for i in ids]),
                                          np.array([meta[i]["quality"] for i in ids]))
        rescored = [SearchHit(h.person_id, h.name, float(s), h.sample_id) for h, s in zip(hits, scores, strict=True)]
        return sorted(rescored, key=lambda h: -h.score)

    def identify(self, image: ImageInput, top_k: int = 1, decision: Decision | None = None) -> list[Identification]:
        """Every face of an image with its best person, or "unknown" (``person=None``) below the threshold of
        ``decision`` (default: a snapshot read once, here). Each result carries the threshold it was decided at."""
        return self.identify_faces(self.engine.faces(image), top_k, decision)

    def identify_faces(self, faces: list[Face], top_k: int = 1,
                       decision: Decision | None = None) -> list[Identification]:
        """:meth:`identify` for faces embedded already."""
        if not faces:
            return []
        decision = decision or self.decision()
        queries = np.stack([f.vector for f in faces])
        k = max(1, top_k) if self.engine.plain else max(10, 3 * top_k)
        hits = self.search(queries, k=k)
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

    def verify(self, a: ImageInput, b: ImageInput, face: FaceChoice = "only", gate: Gate | None = None, *,
               other_face: FaceChoice | None = None) -> Verification:
        """See :meth:`facewise.FaceWise.verify` (decided at the collection's verification threshold where the
        collection exists, else at the profile's default)."""
        fa, refusal = self.engine.one_face(a, face, gate)
        fb, _ = self.engine.one_face(b, face if other_face is None else other_face)
        return self._verdict(self.engine.compare(fa, fb), self._decide(self._settings_or_empty()), refusal,
                             [fa, fb])

    def verify_person(self, image: ImageInput, person: str | int, face: FaceChoice = "only",
                      gate: Gate | None = None) -> Verification:
        """Is the face in ``image`` the enrolled ``person``? (best score over the person's samples)."""
        vecs = self.store.person_vectors(self.name, person)
        if len(vecs) == 0:
            raise NotFoundError(f"person {person!r} has no samples to verify against")
        probe, refusal = self.engine.one_face(image, face, gate)
        meta = self.store.list_samples(self.name, person)
        scores = self.engine.compare_many(probe, vecs, np.array([m.yaw for m in meta]),
                                          np.array([m.quality for m in meta]))
        return self._verdict(float(scores.max()), self.verification_decision(), refusal, [probe])

    def _settings_or_empty(self) -> dict[str, Any]:
        try:
            return self.store.get_collection(self.name).settings
        except FacewiseError:
            return {}

    def _verdict(self, score: float, decision: Decision, refusal: str | None = None,
                 faces: list[Face] | None = None) -> Verification:
        return Verification(score=score, same=score >= decision.threshold and refusal is None,
                            threshold=decision.threshold, far=decision.far_of(score), profile=self.profile.name,
                            reason=refusal, faces=[{"index": f.index, "box": f.box.as_list()} for f in faces or []])

    # -- persons and samples --------------------------------------------------------------------
    def persons(self, offset: int = 0, limit: int | None = None) -> list[Person]:
        self.ensure()
        return self.store.list_persons(self.name, offset, limit)

    def person(self, person: str | int) -> Person:
        return self.store.get_person(self.name, person)

    def add_person(self, name: str, metadata: dict[str, Any] | None = None) -> Person:
        self.ensure()
        return self.store.add_person(self.name, name, metadata)

    def rename_person(self, person: str | int, new_name: str) -> Person:
        return self.store.rename_person(self.name, person, new_name)

    def delete_person(self, person: str | int) -> int:
        """Delete a person, their samples and template; then every listener of ``erasure`` erases what it
        derived from them."""
        found = self.store.get_person(self.name, person)
        sample_ids = tuple(s.id for s in self.store.list_samples(self.name, found.id))
        n = self.store.delete_person(self.name, found.id)
        self.erasure.emit(Erasure(self.name, found.id, found.name, sample_ids))
        return n

    def samples(self, person: str | int | None = None) -> list[Sample]:
        self.ensure()
        return self.store.list_samples(self.name, person)

    def existing_samples(self, sample_ids: list[int]) -> set[int]:
        """Which of these samples still exist (a delete may have won a race)."""
        return set(self.store.sample_meta(self.name, sample_ids)) if sample_ids else set()

    def delete_sample(self, sample_id: int) -> None:
        self.store.delete_sample(self.name, sample_id)
        self.erasure.emit(Erasure(self.name, sample_ids=(sample_id,)))

    # -- export / import ------------------------------------------------------------------------
    def export(self, path: str | os.PathLike[str]) -> int:
        """Write the collection (persons, samples, vectors, settings) to JSON (``.gz`` compresses)."""
        info = self.ensure()
        encrypted = self.store.encrypted
        doc: dict[str, Any] = {"format": EXPORT_FORMAT, "version": 1, "collection": info.to_dict(),
                               "plaintext_vectors": True, "source_encrypted": encrypted,
                               "persons": list(self.store.export_rows(self.name))}
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
        self.ensure()
        ids = self.store.add_samples(self.name, samples)
        return sum(i is not None for i in ids)
