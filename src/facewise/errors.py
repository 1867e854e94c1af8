"""Exceptions raised by facewise, and the one table every door reads them from.

Each class carries its stable ``code`` (the REST answer's ``error.code``), the CLI's ``exit_code`` and the
service's ``http_status``; ``facewise.cli.common.handled`` and ``facewise.service.errors`` take both from here
and nowhere else. A subclass defined elsewhere (``VideoError``, the key errors of ``gallery/crypto.py``)
inherits its parent's row unless it sets its own. Every message names the file or object and the reason.

CLI exit codes: 0 ok, 1 an error facewise did not classify, 2 usage or an invalid value, 3 bad input
(image, video, face), 4 a model missing or damaged, 5 not found, 10 ``verify`` says different
(6 ``doctor`` unhealthy).
"""

from __future__ import annotations

__all__ = [
    "BadInputError", "CapabilityError", "ConflictError", "EnrollmentError", "FacewiseError", "GalleryInUseError",
    "ImageError",
    "InvalidNameError",
    "InvalidSettingError",
    "ModelIntegrityError", "ModelNotFoundError",
    "MultipleFacesError", "NoFaceError", "NotFoundError", "ProfileMismatchError", "QualityError",
    "ValidationError", "error_table", "install_hint",
]

import sys
from collections.abc import Sequence
from pathlib import Path

EXIT_UNCLASSIFIED, EXIT_USAGE, EXIT_INPUT, EXIT_MODEL, EXIT_NOT_FOUND = 1, 2, 3, 4, 5


class FacewiseError(Exception):
    """Base class of every error facewise raises on purpose.

    Besides its message an error may carry structured fields, so that each door can phrase its own hint (a CLI
    flag, a REST field) without the library naming either: ``what`` (the argument or setting concerned, in the
    library's terms: ``"profile"``, ``"face"``, ``"target_fpir"``...), ``value`` (the value refused) and ``valid``
    (the valid range or choices, as text). :attr:`details` holds the ones given.
    """

    code = "facewise_error"
    exit_code = EXIT_UNCLASSIFIED
    http_status = 400

    def __init__(self, message: str = "", *, what: str | None = None, value: object = None,
                 valid: str | None = None) -> None:
        super().__init__(message)
        self.what, self.value, self.valid = what, value, valid

    @property
    def details(self) -> dict[str, object]:
        """``{"what", "value", "valid"}``: the structured fields given (JSON-safe; none: empty)."""
        out: dict[str, object] = {}
        if getattr(self, "what", None) is not None:
            out["what"] = self.what
            value = self.value
            out["value"] = value if value is None or isinstance(value, bool | int | float | str) else repr(value)[:80]
        if getattr(self, "valid", None) is not None:
            out["valid"] = self.valid
        return out


class ValidationError(FacewiseError):
    """An argument's value is not acceptable (out of range, not finite, two options that exclude each other)."""

    code = "invalid_value"
    exit_code = EXIT_USAGE
    http_status = 422


class InvalidNameError(ValidationError):
    """A person's name breaks the gallery's name rules (``gallery/names.py``)."""

    code = "invalid_name"


class ImageError(FacewiseError):
    """An image could not be read or is not acceptable (unreadable, truncated, too large...)."""

    code = "bad_image"
    exit_code = EXIT_INPUT
    http_status = 422


class BadInputError(FacewiseError):
    """An input file other than an image or video (a pair list, an export, a timeline) is malformed; the
    message names the file, and the line where there is one."""

    code = "bad_input"
    exit_code = EXIT_INPUT
    http_status = 422


class NoFaceError(FacewiseError):
    """No face was found where one was required."""

    code = "no_face"
    exit_code = EXIT_INPUT
    http_status = 422


class MultipleFacesError(FacewiseError):
    """Several faces were found where exactly one was required."""

    code = "multiple_faces"
    exit_code = EXIT_INPUT
    http_status = 422


