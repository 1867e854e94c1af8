"""The error table: every FacewiseError class → stable code, CLI exit code, HTTP status (one place, every door)."""

from __future__ import annotations

import pytest

from facewise import errors
from facewise.errors import FacewiseError, error_table

# Pinned: changing a row is an API change (REST clients read the code and status, scripts the exit code).
EXPECTED = {
    "FacewiseError": ("facewise_error", 1, 400),
    "ValidationError": ("invalid_value", 2, 422),
    "InvalidNameError": ("invalid_name", 2, 422),
    "ImageError": ("bad_image", 3, 422),
    "NoFaceError": ("no_face", 3, 422),
    "MultipleFacesError": ("multiple_faces", 3, 422),
    "QualityError": ("low_quality", 3, 422),
    "ModelNotFoundError": ("model_not_found", 4, 503),
    "ModelIntegrityError": ("model_integrity", 4, 503),
    "DatFormatError": ("model_format", 4, 503),
    "SettingsError": ("bad_setting", 2, 503),
    "NotFoundError": ("not_found", 5, 404),
    "ConflictError": ("conflict", 2, 409),
    "ProfileMismatchError": ("profile_mismatch", 2, 409),
    "GalleryInUseError": ("gallery_in_use", 2, 409),
    "InvalidSettingError": ("invalid_setting", 2, 409),
    "CapabilityError": ("capability_missing", 2, 422),
    "VideoError": ("bad_video", 3, 422),
    "VideoLimitError": ("video_too_large", 3, 413),
    "EncryptionKeyError": ("encryption_key", 1, 400),
    "DecryptionError": ("decryption_failed", 1, 400),
    "ExamplesUnavailableError": ("examples_unavailable", 4, 503),
    "BadInputError": ("bad_input", 3, 422),
    "BadExportError": ("bad_export", 3, 422),
    "EnrollmentError": ("nothing_enrolled", 3, 422),
    "PairListError": ("bad_pair_list", 3, 422),
    "MissingImagesError": ("missing_images", 3, 422),
}


def _table() -> dict[str, tuple[str, int, int]]:
    return {cls.__name__: (code, exit_code, status) for cls, code, exit_code, status in _rows()}


def _rows() -> list[tuple[type[FacewiseError], str, int, int]]:
    from facewise.eval.coverage import MissingImagesError  # noqa: F401  (registers its row)
    from facewise.eval.pairs import PairListError  # noqa: F401  (registers its row)
    from facewise.gallery.crypto import DecryptionError, EncryptionKeyError
    from facewise.gallery.exchange import BadExportError  # noqa: F401  (registers its row)
    from facewise.models.convert.dlib_dnn import DatFormatError  # noqa: F401  (registers its row)
    from facewise.models.examples import ExamplesUnavailableError  # noqa: F401  (registers its row)
    from facewise.video.decode import VideoError

    rows = error_table()
    assert {DecryptionError, EncryptionKeyError, VideoError} <= {cls for cls, *_ in rows}
    return rows


def test_error_table_is_pinned() -> None:
    assert _table() == EXPECTED


def test_codes_are_unique_and_every_errors_class_is_in_the_table() -> None:
    table = _table()
    codes = [code for code, _, _ in table.values()]
    assert len(codes) == len(set(codes))
    public = {n for n in errors.__all__ if isinstance(getattr(errors, n), type)}
    assert public <= set(table)
    for _, exit_code, status in table.values():
        assert exit_code in (1, 2, 3, 4, 5) and 400 <= status < 600 and status != 500


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_service_status_and_cli_exit_come_from_the_class(name: str) -> None:
    pytest.importorskip("fastapi")
    import typer

    from facewise.cli.common import handled
    from facewise.service.errors import status_of

    exc = {c.__name__: c for c, *_ in _rows()}[name]("x")
    assert status_of(exc) == EXPECTED[name][2]
    with pytest.raises(typer.Exit) as caught, handled():
        raise exc
    assert caught.value.exit_code == EXPECTED[name][1]
