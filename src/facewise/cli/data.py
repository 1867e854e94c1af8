"""``facewise doctor``, ``facewise encrypt keygen|status|rotate`` and ``facewise retention``: care of the data."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from facewise.cli.common import DEFAULT_DB, DbOpt, JsonOpt, _emit_json, app, err, handled, out
from facewise.errors import BadInputError, FacewiseError, NotFoundError, ValidationError

log = logging.getLogger(__name__)

EXIT_UNHEALTHY = 6

encrypt_app = typer.Typer(help="Encryption at rest of the gallery's templates: keygen, status, rotate.",
                          no_args_is_help=True)
app.add_typer(encrypt_app, name="encrypt")


def _existing(db: Path) -> Path:
    if not db.is_file():
        raise NotFoundError(f"{db}: no such gallery file")
    return db


@app.command()
def doctor(db: DbOpt = DEFAULT_DB, as_json: JsonOpt = False) -> None:
    """Check a gallery: SQLite integrity, foreign keys, vector sizes, templates, search-matrix staleness.

    Exit code 0 if healthy, 6 with the list of problems (5 if the file does not exist).
    """
    from facewise.gallery.doctor import diagnose_path

    with handled(as_json):
        path = _existing(db)
        try:
            problems = diagnose_path(path)
        except FacewiseError as exc:  # not a database at all: the worst problem a gallery can have
            problems = [str(exc)]
    if as_json:
        _emit_json({"db": str(db), "healthy": not problems, "problems": problems})
    elif problems:
        err.print(f"[red]{db}: {len(problems)} problem(s)[/red]")
        for p in problems:
            err.print(f"  - {p}", markup=False, highlight=False)
    else:
        out.print(f"{db}: healthy")
    if problems:
        raise typer.Exit(EXIT_UNHEALTHY)


# -- encryption ---------------------------------------------------------------------------------------------
KeyFileOpt = Annotated[Path | None, typer.Option(help="Key file (base64 of 32 random bytes).")]


@encrypt_app.command("keygen")
def encrypt_keygen(path: Annotated[Path, typer.Argument(help="Where to write the new key (mode 0600).")]) -> None:
    """Write a new random key file; point FACEWISE_KEY_FILE at it (never overwrites a file)."""
    from facewise.gallery.crypto import generate_key_file

    with handled():
        kid = generate_key_file(path)
    out.print(f"wrote key {kid} to {path}; keep a copy somewhere safe: a lost key is a lost gallery")


@encrypt_app.command("status")
def encrypt_status(db: DbOpt = DEFAULT_DB, as_json: JsonOpt = False) -> None:
    """Is the gallery encrypted, with which key id, and does the configured key match?"""
    import sqlite3

    from facewise.gallery.crypto import cipher_from_env, gallery_marker

    with handled(as_json):
        conn = sqlite3.connect(f"file:{_existing(db)}?mode=ro", uri=True)
        try:
            marker = gallery_marker(conn)
        except sqlite3.DatabaseError as exc:
            raise BadInputError(f"{db}: not a usable facewise gallery ({exc})") from None
        finally:
            conn.close()
        cipher = cipher_from_env()
    doc = {"db": str(db), "encrypted": marker is not None, "key_id": marker.split(":")[-1] if marker else None,
           "configured_key_id": cipher.key_id if cipher else None,
           "key_matches": bool(marker and cipher and cipher.marker == marker)}
    if as_json:
        _emit_json(doc)
        return
    if marker is None:
        out.print(f"{db}: not encrypted" + (" (a key is configured: encrypt with `facewise encrypt rotate`)"
                                             if cipher else ""))
    else:
        state = "matches" if doc["key_matches"] else "is NOT configured" if cipher is None else "does NOT match"
        out.print(f"{db}: encrypted ({marker}); the configured key {state}")


@encrypt_app.command("rotate")
def encrypt_rotate(
    db: DbOpt = DEFAULT_DB,
    new_key_file: Annotated[Path | None, typer.Option(help="Re-encrypt under this key (a plaintext gallery gets "
                                                           "encrypted).")] = None,
    old_key_file: KeyFileOpt = None,
    decrypt: Annotated[bool, typer.Option("--decrypt", help="Store the vectors in plaintext again.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Re-encrypt every vector (and sealed thumbnail) in one transaction, then vacuum the file.

    The current key comes from --old-key-file, else FACEWISE_KEY / FACEWISE_KEY_FILE. Stop servers using the
    gallery first; afterwards point FACEWISE_KEY_FILE at the new key.
    """
    from facewise.gallery.crypto import BlobCipher, cipher_from_env, read_key_file, rotate_gallery

    with handled(as_json):
        if (new_key_file is None) == (not decrypt):
            raise ValidationError("give --new-key-file FILE, or --decrypt")
        old = BlobCipher(read_key_file(old_key_file)) if old_key_file else cipher_from_env()
        new = BlobCipher(read_key_file(new_key_file)) if new_key_file else None
        report = rotate_gallery(_existing(db), old, new)
    if as_json:
        _emit_json(report.to_dict())
        return
    out.print(f"{db}: {report.samples} samples, {report.templates} templates, {report.thumbnails} thumbnails "
              f"re-written: {report.old} -> {report.new}")
    if new is not None:
        out.print(f"now use the new key: export FACEWISE_KEY_FILE={new_key_file}")


# -- retention ------------------------------------------------------------------------------------------------
@app.command()
def retention(
    db: DbOpt = DEFAULT_DB,
    collection: Annotated[list[str] | None, typer.Option("--collection", "-c",
                                                         help="Collection(s); default: all.")] = None,
    days: Annotated[float | None, typer.Option(
        min=0.0, help="Set the retention of unknown-face records (days), then apply it.")] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Remove the retention setting.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be erased; erase nothing.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Erase unknown-face records (persons with metadata kind "unknown" or "cluster") older than the collection's
    retention. Run it daily (cron); named people are never expired."""
    from facewise.gallery import SQLiteStore
    from facewise.gallery.maintenance import apply_retention, set_retention

    with handled(as_json):
        if clear and days is not None:
            raise ValidationError("give --days N or --clear, not both")
        with SQLiteStore(_existing(db)) as store:
            names = collection or [c.name for c in store.list_collections()]
            reports = []
            for name in names:
                store.get_collection(name)  # NotFoundError for a wrong name
                if days is not None or clear:
                    set_retention(store, name, None if clear else days)
                report = apply_retention(store, name, dry_run=dry_run)
                if report is not None:
                    reports.append(report)
    if as_json:
        _emit_json({"dry_run": dry_run, "collections": [r.to_dict() for r in reports]})
        return
    if not reports:
        out.print("no collection has a retention setting (set one with --days N)")
        return
    t = Table("collection", "days", "cutoff", "samples erased", "persons erased")
    for r in reports:
        t.add_row(r.collection, f"{r.days:g}", r.cutoff, str(r.samples_erased), str(len(r.persons_erased)))
    out.print(t)
    if dry_run:
        out.print("dry run: nothing was erased")
