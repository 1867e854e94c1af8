"""The one way facewise writes an output file (annotated images, timelines, thumbnails, videos, reports, CSVs).

Every output is written atomically: a temporary file is created in the target's folder with
``O_CREAT | O_EXCL | O_NOFOLLOW`` (a random name: nobody can plant it, nor a link in its place), filled, then
``os.replace``\\ d over the target, so a reader never sees half a file and a killed run leaves the old one. A
target that is a symbolic link, a folder, or one of the run's input files is refused (:class:`ValidationError`,
exit 2) before anything is written: an output never follows a planted link and never overwrites a photo.
CSV cells that a spreadsheet would run as a formula are escaped by :func:`csv_cell`.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from facewise.errors import ValidationError

# A cell starting with one of these is a formula (or becomes one) in Excel, LibreOffice and Google Sheets.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """``value`` as a CSV writer should get it: text that a spreadsheet would run as a formula gets a leading
    single quote (numbers stay numbers, paths become text)."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def csv_row(values: Iterable[Any]) -> list[Any]:
    return [csv_cell(v) for v in values]


def _identity(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


class InputFiles:
    """The files a run reads, by device and inode (another path to the same file, a hard link, is the same)."""

    def __init__(self, paths: Iterable[str | os.PathLike[str]] = ()) -> None:
        self._by_id: dict[tuple[int, int], str] = {}
        for p in paths:
            ident = _identity(p)
            if ident is not None:
                self._by_id.setdefault(ident, os.fsdecode(p))

    def which(self, ident: tuple[int, int]) -> str | None:
        return self._by_id.get(ident)


Inputs = InputFiles | Iterable[str | os.PathLike[str]]


def check_target(path: str | os.PathLike[str], inputs: Inputs = ()) -> Path:
    """``path`` if an output may be written there; else a :class:`ValidationError` naming why."""
    path = Path(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return path
    except OSError as exc:
        raise ValidationError(f"{path}: cannot write an output there ({exc.strerror or exc})") from None
    if stat.S_ISLNK(st.st_mode):
        raise ValidationError(f"{path}: is a symbolic link; facewise does not write outputs through links "
                              "(remove it or choose another folder)")
    if stat.S_ISDIR(st.st_mode):
        raise ValidationError(f"{path}: is a folder, not a file facewise may write")
    source = (inputs if isinstance(inputs, InputFiles) else InputFiles(inputs)).which((st.st_dev, st.st_ino))
    if source is not None:
        raise ValidationError(f"{path}: is one of the input files ({source}); an output never overwrites an "
                              "input (choose another output folder)")
    return path


def _umask() -> int:
    current = os.umask(0o077)
    os.umask(current)
    return current


def begin(path: str | os.PathLike[str], inputs: Inputs = (), suffix: str = "", mode: int = 0o644) -> Path:
    """A fresh temporary file beside ``path`` (created exclusively, never through a link), after checking
    ``path`` may be written; :func:`commit` puts it in place, :func:`abandon` removes it. ``suffix`` keeps the
    extension a writer may read its format from; ``mode`` is the file's permissions, less the process umask (as
    ``open`` would make them: the CLI's owner-only default holds for outputs too)."""
    target = check_target(path, inputs)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{suffix}", dir=target.parent)
    try:
        os.fchmod(fd, mode & ~_umask())
    finally:
        os.close(fd)
    return Path(tmp)


def commit(tmp: Path, path: str | os.PathLike[str], inputs: Inputs = ()) -> Path:
    """Replace ``path`` by the finished ``tmp``; a link or input planted there meanwhile is refused too."""
    try:
        target = check_target(path, inputs)
        os.replace(tmp, target)
    except BaseException:
        abandon(tmp)
        raise
    return target


def abandon(tmp: Path) -> None:
    Path(tmp).unlink(missing_ok=True)


@contextmanager
def output_path(path: str | os.PathLike[str], inputs: Inputs = (), suffix: str = "",
                mode: int = 0o644) -> Iterator[Path]:
    """:func:`begin` … :func:`commit` around a block that writes the temporary file by name (OpenCV, PyAV); on
    an exception the temporary file is removed and ``path`` is left as it was."""
    inputs = inputs if isinstance(inputs, InputFiles) else InputFiles(inputs)
    tmp = begin(path, inputs, suffix, mode)
    try:
        yield tmp
    except BaseException:
        abandon(tmp)
        raise
    commit(tmp, path, inputs)


@contextmanager
def open_output(path: str | os.PathLike[str], inputs: Inputs = (),
                text: bool = False, newline: str | None = None, mode: int = 0o644) -> Iterator[IO[Any]]:
    """An open file (binary, or UTF-8 text with ``text``) whose content replaces ``path`` when the block ends."""
    with output_path(path, inputs, mode=mode) as tmp:
        flags = os.O_WRONLY | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(tmp, flags)
        with (os.fdopen(fd, "w", encoding="utf-8", newline=newline) if text else os.fdopen(fd, "wb")) as fh:
            yield fh


def write_bytes(path: str | os.PathLike[str], data: bytes, inputs: Inputs = ()) -> Path:
    with open_output(path, inputs) as fh:
        fh.write(data)
    return Path(path)


def write_text(path: str | os.PathLike[str], text: str, inputs: Inputs = ()) -> Path:
    with open_output(path, inputs, text=True) as fh:
        fh.write(text)
    return Path(path)
