"""Model cards, the model search path, integrity checks and (online) fetching.

A card is a JSON file describing one model: task, files (relative path, sha256, size, and how to get
it: a public download ``url``, with ``member`` when the file is inside a zip archive there, or ``manual``
instructions when no public artefact equals the file), licence of the weights, the training data and its
terms as published, source and input specification. ``commercial_use`` is ``"yes"`` (the weights' publisher
allows it and states no exclusion), ``"no"`` (the publisher, or the data owners through it, exclude it) or
``"unclear"`` (nothing published that settles it); older cards may say true / false. Files are looked up, in
order, in:

1. each folder of ``FACEWISE_MODEL_PATH`` (``os.pathsep``-separated),
2. the per-user cache (``$FACEWISE_CACHE`` or ``$XDG_CACHE_HOME/facewise/models`` or ``~/.cache/facewise/models``),
3. the weights shipped inside this package (``facewise/models/weights``),
4. an installed Python package named by the file entry (e.g. ``face_recognition_models``).

Nothing is ever downloaded implicitly: only :func:`fetch_many` (``facewise models fetch``) does that, from
the card's URL or, when ``FACEWISE_MODEL_MIRROR`` is set, from ``<mirror>/<path>``.
"""

from __future__ import annotations

import bz2
import hashlib
import importlib.util
import json
import logging
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from facewise import settings
from facewise.errors import FacewiseError, ModelIntegrityError, ModelNotFoundError

log = logging.getLogger(__name__)

CARDS_DIR = Path(__file__).with_name("cards")
WEIGHTS_DIR = Path(__file__).with_name("weights")


@dataclass(frozen=True)
class ModelFile:
    path: str
    sha256: str | None
    size: int | None
    url: str | None = None
    package: str | None = None  # "<python package>/<subfolder>" holding the file when installed from a registry
    member: str | None = None  # the file is this member of the zip archive at ``url``
    manual: str | None = None  # no public artefact equals the file: how to make or obtain it by hand

    def source_url(self) -> str | None:
        """Where :func:`fetch` downloads the file: ``FACEWISE_MODEL_MIRROR``/<path> when set, else the card's URL."""
        mirror = settings.model_mirror()
        return f"{mirror.rstrip('/')}/{self.path}" if mirror else self.url

    def summary(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "size": self.size, "url": self.url, "member": self.member,
                "manual": self.manual}


@dataclass(frozen=True)
class ModelCard:
    id: str
    task: str
    backend: str
    licence: str
    commercial: str  # "yes" | "no" | "unclear", from the licence and training-data terms as published
    source: str
    files: tuple[ModelFile, ...]
    input: dict[str, Any] = field(default_factory=dict)
    output_dim: int | None = None
    thresholds: dict[str, Any] = field(default_factory=dict)
    notes: str = ""
    training_data: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def commercial_use(self) -> bool:
        """True only when commercial use is a published yes."""
        return self.commercial == "yes"

    @classmethod
    def from_dict(cls, d: dict[str, Any], base: Path | None = None) -> ModelCard:
        files = []
        for f in d.get("files", []):
            if isinstance(f, str):
                f = {"path": f, "sha256": d.get("sha256"), "size": d.get("size")}
            files.append(ModelFile(f["path"], f.get("sha256"), f.get("size"), f.get("url"), f.get("package"),
                                   f.get("member"), f.get("manual")))
        known = {"id", "task", "backend", "licence", "commercial_use", "source", "files", "input", "output_dim",
                 "thresholds", "notes", "sha256", "size", "training_data"}
        commercial = d.get("commercial_use", "unclear")
        if isinstance(commercial, bool):
            commercial = "yes" if commercial else "no"
        if commercial not in ("yes", "no", "unclear"):
            raise FacewiseError(f"model card {d.get('id')!r}: commercial_use must be yes, no or unclear")
        return cls(
            id=d["id"], task=d["task"], backend=d.get("backend", "onnx"), licence=d.get("licence", "unknown"),
            commercial=commercial, source=d.get("source", ""),
            files=tuple(files), input=d.get("input", {}), output_dim=d.get("output_dim"),
            thresholds=d.get("thresholds", {}), notes=d.get("notes", ""),
            training_data=d.get("training_data", "not stated on this card"),
            extra={k: v for k, v in d.items() if k not in known},
        )

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id, "task": self.task, "backend": self.backend, "licence": self.licence,
            "training_data": self.training_data, "commercial_use": self.commercial, "source": self.source,
            "output_dim": self.output_dim,
            "files": [f.summary() for f in self.files],
            "input": self.input, "thresholds": self.thresholds, "notes": self.notes,
        }


