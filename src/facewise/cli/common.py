"""What every command shares: the Typer apps, consoles, options, and the error → exit-code table."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from facewise.errors import (
    FacewiseError,
    ImageError,
    ModelNotFoundError,
    MultipleFacesError,
    NoFaceError,
    NotFoundError,
    ProfileMismatchError,
)

app = typer.Typer(help="facewise: face detection, recognition and verification with calibrated thresholds.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
people_app = typer.Typer(help="List, show, rename and delete enrolled people and samples.", no_args_is_help=True)
models_app = typer.Typer(help="The model catalogue: list, info, verify, fetch.", no_args_is_help=True)
app.add_typer(people_app, name="people")
app.add_typer(models_app, name="models")

out = Console()
err = Console(stderr=True)
log = logging.getLogger("facewise")

# exit codes
EXIT_ERROR, EXIT_INPUT, EXIT_MODEL, EXIT_NOT_FOUND, EXIT_DIFFERENT = 1, 3, 4, 5, 10

DbOpt = Annotated[Path, typer.Option("--db", help="Gallery file (SQLite).", envvar="FACEWISE_DB")]
# Commands that open the gallery through open_store take any store: a str, so URLs are not mangled into paths.
GalleryOpt = Annotated[str, typer.Option(
    "--db", help="Gallery: a SQLite file, postgresql://… (pgvector) or milvus://host:port?meta=side.db",
    envvar="FACEWISE_DB")]
ProfileOpt = Annotated[str, typer.Option(
    "--profile", "-p", help="default | fast | balanced | accurate | a profile .json", envvar="FACEWISE_PROFILE")]
CollOpt = Annotated[str, typer.Option("--collection", "-c", help="Collection inside the gallery.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
DEFAULT_DB = Path("facewise.db")
DEFAULT_GALLERY = "facewise.db"


@app.callback()
def main(verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="-v info, -vv debug")] = 0) -> None:
    # Galleries (and their -wal/-shm), exports, key files, thumbnails, video outputs hold biometric data or
    # secrets: whatever the CLI (and `facewise serve`) creates is owner-only unless FACEWISE_UMASK says otherwise.
    try:
        os.umask(int(os.environ.get("FACEWISE_UMASK", "077"), 8) & 0o777)
    except ValueError:
        os.umask(0o077)
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    for stream in (sys.stdout, sys.stderr):  # a non-UTF-8 file name is printed escaped, never a crash
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    logging.basicConfig(level=level, format="%(message)s", handlers=[RichHandler(console=err, show_path=False)])


@contextmanager
def handled() -> Iterator[None]:
    """Turn facewise errors into one clear line on stderr and a meaningful exit code."""
    try:
        yield
    except (ImageError, NoFaceError, MultipleFacesError) as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(EXIT_INPUT) from None
    except ModelNotFoundError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(EXIT_MODEL) from None
    except NotFoundError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(EXIT_NOT_FOUND) from None
    except (FacewiseError, ProfileMismatchError) as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(EXIT_ERROR) from None


def progress_bar() -> Progress:
    return Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=err, transient=True, disable=not err.is_terminal)


def _fw(db: str | Path | None, profile: str, collection: str) -> Any:
    from facewise.api import FaceWise

    return FaceWise(db=db, profile=profile, collection=collection)


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


def _face_choice(face: str) -> Any:
    return int(face) if face.lstrip("-").isdigit() else face
