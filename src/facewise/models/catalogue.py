"""Model cards, the model search path, integrity checks and (online) fetching.

A card is a JSON file describing one model: task, files (relative path, sha256, size, download
URL), licence of the weights, the training data and its terms as published, source and input
specification. ``commercial_use`` is ``"yes"`` (the weights' publisher allows it and states no
exclusion), ``"no"`` (the publisher, or the data owners through it, exclude it) or ``"unclear"``
(nothing published that settles it); older cards may say true / false. Files are looked up, in order, in:

1. each folder of ``FACEWISE_MODEL_PATH`` (``os.pathsep``-separated),
2. the per-user cache (``$FACEWISE_CACHE`` or ``$XDG_CACHE_HOME/facewise/models`` or ``~/.cache/facewise/models``),
3. the weights shipped inside this package (``facewise/models/weights``),
4. an installed Python package named by the file entry (e.g. ``face_recognition_models``).

Nothing is ever downloaded implicitly: only :func:`fetch` (``facewise models fetch``) does that.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

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
            files.append(ModelFile(f["path"], f.get("sha256"), f.get("size"), f.get("url"), f.get("package")))
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
            "files": [{"path": f.path, "sha256": f.sha256, "size": f.size, "url": f.url} for f in self.files],
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


def card(model_id: str) -> ModelCard:
    try:
        return cards()[model_id]
    except KeyError:
        raise ModelNotFoundError(
            f"unknown model id {model_id!r}; known: {', '.join(sorted(cards()))}"
        ) from None


def cache_dir() -> Path:
    if os.environ.get("FACEWISE_CACHE"):
        return Path(os.environ["FACEWISE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "facewise" / "models"


def search_path() -> list[Path]:
    """The folders searched for model files, in order."""
    roots = [Path(p) for p in os.environ.get("FACEWISE_MODEL_PATH", "").split(os.pathsep) if p]
    return [*roots, cache_dir(), WEIGHTS_DIR]


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
            hint = f"run `facewise models fetch {c.id}`" if f.url else "obtain it from " + c.source
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


def _download(url: str, dest: Path, timeout: float) -> None:
    import bz2

    with urllib.request.urlopen(url, timeout=timeout) as resp, tempfile.NamedTemporaryFile(
        dir=dest.parent, delete=False
    ) as tmp:
        shutil.copyfileobj(resp, tmp)
        tmp_path = Path(tmp.name)
    if url.endswith(".bz2"):
        raw = bz2.decompress(tmp_path.read_bytes())
        tmp_path.write_bytes(raw)
    tmp_path.replace(dest)


def fetch(model_id: str, dest_root: Path | None = None, timeout: float = 30.0) -> list[Path]:
    """Download a model's missing files into the cache and check their sha256.

    Fails with :class:`FacewiseError` naming the file, the URL and where to put a copy by hand
    when the network is unreachable or a file has no public URL.
    """
    c = card(model_id)
    dest_root = dest_root or cache_dir()
    got = []
    for f in c.files:
        existing = locate_file(f)
        if existing is not None:
            got.append(existing)
            continue
        dest = dest_root / f.path
        if not f.url:
            raise FacewiseError(
                f"model {c.id!r}: file {f.path!r} has no public download URL (source: {c.source}); "
                f"copy it to {dest} by hand"
            )
        dest.parent.mkdir(parents=True, exist_ok=True)
        log.info("downloading %s -> %s", f.url, dest)
        try:
            _download(f.url, dest, timeout)
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            raise FacewiseError(
                f"model {c.id!r}: could not download {f.path!r} from {f.url} ({exc}); "
                f"this machine may be offline: copy the file to {dest} by hand "
                f"(sha256 {f.sha256})"
            ) from None
        if f.sha256 and sha256_file(dest) != f.sha256:
            dest.unlink(missing_ok=True)
            raise ModelIntegrityError(f"model {c.id!r}: downloaded {f.path!r} does not match its sha256")
        got.append(dest)
    return got