class QualityError(FacewiseError):
    """A face was refused by the quality gate; ``reasons`` lists why."""

    code = "low_quality"
    exit_code = EXIT_INPUT
    http_status = 422

    def __init__(self, message: str, reasons: list[str] | None = None) -> None:
        super().__init__(message)
        self.reasons = reasons or []


class EnrollmentError(BadInputError):
    """An enrolment stored nothing: every photo was rejected (or none was given). ``results`` holds each photo's
    outcome (``EnrollResult``, with its reason); the doors answer with them (CLI exit 3, REST 422)."""

    code = "nothing_enrolled"

    def __init__(self, message: str, results: Sequence[object] | None = None) -> None:
        super().__init__(message)
        self.results = list(results or [])


class ModelNotFoundError(FacewiseError):
    """A model's files are not on the model search path."""

    code = "model_not_found"
    exit_code = EXIT_MODEL
    http_status = 503


class ModelIntegrityError(FacewiseError):
    """A model file does not match the sha256 of its card."""

    code = "model_integrity"
    exit_code = EXIT_MODEL
    http_status = 503

class SettingsError(FacewiseError):
    """An environment variable holds a value facewise cannot use (:mod:`facewise.settings`)."""

    code = "bad_setting"
    exit_code = EXIT_USAGE
    http_status = 503  # the server is misconfigured: not the client's fault


class NotFoundError(FacewiseError):
    """A person, sample, collection or gallery does not exist."""

    code = "not_found"
    exit_code = EXIT_NOT_FOUND
    http_status = 404


class ConflictError(FacewiseError):
    """The request conflicts with what is stored (duplicate name...)."""

    code = "conflict"
    exit_code = EXIT_USAGE
    http_status = 409


class GalleryInUseError(ConflictError):
    """Another ``facewise serve`` holds the gallery file (one server per gallery: its start-up would remove the
    running server's video-job files)."""

    code = "gallery_in_use"


class ProfileMismatchError(ConflictError):
    """A collection is bound to another profile than the one in use."""

    code = "profile_mismatch"


class InvalidSettingError(ConflictError):
    """What a collection has stored is not valid (a threshold or target FAR out of range, written by hand or by an
    older version); the collection still opens, and the message says what is wrong and how to set a valid one."""

    code = "invalid_setting"


class CapabilityError(FacewiseError):
    """The store (or another backend) lacks a capability the request needs (encryption, moving samples...);
    the message names both (``store``, ``capability``)."""

    code = "capability_missing"
    exit_code = EXIT_USAGE
    http_status = 422

    def __init__(self, message: str, *, store: str = "", capability: str = "") -> None:
        super().__init__(message)
        self.store, self.capability = store, capability


def error_table() -> list[tuple[type[FacewiseError], str, int, int]]:
    """(class, code, exit code, HTTP status) of :class:`FacewiseError` and every subclass imported so far."""
    rows: list[tuple[type[FacewiseError], str, int, int]] = []
    todo: list[type[FacewiseError]] = [FacewiseError]
    while todo:
        cls = todo.pop(0)
        rows.append((cls, cls.code, cls.exit_code, cls.http_status))
        todo += sorted(cls.__subclasses__(), key=lambda c: c.__name__)
    return rows


def install_hint(extra: str) -> str:
    """The command that installs an optional extra into the Python running facewise, as it can be run here.

    facewise is installed from a source tree (a clone: ``make install`` / ``pip install -e .``) or from a wheel
    built from one; it is not on a package index, so ``pip install 'facewise[extra]'`` would fail. From a clone
    the hint names the clone; otherwise it names the installed version, for the wheel or folder it came from.
    """
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").is_file() and (root / "src" / "facewise").is_dir():
        target = f"-e '{root}[{extra}]'"
    else:
        target = f"'<the facewise wheel or source folder you installed from>[{extra}]'"
    return f"{sys.executable} -m pip install {target}"
