"""Exceptions raised by facewise. Every message names the file or object and the reason."""

from __future__ import annotations


class FacewiseError(Exception):
    """Base class of every error facewise raises on purpose."""

    code = "facewise_error"


class ImageError(FacewiseError):
    """An image could not be read or is not acceptable (unreadable, truncated, too large...)."""

    code = "bad_image"


class NoFaceError(FacewiseError):
    """No face was found where one was required."""

    code = "no_face"


class MultipleFacesError(FacewiseError):
    """Several faces were found where exactly one was required."""

    code = "multiple_faces"


class ModelNotFoundError(FacewiseError):
    """A model's files are not on the model search path."""

    code = "model_not_found"


class ModelIntegrityError(FacewiseError):
    """A model file does not match the sha256 of its card."""

    code = "model_integrity"


class ProfileMismatchError(FacewiseError):
    """A collection is bound to another profile than the one in use."""

    code = "profile_mismatch"


class SettingsError(FacewiseError):
    """An environment variable holds a value facewise cannot use (:mod:`facewise.settings`)."""

    code = "bad_setting"


class NotFoundError(FacewiseError):
    """A person, sample or collection does not exist."""

    code = "not_found"


class ConflictError(FacewiseError):
    """The request conflicts with what is stored (duplicate name...)."""

    code = "conflict"


class QualityError(FacewiseError):
    """A face was refused by the quality gate; ``reasons`` lists why."""

    code = "low_quality"

    def __init__(self, message: str, reasons: list[str] | None = None) -> None:
        super().__init__(message)
        self.reasons = reasons or []