@lru_cache(maxsize=1)
def cards() -> dict[str, ModelCard]:
    """All model cards shipped with the package, by id."""
    out: dict[str, ModelCard] = {}
    for folder in (CARDS_DIR, WEIGHTS_DIR):
        for p in sorted(folder.glob("*.json")):
            card = ModelCard.from_dict(json.loads(p.read_text()))
            out[card.id] = card
    return out


# cards added at run time (:func:`add_card`): in-process only, never listed by :func:`cards`
_ADDED: dict[str, ModelCard] = {}


def add_card(c: ModelCard | dict[str, Any]) -> ModelCard:
    """Add a model card at run time (a :class:`ModelCard` or its JSON dict), so a profile can name the model.

    For models that are not shipped: a deployment's own, or the fakes of :mod:`facewise.testing` (whose card has no
    files, so the model is always available). A shipped card's id is refused; adding the same id again replaces
    it. The card lives in this process only: :func:`cards` (``facewise models list``) shows the shipped ones."""
    new = c if isinstance(c, ModelCard) else ModelCard.from_dict(c)
    if new.id in cards():
        raise FacewiseError(f"model card {new.id!r} is shipped with facewise: give the added one another id")
    _ADDED[new.id] = new
    from facewise.models import registry  # models built from the card it replaces are dropped

    registry.clear_cache()
    return new


def remove_card(model_id: str) -> None:
    """Forget a card added with :func:`add_card` (unknown ids are ignored)."""
    if _ADDED.pop(model_id, None) is not None:
        from facewise.models import registry

        registry.clear_cache()


def card(model_id: str) -> ModelCard:
    """The card of ``model_id``: a shipped one or one added with :func:`add_card`."""
    found = _ADDED.get(model_id) or cards().get(model_id)
    if found is None:
        raise ModelNotFoundError(f"unknown model id {model_id!r}; known: {', '.join(sorted([*cards(), *_ADDED]))}")
    return found


def cache_dir() -> Path:
    return settings.model_cache_dir()


def search_path() -> list[Path]:
    """The folders searched for model files, in order."""
    return [*settings.model_path(), cache_dir(), WEIGHTS_DIR]


def _package_dir(spec: str) -> Path | None:
    pkg, _, sub = spec.partition("/")
    found = importlib.util.find_spec(pkg)
    if found is None or not found.submodule_search_locations:
        return None
    return Path(next(iter(found.submodule_search_locations))) / sub


def locate_file(f: ModelFile) -> Path | None:
    for root in search_path():
        for candidate in (root / f.path, root / Path(f.path).name):
            if candidate.is_file():
                return candidate
    if f.package:
        pdir = _package_dir(f.package)
        if pdir is not None and (pdir / Path(f.path).name).is_file():
            return pdir / Path(f.path).name
    return None


def is_available(model_id: str) -> bool:
    return all(locate_file(f) is not None for f in card(model_id).files)


def resolve(model_id: str) -> list[Path]:
    """Paths of a model's files, or :class:`ModelNotFoundError` naming the file and where to put it."""
    c = card(model_id)
    paths = []
    for f in c.files:
        p = locate_file(f)
        if p is None:
            where = ", ".join(str(r) for r in search_path())
            hint = (f"run `facewise models fetch {c.id}`" if f.source_url()
                    else f"no public download URL: {f.manual or 'obtain it from ' + c.source}")
            raise ModelNotFoundError(
                f"model {c.id!r}: file {f.path!r} not found on the model search path ({where}); "
                f"{hint}, or place it at <folder>/{f.path} and set FACEWISE_MODEL_PATH=<folder>"
            )
        paths.append(p)
    return paths


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class FileStatus:
    path: str
    found: Path | None
    ok: bool
    reason: str


def verify(model_id: str) -> list[FileStatus]:
    """Check every file of a model against its card's sha256."""
    out = []
    for f in card(model_id).files:
        p = locate_file(f)
        if p is None:
            out.append(FileStatus(f.path, None, False, "missing"))
            continue
        digest = sha256_file(p)
        if f.sha256 and digest != f.sha256:
            out.append(FileStatus(f.path, p, False, f"sha256 mismatch: {digest[:12]}… != {f.sha256[:12]}…"))
        else:
            out.append(FileStatus(f.path, p, True, "ok"))
    return out


ANALYSIS_MODELS = ("minifasnet-v2-v1se", "fsanet")  # what `analyze` loads besides the profile (liveness, pose)


def state(model_id: str) -> str:
    """``available`` (every file on the search path), ``fetchable`` (each missing file has a download URL) or
    ``manual`` (a missing file must be made or copied by hand: its card says how)."""
    missing = [f for f in card(model_id).files if locate_file(f) is None]
    if not missing:
        return "available"
    return "fetchable" if all(f.source_url() for f in missing) else "manual"


