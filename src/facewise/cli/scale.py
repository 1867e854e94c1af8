"""``facewise index``, ``facewise cluster`` and ``facewise people merge|split``: galleries at scale."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

from facewise.cli.common import (
    EXIT_INPUT,
    CollOpt,
    JsonOpt,
    ProfileOpt,
    app,
    choice,
    err,
    existing_store,
    handled,
    out,
    people_app,
    person_ref,
    progress_bar,
)
from facewise.errors import ValidationError

if TYPE_CHECKING:
    from facewise.batch.indexing import Layout
    from facewise.gallery.store import Store

StoreOpt = Annotated[str, typer.Option(
    "--db", metavar="PATH|URL",
    help="Gallery: a SQLite file, postgresql://… (pgvector) or milvus://host:port?meta=side.db",
    envvar="FACEWISE_DB")]
UnknownOpt = Annotated[str, typer.Option("--collection", "-c", metavar="NAME",
                                         help="Collection of the unknown faces to cluster.")]
PersonArg = "Person or cluster: a name, or an id as 6, #6 or id:6."
ThresholdOpt = Annotated[float | None, typer.Option(
    "--threshold", min=-1.0, max=1.0,
    help="Average-linkage score to join a cluster (default: the score at FAR 2e-3 of the collection's profile).")]


def _open(db: str) -> Store:
    from facewise.gallery.open import open_store

    return open_store(db)


def _emit(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")


@app.command("index")
def index_cmd(
    photos: Annotated[Path, typer.Argument(help="Photo tree: <person>/*.jpg folders and/or loose photos.")],
    db: StoreOpt = "facewise.db", profile: ProfileOpt = "default", collection: CollOpt = "default",
    unknown: Annotated[str, typer.Option(help="Collection for faces of loose photos (to cluster).")] = "unknown",
    layout: Annotated[str, typer.Option(help="auto | people | photos (every face unknown)")] = "auto",
    ray: Annotated[str | None, typer.Option("--ray", help="Ray cluster address, or 'local'.")] = None,
    workers: Annotated[int, typer.Option(min=0, help="Worker processes / Ray actors (0: one per CPU).")] = 0,
    batch_size: Annotated[int, typer.Option(min=1, help="Samples per store transaction.")] = 256,
    min_quality: Annotated[float | None, typer.Option(min=0.0, max=1.0, help="Skip faces below this quality.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Enrol/index a large photo tree on local processes or Ray; re-runs skip photos already stored."""
    from facewise.batch.indexing import IndexOptions, index_tree

    with handled(as_json):
        choice(layout, "--layout", ("auto", "people", "photos"))
        opts = IndexOptions(profile=profile, collection=collection, unknown_collection=unknown,
                            layout=cast("Layout", layout), workers=workers, ray_address=ray, batch_size=batch_size,
                            min_quality=min_quality)
        store = _open(db)
        try:
            with progress_bar() as bar:
                task = bar.add_task("indexing", total=None)
                rep = index_tree(store, photos, opts, lambda done, total: bar.update(task, completed=done,
                                                                                     total=total))
        finally:
            store.close()
        if as_json:
            _emit(rep.to_dict())
        else:
            out.print(f"{rep.photos} photos: {rep.processed} processed, {rep.skipped} already stored, "
                      f"{rep.faces_added} faces added, {rep.no_face} without a face, {rep.errors} errors "
                      f"({rep.images_per_s:.1f} images/s on {rep.workers} {rep.engine} workers)")
            for line in rep.error_samples:
                err.print(f"[yellow]skipped[/yellow] {line}")
        if rep.processed and rep.errors == rep.processed:
            raise typer.Exit(EXIT_INPUT)


@app.command("cluster")
def cluster_cmd(
    db: StoreOpt = "facewise.db", collection: UnknownOpt = "unknown", threshold: ThresholdOpt = None,
    full: Annotated[bool, typer.Option("--full", help="Re-cluster every unnamed face from scratch too.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Group unknown faces into people: new faces join a cluster or start one (--full: re-cluster)."""
    from facewise.batch.cluster import Clusterer

    with handled(as_json):
        store = existing_store(db)
        try:
            store.get_collection(collection)  # a mistyped -c is exit 5, not an empty clustering
            c = Clusterer(store, collection, threshold)
            rep = c.assign()
            if full:
                again = c.recluster()
                rep.moved += again.moved
                rep.clusters, rep.named = again.clusters, again.named
        finally:
            store.close()
        if as_json:
            _emit(rep.to_dict())
        else:
            out.print(f"{rep.faces} new faces: {rep.assigned} joined a cluster, {rep.new_clusters} new clusters; "
                      f"{rep.clusters} clusters, {rep.named} named people in {collection!r}")


@people_app.command("merge")
def people_merge(
    source: Annotated[str, typer.Argument(metavar="SOURCE", help=PersonArg + " It disappears.")],
    target: Annotated[str, typer.Argument(metavar="TARGET", help=PersonArg + " It receives the faces.")],
    db: StoreOpt = "facewise.db", collection: CollOpt = "default",
    force: Annotated[bool, typer.Option(help="Merge even when both appear in one photo.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Merge two people/clusters (refused when they appear in the same photo, unless --force)."""
    from facewise.batch.cluster import Clusterer

    with handled(as_json):
        store = existing_store(db)
        try:
            store.get_collection(collection)
            p = Clusterer(store, collection).merge(person_ref(source), person_ref(target), force)
        finally:
            store.close()
        if as_json:
            _emit({"merged": source, **p.to_dict()})
        else:
            out.print(f"merged {source} into {p.name} ({p.n_samples} faces)", markup=False)


@people_app.command("split")
def people_split(
    person: Annotated[str, typer.Argument(metavar="PERSON", help=PersonArg)],
    samples: Annotated[str | None, typer.Option(metavar="ID,ID,...",
                                                help="Comma-separated sample ids to move out.")] = None,
    name: Annotated[str | None, typer.Option(help="Name for the moved faces (default: a new cluster).")] = None,
    db: StoreOpt = "facewise.db", collection: CollOpt = "default", threshold: ThresholdOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Move some faces out of a person/cluster, or (no --samples) split it by stricter re-clustering."""
    from facewise.batch.cluster import Clusterer

    with handled(as_json):
        ids = _sample_ids(samples) if samples else None
        store = existing_store(db)
        try:
            store.get_collection(collection)
            c = Clusterer(store, collection, threshold)
            made = c.split(person_ref(person), ids, name)
        finally:
            store.close()
        if as_json:
            for p in made:
                _emit(p.to_dict())
            return
        if not made:
            out.print(f"{person}: nothing to split")
        for p in made:
            out.print(f"{p.name}: {p.n_samples} faces")


def _sample_ids(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValidationError(f"--samples must be comma-separated sample ids such as 3,7,12 (got {text!r})") from None
