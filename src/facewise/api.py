"""The Python facade: ``FaceWise(db=..., profile=...)``, one :class:`FaceEngine` and one :class:`Collection`."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from facewise.collection import Collection, find_collection
from facewise.collection import folder_items as folder_items
from facewise.core.analysis import Analyzer, Gate
from facewise.core.engine import FaceChoice as FaceChoice
from facewise.core.engine import FaceEngine
from facewise.core.engine import parse_face_choice as parse_face_choice
from facewise.core.engine import pick_face as pick_face
from facewise.core.imageio import ImageInput
from facewise.core.pipeline import Pipeline
from facewise.core.quality import QualityPolicy
from facewise.decision.matching import Decision
from facewise.errors import FacewiseError, NotFoundError, ValidationError
from facewise.gallery import SQLiteStore, Store
from facewise.gallery.maintenance import ErasureHooks
from facewise.gallery.store import CollectionInfo
from facewise.models.profiles import Profile, load_profile
from facewise.types import EnrollResult, Face, Identification, Person, Sample, Verification

log = logging.getLogger(__name__)


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

    It is a thin composition: ``engine`` (a :class:`~facewise.core.engine.FaceEngine`: detect, analyze, embed,
    compare with the profile) and ``coll`` (a :class:`~facewise.collection.Collection`: that engine, the store
    and the collection's rules). The doors (video, batch, service, CLI) use those two. ``profile``,
    ``pipeline``, ``analyzer``, ``scorer``, ``store`` and ``erasure`` name their parts, as before.
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
            engine = FaceEngine(_as_profile(profile or "default"), threads, quality, pipeline=pipeline,
                                analyzer=analyzer).load()
            store = _open(db)
            coll = Collection(engine, store, collection, create=create, erasure=erasure)
        else:
            store = _open(db)
            try:
                stored = find_collection(store, collection, None, create) if profile is None else None
                prof = _as_profile(profile or (stored.profile if stored else "default"),
                                   stored.name if stored else None)
                coll = Collection(FaceEngine(prof, threads, quality, pipeline=pipeline, analyzer=analyzer), store,
                                  collection, create=create, erasure=erasure)
                if not create:
                    coll.lookup()  # missing: NotFoundError; another profile: ProfileMismatchError
            except BaseException:
                if store is not db:  # opened here: closed here
                    store.close()
                raise
        self.engine: FaceEngine = coll.engine
        self.coll: Collection = coll
        # the parts, by their names of old
        self.store: Store = store
        self.erasure = coll.erasure
        self.profile, self.pipeline = self.engine.profile, self.engine.pipeline
        self.analyzer, self.scorer = self.engine.analyzer, self.engine.scorer

    # -- lifecycle ------------------------------------------------------------------------------
    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> FaceWise:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the collection -------------------------------------------------------------------------
    @property
    def info(self) -> CollectionInfo:
        """The collection, bound to this profile (created on first use unless ``create=False``)."""
        return self.coll.ensure()

    @property
    def decision(self) -> Decision:
        """How the collection identifies now (a search of all its persons: by default at a target FPIR, so the
        threshold follows the gallery's size); :class:`InvalidSettingError` if what it stores is invalid. Each read
        is a new snapshot (:meth:`Collection.decision`)."""
        return self.coll.decision()

    @property
    def verification_decision(self) -> Decision:
        """How the collection verifies (one comparison: at a target FAR)."""
        return self.coll.verification_decision()

    def index_info(self) -> dict[str, Any]:
        """Which search the collection runs and why (``{"index", "setting", "reason"}``): in a SQLite gallery the
        ``index`` setting (``auto`` by default: exact search, HNSW from 50,000 faces where faiss is installed);
        a server store searches with its own index."""
        return self.coll.index_info()

    def set_threshold(self, threshold: float | None = None, target_far: float | None = None,
                      target_fpir: float | None = None) -> Decision:
        """Decide at a raw score, at a target false-accept rate per comparison (identification and verification),
        or at a target FPIR (identification: the chance a stranger gets a name from a search of the whole
        gallery; its threshold follows the number of persons). Clears the others.

        Refused with :class:`ValidationError` (nothing stored) unless the value is finite and inside the range the
        collection can decide at now (``facewise.decision.matching.check_decision``).
        """
        return self.coll.set_threshold(threshold, target_far, target_fpir)

    def set_calibration(self, calibration: dict[str, Any]) -> Decision:
        """Store the collection's own calibration (``Calibration.to_dict()``, ``facewise calibrate --db``).

        Refused with :class:`ValidationError` (nothing stored) when it is not usable or when the collection's
        stored decision (its target FAR) would fall outside it.
        """
        return self.coll.set_calibration(calibration)

    # -- faces ----------------------------------------------------------------------------------
    def detect(self, image: ImageInput) -> list[Face]:
        """Faces with boxes, landmarks, yaw and quality (no identity vectors)."""
        return self.engine.detect(image)

    def faces(self, image: ImageInput) -> list[Face]:
        """Faces with their profile vectors (``Face.embedding``)."""
        return self.engine.faces(image)

    def analyze(self, image: ImageInput, what: tuple[str, ...] | None = None) -> list[Face]:
        """Faces with quality reasons plus, in ``Face.attributes``, the face attributes named in ``what``
        (default: every registered one; as shipped liveness, head pose and expression; ``"live_map"`` adds
        the liveness occlusion map). An unknown name is a :class:`~facewise.errors.ValidationError`."""
        return self.engine.analyze(image, what)

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
        return self.coll.enroll(person, images, face=face, metadata=metadata, gate=gate, progress=progress,
                                person_id=person_id)

    def enroll_folder(self, root: str | os.PathLike[str], *, face: FaceChoice = "only", gate: Gate | None = None,
                      progress: Callable[[EnrollResult], None] | None = None) -> list[EnrollResult]:
        """Enrol every ``root/<person>/*.jpg`` (one sub-folder per person)."""
        items: list[tuple[str, ImageInput]] = list(folder_items(Path(root)))
        return self.coll.enroll_items(items, face=face, gate=gate, progress=progress)

    def enroll_items(self, items: list[tuple[str, ImageInput]], *, face: FaceChoice = "only",
                     metadata: dict[str, Any] | None = None, gate: Gate | None = None,
                     progress: Callable[[EnrollResult], None] | None = None,
                     person_id: int | None = None) -> list[EnrollResult]:
        """Enrol (person, image) pairs; all accepted samples are stored in one transaction (for ``person_id``,
        when given: see :meth:`enroll`)."""
        return self.coll.enroll_items(items, face=face, metadata=metadata, gate=gate, progress=progress,
                                      person_id=person_id)

    # -- recognition ----------------------------------------------------------------------------
    def identify(self, image: ImageInput, top_k: int = 1) -> list[Identification]:
        """Every face of an image with its best person, or "unknown" (``person=None``) below the threshold."""
        return self.coll.identify(image, top_k)

    def verify(self, a: ImageInput, b: ImageInput, face: FaceChoice = "only",
               gate: Gate | None = None, *, other_face: FaceChoice | None = None) -> Verification:
        """Are the faces of two images the same person? ``face`` picks the face of ``a``, ``other_face`` that of
        ``b`` (default: the same choice as ``face``): ``"only"`` (the default, as in the CLI and REST) refuses a
        photo with several faces (:class:`MultipleFacesError`), ``"largest"`` or an index says which.

        With a ``gate``, a probe ``a`` that is not live (or below quality) is answered "not same"
        with the reason, not an exception.
        """
        return self.coll.verify(a, b, face, gate, other_face=other_face)

    def verify_person(self, image: ImageInput, person: str | int, face: FaceChoice = "only",
                      gate: Gate | None = None) -> Verification:
        """Is the face in ``image`` the enrolled ``person``? (best score over the person's samples)."""
        return self.coll.verify_person(image, person, face, gate)

    # -- gallery management ---------------------------------------------------------------------
    def persons(self, offset: int = 0, limit: int | None = None) -> list[Person]:
        return self.coll.persons(offset, limit)

    def person(self, person: str | int) -> Person:
        return self.coll.person(person)

    def add_person(self, name: str, metadata: dict[str, Any] | None = None) -> Person:
        return self.coll.add_person(name, metadata)

    def rename_person(self, person: str | int, new_name: str) -> Person:
        return self.coll.rename_person(person, new_name)

    def delete_person(self, person: str | int) -> int:
        """Delete a person, their samples and template; then every listener of ``erasure`` erases what it
        derived from them."""
        return self.coll.delete_person(person)

    def samples(self, person: str | int | None = None) -> list[Sample]:
        return self.coll.samples(person)

    def delete_sample(self, sample_id: int) -> None:
        self.coll.delete_sample(sample_id)

    def delete_collection(self) -> None:
        """Delete this collection with everything in it; listeners of ``erasure`` erase what they derived."""
        self.coll.delete()

    def export(self, path: str | os.PathLike[str]) -> int:
        """Write the collection (persons, samples, vectors, settings) to JSON (``.gz`` compresses)."""
        return self.coll.export(path)

    def import_(self, path: str | os.PathLike[str]) -> int:
        """Merge an exported collection into this one (same profile required); returns samples added."""
        return self.coll.import_(path)


def _local_path(db: object) -> Path | None:
    """The file of a SQLite gallery given by path; ``None`` for a URL, ``:memory:``, a store object or nothing."""
    if not isinstance(db, str | os.PathLike):
        return None
    from facewise.gallery.open import is_server_address

    text = os.fspath(db)
    return None if is_server_address(text) or text in (":memory:", "") else Path(text)


def _open(db: str | os.PathLike[str] | Store | None) -> Store:
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