@dataclass(frozen=True)
class FetchResult:
    """One file of :func:`fetch_many`: ``path`` where it is now (``None`` on failure), whether it was
    downloaded, and on failure the error saying what to download, from where, to where and its sha256."""

    model: str
    file: str
    path: Path | None
    downloaded: bool = False
    error: FacewiseError | None = None


def _download(url: str, dest: Path, member: str | None, timeout: float, limit: int | None = None) -> Path:
    """Download ``url`` (or ``member`` of the zip archive there) to a temporary file beside ``dest``; more than
    ``limit`` bytes is refused (a plain file is never larger than its card says)."""
    with urllib.request.urlopen(url, timeout=timeout) as resp, tempfile.NamedTemporaryFile(
        dir=dest.parent, prefix=f".{dest.name}.", delete=False
    ) as tmp:
        tmp_path = Path(tmp.name)
        try:
            got = 0
            while chunk := resp.read(1 << 20):
                got += len(chunk)
                if limit is not None and got > limit:
                    raise ModelIntegrityError(f"{url}: larger than the {limit} bytes its card gives: refused")
                tmp.write(chunk)
        except BaseException:
            tmp_path.unlink(missing_ok=True)
            raise
    try:
        if member:
            with zipfile.ZipFile(tmp_path) as zf:
                raw = zf.read(member)
            tmp_path.write_bytes(raw)
        elif url.endswith(".bz2"):
            tmp_path.write_bytes(bz2.decompress(tmp_path.read_bytes()))
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        tmp_path.unlink(missing_ok=True)
        raise ModelIntegrityError(f"{url}: not a valid archive holding {member or dest.name} ({exc})") from None
    return tmp_path


def _fetch_file(c: ModelCard, f: ModelFile, dest_root: Path, timeout: float) -> FetchResult:
    existing = locate_file(f)
    if existing is not None:
        return FetchResult(c.id, f.path, existing)
    dest = dest_root / f.path
    put = f"put it at {dest} (or at <folder>/{f.path} with FACEWISE_MODEL_PATH=<folder>), sha256 {f.sha256}"
    url = f.source_url()
    if not url:
        how = f.manual or f"obtain it from {c.source}"
        return FetchResult(c.id, f.path, None, error=ModelNotFoundError(
            f"model {c.id!r}: file {f.path!r} has no public download URL (manual): {how}; {put}"))
    dest.parent.mkdir(parents=True, exist_ok=True)
    what = f"{url} (archive member {f.member})" if f.member and url == f.url else url
    log.info("downloading %s -> %s", what, dest)
    try:
        member = f.member if url == f.url else None
        limit = None if member or url.endswith(".bz2") or not f.size else f.size
        tmp = _download(url, dest, member, timeout, limit)
    except ModelIntegrityError as exc:
        return FetchResult(c.id, f.path, None, error=exc)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", None) or exc
        return FetchResult(c.id, f.path, None, error=ModelNotFoundError(
            f"model {c.id!r}: could not download {f.path!r} from {what} ({reason}); this machine may be offline: "
            f"download it by hand and {put}" + (f"; no public artefact equals it: {f.manual}" if f.manual else "")))
    digest = sha256_file(tmp)
    if f.sha256 and digest != f.sha256:
        tmp.unlink(missing_ok=True)
        return FetchResult(c.id, f.path, None, error=ModelIntegrityError(
            f"model {c.id!r}: the file downloaded from {what} has sha256 {digest}, not {f.sha256}: "
            f"deleted and refused"))
    tmp.replace(dest)
    return FetchResult(c.id, f.path, dest, downloaded=True)


def fetch_many(model_ids: list[str], dest_root: Path | None = None, timeout: float = 30.0) -> list[FetchResult]:
    """Fetch every missing file of these models into the cache (or ``dest_root``), one result per file.

    A file already on the search path is not downloaded again; a download whose sha256 differs from the card
    is deleted. Failures do not stop the other files: each result carries its own error.
    """
    ids = list(dict.fromkeys(model_ids))
    cs = [card(m) for m in ids]  # unknown ids fail before anything is downloaded
    dest_root = dest_root or cache_dir()
    return [_fetch_file(c, f, dest_root, timeout) for c in cs for f in c.files]


def fetch(model_id: str, dest_root: Path | None = None, timeout: float = 30.0) -> list[Path]:
    """Download a model's missing files and check their sha256; the first failure is raised
    (:class:`ModelNotFoundError` naming the file, the URL and where to put a copy, or :class:`ModelIntegrityError`)."""
    results = fetch_many([model_id], dest_root, timeout)
    for r in results:
        if r.error is not None:
            raise r.error
    return [r.path for r in results if r.path is not None]
