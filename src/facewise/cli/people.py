"""Commands: `facewise people ...`."""

from __future__ import annotations

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
    handled,
    out,
    people_app,
)


# -- people -------------------------------------------------------------------------------------
@people_app.command("list")
def people_list(db: GalleryOpt = DEFAULT_GALLERY, profile: CollProfileOpt = None, collection: CollOpt = "default",
                offset: int = 0, limit: int | None = None, as_json: JsonOpt = False) -> None:
    """Enrolled people with their sample counts."""
    with handled():
        fw = _fw(db, profile, collection)
        persons = fw.persons(offset, limit)
        if as_json:
            _emit_json([p.to_dict() for p in persons])
            return
        t = Table("id", "name", "samples", "created")
        for p in persons:
            t.add_row(str(p.id), p.name, str(p.n_samples), p.created_at)
        out.print(t, markup=False)  # names and reasons are data, not markup


@people_app.command("show")
def people_show(person: str, db: GalleryOpt = DEFAULT_GALLERY, profile: CollProfileOpt = None,
                collection: CollOpt = "default", as_json: JsonOpt = False) -> None:
    """One person and their samples."""
    with handled():
        fw = _fw(db, profile, collection)
        p = fw.person(person)
        samples = fw.samples(p.id)
        if as_json:
            _emit_json({**p.to_dict(), "sample_list": [s.to_dict() for s in samples]})
            return
        out.print(f"[bold]{escape(p.name)}[/bold] (id {p.id}), {p.n_samples} samples")
        t = Table("sample", "source", "quality", "yaw", "added")
        for s in samples:
            t.add_row(str(s.id), s.source, f"{s.quality:.2f}", f"{s.yaw:+.0f}", s.created_at)
        out.print(t, markup=False)  # names and reasons are data, not markup


@people_app.command("rename")
def people_rename(person: str, new_name: str, db: GalleryOpt = DEFAULT_GALLERY, profile: CollProfileOpt = None,
                  collection: CollOpt = "default") -> None:
    with handled():
        p = _fw(db, profile, collection).rename_person(person, new_name)
        out.print(f"renamed to {p.name}", markup=False)


@people_app.command("delete")
def people_delete(person: str, db: GalleryOpt = DEFAULT_GALLERY, profile: CollProfileOpt = None,
                  collection: CollOpt = "default") -> None:
    """Delete a person with all samples and templates."""
    with handled():
        n = _fw(db, profile, collection).delete_person(person)
        out.print(f"deleted {person} and {n} samples", markup=False)


@people_app.command("delete-sample")
def people_delete_sample(sample_id: int, db: GalleryOpt = DEFAULT_GALLERY, profile: CollProfileOpt = None,
                         collection: CollOpt = "default") -> None:
    with handled():
        _fw(db, profile, collection).delete_sample(sample_id)
        out.print(f"deleted sample {sample_id}")
