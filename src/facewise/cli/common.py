"""What every command shares: the Typer apps, consoles, options, and the error → exit-code table."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console, ConsoleDimensions
from rich.logging import RichHandler
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from facewise import settings
from facewise.errors import (
    FacewiseError,
    ImageError,
    ModelNotFoundError,
    NotFoundError,
    ValidationError,
)

if TYPE_CHECKING:
    from facewise.api import FaceWise
    from facewise.core.engine import FaceChoice
    from facewise.gallery.store import Store
    from facewise.types import Person

app = typer.Typer(help="facewise: face detection, recognition and verification with calibrated thresholds.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
people_app = typer.Typer(help="List, show, rename and delete enrolled people and samples.", no_args_is_help=True)
models_app = typer.Typer(help="The model catalogue: list, info, verify, fetch.", no_args_is_help=True)
app.add_typer(people_app, name="people")
app.add_typer(models_app, name="models")

class _Console(Console):
    """A console whose output survives pipes and logs: a message never wraps mid-word (URLs and ids stay whole,
    ``soft_wrap``), and where the stream is not a terminal, tables take their natural width instead of rich's
    80 columns (``keys list`` printed cut key ids that ``keys revoke`` needs whole)."""

    @property
    def size(self) -> ConsoleDimensions:
        if self.is_terminal or self._width is not None or self._environ.get("COLUMNS"):
            return super().size
        return ConsoleDimensions(PIPE_WIDTH, super().size.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size


PIPE_WIDTH = 10_000
out = _Console(soft_wrap=True)
err = _Console(stderr=True, soft_wrap=True)
log = logging.getLogger("facewise")

# Exit codes, read from the error table (facewise/errors.py); 10 is an answer, not an error.
EXIT_ERROR, EXIT_USAGE, EXIT_INPUT = FacewiseError.exit_code, ValidationError.exit_code, ImageError.exit_code
EXIT_MODEL, EXIT_NOT_FOUND, EXIT_DIFFERENT = ModelNotFoundError.exit_code, NotFoundError.exit_code, 10

DbOpt = Annotated[Path, typer.Option("--db", metavar="PATH", help="Gallery file (SQLite).", envvar="FACEWISE_DB")]
# Commands that open the gallery through open_store take any store: a str, so URLs are not mangled into paths.
GalleryOpt = Annotated[str, typer.Option(
    "--db", metavar="PATH|URL", help="Gallery: a SQLite file, postgresql://… (pgvector) or milvus://host:port?meta=side.db",
    envvar="FACEWISE_DB")]
ProfileOpt = Annotated[str, typer.Option(
    "--profile", "-p", metavar="NAME|FILE", help="default | fast | balanced | accurate | a profile .json",
    envvar="FACEWISE_PROFILE")]
# Commands on a collection: without --profile they use the collection's own (default for a new one).
CollProfileOpt = Annotated[str | None, typer.Option(
    "--profile", "-p", metavar="NAME|FILE",
    help="default | fast | balanced | accurate | a profile .json; default: the collection's own "
    "profile (default for a new collection)", envvar="FACEWISE_PROFILE", show_default=False)]
CollOpt = Annotated[str, typer.Option("--collection", "-c", metavar="NAME", help="Collection inside the gallery.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="JSON Lines on stdout: one object per line; on failure "
                                                      "{\"error\": {\"code\", \"message\"}}.")]
FaceOpt = Annotated[str, typer.Option("--face", metavar="only|largest|N",
                                      help="Which face when a photo has several: only (refuse several), largest, "
                                           "or its index N (0 = first, as `detect` lists them).")]
DEFAULT_DB = Path("facewise.db")
DEFAULT_GALLERY = "facewise.db"


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            v = version("facewise")
        except PackageNotFoundError:  # run from a source tree
            v = "unknown (not installed)"
        out.print(f"facewise {v}", highlight=False)
        raise typer.Exit()


@app.callback()
def main(verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="-v info, -vv debug")] = 0,
         version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                               help="Print the version and exit.")] = False) -> None:
    # Galleries (and their -wal/-shm), exports, key files, thumbnails, video outputs hold biometric data or
    # secrets: whatever the CLI (and `facewise serve`) creates is owner-only unless FACEWISE_UMASK says otherwise.
    os.umask(settings.umask())
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    for stream in (sys.stdout, sys.stderr):  # a non-UTF-8 file name is printed escaped, never a crash
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    logging.basicConfig(level=level, format="%(message)s", handlers=[RichHandler(console=err, show_path=False)])


def error_object(exc: FacewiseError) -> dict[str, Any]:
    """The JSON error object: ``{"code", "message"}`` from the error table (the REST answer's ``error``), with
    ``"details"`` (what was refused, its value, the valid range) when the error carries them."""
    return {"code": exc.code, "message": cli_message(exc), **({"details": exc.details} if exc.details else {})}


def cli_message(exc: FacewiseError) -> str:
    """The library's message, with the CLI's hint (which option to change) when there is one."""
    hint = cli_hint(exc)
    return f"{exc} (hint: {hint})" if hint else str(exc)


# the library names what it refused in its own terms; the CLI says which option to change
_OPTION = {"face": "--face", "profile": "--profile", "db": "--db", "target_far": "--far",
           "target_fpir": "--fpir", "threshold": "--score"}


def cli_hint(exc: FacewiseError) -> str | None:
    """How to fix ``exc`` on the command line, from its structured fields (``None``: nothing to add)."""
    what = getattr(exc, "what", None)
    if exc.code == "invalid_setting":
        return "set a valid one with `facewise threshold --fpir P`, `--far F` or `--score S`"
    if exc.code == "multiple_faces" or any(getattr(r, "code", None) == "multiple_faces"
                                           for r in getattr(exc, "results", [])):
        return "say which face with --face largest or --face N (verify's second photo: --other-face)"
    if what == "force":
        return "add --force to merge anyway"
    if what == "db" and exc.code == "not_found":
        return "give --db an existing gallery"
    if what in _OPTION and exc.valid:
        return f"{_OPTION[what]}: {exc.valid}"
    return None


def report_error(exc: FacewiseError, as_json: bool, **where: Any) -> None:
    """One failure: a line on stderr and, with ``--json``, ``{..where, "error": {"code", "message"}}`` on stdout."""
    err.print(f"[red]error:[/red] {escape(cli_message(exc))}")
    if as_json:
        _emit_json({**where, "error": error_object(exc)})


@contextmanager
def handled(as_json: bool = False) -> Iterator[None]:
    """Turn facewise errors into one clear line on stderr (and, with ``--json``, an error object on stdout) and
    the exit code their class carries."""
    try:
        yield
    except FacewiseError as exc:
        report_error(exc, as_json)
        raise typer.Exit(exc.exit_code) from None


def progress_bar() -> Progress:
    return Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=err, transient=True, disable=not err.is_terminal)


def _fw(db: str | Path | None, profile: str | None, collection: str, *, create: bool = False) -> FaceWise:
    """The facade on a collection. ``create=False`` (commands that read or manage) opens only what exists: a
    missing gallery file or collection is exit 5 and nothing is created."""
    from facewise.api import FaceWise

    return FaceWise(db=db, profile=profile, collection=collection, create=create)


def _emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")


def _images_in(paths: list[Path]) -> list[Path]:
    from facewise.core.imageio import is_image_path

    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.is_file() and is_image_path(f))
        else:
            files.append(p)
    return files


def _face_choice(face: str, option: str = "--face") -> FaceChoice:
    """``--face``: only | largest | N (the library's rule); anything else is a usage error (exit 2)."""
    from facewise.core.engine import parse_face_choice

    return parse_face_choice(face, option)


def person_ref(text: str) -> str | int:
    """A person reference on the command line: ``#6`` or ``id:6`` is the id 6, an all-digit ``6`` is the id too
    (names may not be all digits), anything else is a name."""
    m = re.fullmatch(r"(?:#|id:)?(\d+)", text.strip())
    return int(m.group(1)) if m else text


def find_person(fw: FaceWise, text: str) -> Person:
    """The person ``text`` refers to (:func:`person_ref`); a legacy all-digit *name* is still found by name."""
    ref = person_ref(text)
    try:
        person = fw.person(ref)
    except NotFoundError:
        if isinstance(ref, int) and text.strip().isdigit():
            try:
                return fw.person(text)
            except NotFoundError:
                pass
        raise NotFoundError(f"person {text!r} not found in collection {fw.collection!r} (give a name, or an id "
                            "from `facewise people list` as 6, #6 or id:6)") from None
    return person


def choice(value: str, option: str, allowed: tuple[str, ...]) -> str:
    """A value parsed by hand: one of ``allowed``, else a usage error (exit 2) naming the option."""
    if value not in allowed:
        raise ValidationError(f"{option} must be one of {', '.join(allowed)} (got {value!r})")
    return value


def existing_store(db: str) -> Store:
    """Open a gallery that must exist: a missing SQLite file is exit 5 and nothing is created."""
    from facewise.gallery.open import is_server_address, open_store

    if not is_server_address(db) and db != ":memory:" and not Path(db).is_file():
        raise NotFoundError(f"{db}: no such gallery file (nothing was created; give --db an existing gallery)")
    return open_store(db)


# -- plain help: PATH, TEXT, INTEGER instead of Typer's <path>, <str>, <int>; nothing for flags ----------------
_PLAIN = {"path": "PATH", "int": "INTEGER", "float": "FLOAT", "bool": ""}


def _plain_type(param: Any, original: Any) -> Any:
    def display_type_rich(ctx: Any) -> str | None:
        if param.metavar is not None:
            return None if getattr(param, "param_type_name", "") == "argument" else param.metavar
        text = original(ctx)
        if text is None or getattr(param, "is_flag", False) or getattr(param, "count", False):
            return None
        name = (param.name or "value").upper()
        text = text.replace("list[", "").replace("]", "")
        return re.sub(r"<(\w+)>", lambda m: _PLAIN.get(m.group(1).lower(), name), text) or None
    return display_type_rich


def _plain_usage(param: Any) -> Any:
    def usage() -> str:
        name = (param.metavar or param.name or "arg").upper()
        name = name if param.required else f"[{name}]"
        return name + ("..." if param.nargs != 1 else "")
    return usage


def _plain(params: list[Any]) -> list[Any]:
    for p in params:
        if not getattr(p, "facewise_plain", False) and hasattr(p, "display_type_rich"):
            p.display_type_rich = _plain_type(p, p.display_type_rich)
            if p.param_type_name == "argument":
                p._usage_display_name = _plain_usage(p)
            p.facewise_plain = True
    return params


class PlainCommand(typer.core.TyperCommand):
    """A Typer command whose help shows plain metavars (see :func:`plain_help`)."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _plain(super().get_params(ctx))


class PlainGroup(typer.core.TyperGroup):
    """A Typer group (``facewise``, ``facewise people`` …) whose own options have plain metavars."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _plain(super().get_params(ctx))


def plain_help(*apps: typer.Typer) -> None:
    """Give every command registered so far on ``apps``, and the groups themselves, the plain-metavar help."""
    for a in apps:
        a.info.cls = PlainGroup
        for cmd in a.registered_commands:
            cmd.cls = PlainCommand
        for group in a.registered_groups:
            if group.typer_instance is not None:
                group.typer_instance.info.cls = PlainGroup
