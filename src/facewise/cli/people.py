"""Commands: `facewise people ...`.

A person is referred to by name, or by id as ``6``, ``#6`` or ``id:6`` (the ids of ``people list``)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from facewise.cli.common import (
    DEFAULT_GALLERY,
    CollOpt,
    CollProfileOpt,
    GalleryOpt,
    JsonOpt,
    _emit_json,
    _fw,
    find_person,
    handled,
    out,
    people_app,
)

PersonArg = Annotated[str, typer.Argument(metavar="PERSON", help="Name, or id as 6, #6 or id:6.")]


# -- people -------------------------------------------------------------------------------------
@people_app.command("list")
def people_list(db: GalleryOpt = DEFAULT_GALLERY, profile: CollProfileOpt = None, collection: CollOpt = "default",
                offset: Annotated[int, typer.Option(min=0, help="Skip this many people.")] = 0,
                limit: Annotated[int | None, typer.Option(min=1, help="At most this many people.")] = None,
                as_json: JsonOpt = False) -> None:
    """Enrolled people with their ids and sample counts (--json: one object per person, one per line)."""
    with handled(as_json):
        fw = _fw(db, profile, collection)
        persons = fw.persons(offset, limit)
        fw.close()
        if as_json:
            for p in persons:
                _emit_json(p.to_dict())
            return
        t = Table("id", "name", "samples", "created")
        for p in persons:
            t.add_row(str(p.id), p.name, str(p.n_samples), p.created_at)
        out.print(t, markup=False)  # names and reasons are data, not markup


@people_app.command("show")
def people_show(person: PersonArg, db: GalleryOpt = DEFAULT_GALLERY, profile: CollProfileOpt = None,
                collection: CollOpt = "default", as_json: JsonOpt = False) -> None:
    """One person and their samples."""
    with handled(as_json):
        fw = _fw(db, profile, collection)
        p = find_person(fw, person)
        samples = fw.samples(p.id)
        fw.close()
        if as_json:
            _emit_json({**p.to_dict(), "sample_list": [s.to_dict() for s in samples]})
            return
        out.print(f"[bold]{escape(p.name)}[/bold] (id {p.id}), {p.n_samples} samples")
        t = Table("sample", "source", "quality", "yaw", "added")
        for s in samples:
            t.add_row(str(s.id), s.source, f"{s.quality:.2f}", f"{s.yaw:+.0f}", s.created_at)
        out.print(t, markup=False)  # names and reasons are data, not markup


@people_app.command("rename")
def people_rename(person: PersonArg, new_name: Annotated[str, typer.Argument(metavar="NEW_NAME")],
                  db: GalleryOpt = DEFAULT_GALLERY, profile: CollProfileOpt = None,
                  collection: CollOpt = "default", as_json: JsonOpt = False) -> None:
    """Give a person another name."""
    with handled(as_json):
        fw = _fw(db, profile, collection)
        p = fw.rename_person(find_person(fw, person).id, new_name)
        fw.close()
        if as_json:
            _emit_json(p.to_dict())
        else:
            out.print(f"renamed to {p.name} (id {p.id})", markup=False)


@people_app.command("delete")
def people_delete(person: PersonArg, db: GalleryOpt = DEFAULT_GALLERY, profile: CollProfileOpt = None,
                  collection: CollOpt = "default", as_json: JsonOpt = False) -> None:
    """Delete a person with all samples and templates."""
    with handled(as_json):
        fw = _fw(db, profile, collection)
        p = find_person(fw, person)
        n = fw.delete_person(p.id)
        fw.close()
        if as_json:
            _emit_json({"deleted": p.name, "id": p.id, "samples": n})
        else:
            out.print(f"deleted {p.name} (id {p.id}) and {n} samples", markup=False)


@people_app.command("delete-sample")
def people_delete_sample(sample_id: Annotated[int, typer.Argument(metavar="SAMPLE_ID", min=1)],
                         db: GalleryOpt = DEFAULT_GALLERY, profile: CollProfileOpt = None,
                         collection: CollOpt = "default", as_json: JsonOpt = False) -> None:
    """Delete one sample (its id is in `facewise people show PERSON`)."""
    with handled(as_json):
        fw = _fw(db, profile, collection)
        fw.delete_sample(sample_id)
        fw.close()
        if as_json:
            _emit_json({"deleted_sample": sample_id})
        else:
            out.print(f"deleted sample {sample_id}")
