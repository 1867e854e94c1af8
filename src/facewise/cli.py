"""The ``facewise`` command line (Typer)."""

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
from rich.table import Table

from .errors import (
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
    from .api import FaceWise

    return FaceWise(db=db, profile=profile, collection=collection)


def _emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")


def _images_in(paths: list[Path]) -> list[Path]:
    from .imageio import is_image_path

    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.is_file() and is_image_path(f))
        else:
            files.append(p)
    return files


def _face_choice(face: str) -> Any:
    return int(face) if face.lstrip("-").isdigit() else face


# -- enrol / identify / verify / detect ---------------------------------------------------------
@app.command()
def enroll(
    sources: Annotated[list[Path] | None, typer.Argument(
        help="Images of one person (--name) or <folder>/<person>/*.jpg")] = None,
    name: Annotated[str | None, typer.Option("--name", "-n", help="Person to enrol the images as.")] = None,
    from_track: Annotated[list[str] | None, typer.Option(
        "--from-track", help="TIMELINE_JSON:TRACK_ID from `facewise video`: enrol that track's best frame.")] = None,
    face: Annotated[str, typer.Option(help="Which face when a photo has several: only | largest | N")] = "only",
    min_quality: Annotated[float | None, typer.Option(help="Refuse faces below this quality (0..1).")] = None,
    require_live: Annotated[bool, typer.Option(help="Refuse faces the anti-spoofing model finds not live.")] = False,
    db: GalleryOpt = DEFAULT_GALLERY, profile: ProfileOpt = "default", collection: CollOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """Enrol people: `--name NAME photo.jpg ...`, or folders laid out as <folder>/<person>/*.jpg."""
    from .analysis import Gate
    from .api import folder_items

    with handled():
        if not sources and not from_track:
            raise FacewiseError("give images, a <folder>/<person>/ layout, or --from-track TIMELINE_JSON:TRACK_ID")
        fw = _fw(db, profile, collection)
        items: list[tuple[str, Any]] = []
        if from_track:  # `facewise video` thumbnails; a neighbour's face may show at the edge: take the largest
            from .video.outputs import track_thumbnail

            if not name:
                raise FacewiseError("--from-track needs --name (who the track is)")
            items += [(name, track_thumbnail(spec)) for spec in from_track]
            face = "largest" if face == "only" else face
        for src in sources or []:
            if name:
                items += [(name, f) for f in _images_in([src])]
            elif src.is_dir():
                items += folder_items(src)
            else:
                raise FacewiseError(f"{src}: give --name for single images, or a <folder>/<person>/ layout")
        with progress_bar() as bar:
            task = bar.add_task("enrolling", total=len(items))
            results = fw.enroll_items(items, face=_face_choice(face),
                                      gate=Gate(min_quality=min_quality, require_live=require_live),
                                      progress=lambda r: bar.advance(task))
        if as_json:
            for r in results:
                _emit_json(r.to_dict())
        else:
            t = Table("file", "person", "status", "reason")
            for r in results:
                t.add_row(os.path.basename(r.source), r.person, r.status, r.reason or "")
            out.print(t, markup=False)  # names and reasons are data, not markup
        added = sum(r.status == "added" for r in results)
        err.print(f"{added} added, {sum(r.status == 'duplicate' for r in results)} duplicate, "
                  f"{sum(r.status == 'rejected' for r in results)} rejected")
        fw.close()
        if added == 0 and any(r.status == "rejected" for r in results):
            for r in results:
                if r.status == "rejected":
                    err.print(f"[red]error:[/red] {escape(r.reason or 'rejected')}")
            raise typer.Exit(EXIT_INPUT)


@app.command()
def identify(
    sources: Annotated[list[Path], typer.Argument(help="Images or folders of images.")],
    top_k: Annotated[int, typer.Option("--top-k", "-k", help="Candidates per face.")] = 1,
    annotate_dir: Annotated[Path | None, typer.Option("--annotate", help="Write annotated copies here.")] = None,
    db: GalleryOpt = DEFAULT_GALLERY, profile: ProfileOpt = "default", collection: CollOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """Name every face in the images, or say "unknown" below the collection's threshold."""
    with handled():
        fw = _fw(db, profile, collection)
        failures = _identify_files(fw, _images_in(sources), top_k, annotate_dir, as_json)
        fw.close()
        if failures:  # the readable images were still identified
            raise typer.Exit(EXIT_INPUT)


def _identify_files(fw: Any, files: list[Path], top_k: int, annotate_dir: Path | None, as_json: bool) -> int:
    from .draw import annotate
    from .imageio import load_image, save_rgb

    table = Table("file", "face box", "person", "score", "est. FAR")
    decision = fw.decision
    failures = 0
    if annotate_dir:
        annotate_dir.mkdir(parents=True, exist_ok=True)
    with progress_bar() as bar:
        task = bar.add_task("identifying", total=len(files))
        for f in files:
            try:
                img = load_image(f)
                results = fw.identify(img, top_k=top_k)
            except ImageError as exc:
                failures += 1
                err.print(f"[red]error:[/red] {escape(str(exc))}")
                if as_json:
                    _emit_json({"file": str(f), "error": str(exc)})
                bar.advance(task)
                continue
            if not results:
                table.add_row(f.name, "-", "(no face)", "", "")
            for r in results:
                if as_json:
                    _emit_json({"file": str(f), **r.to_dict()})
                far = decision.format_far(r.far)
                table.add_row(f.name, str([round(v) for v in r.face.box.as_list()]), r.person or "unknown",
                              f"{r.score:.3f}", far)
            if annotate_dir:
                save_rgb(annotate_dir / (f.stem + ".jpg"), annotate(img.pixels, results))
            bar.advance(task)
    if not as_json:
        out.print(table, markup=False)  # names and reasons are data, not markup
        d = fw.decision
        out.print(f"threshold {d.threshold:.3f} ({d.source}), profile {fw.profile.name}")
    return failures


@app.command()
def verify(
    image: Annotated[Path, typer.Argument(help="Probe image.")],
    other: Annotated[Path | None, typer.Argument(help="Second image (or use --person).")] = None,
    person: Annotated[str | None, typer.Option("--person", help="Compare with an enrolled person.")] = None,
    require_live: Annotated[bool, typer.Option(help="Answer 'different' if the probe is not live.")] = False,
    db: GalleryOpt = DEFAULT_GALLERY, profile: ProfileOpt = "default", collection: CollOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """Same person? Exit code 0 if yes, 10 if not (errors: 3 input, 4 model, 5 not found)."""
    from .analysis import Gate

    with handled():
        if (other is None) == (person is None):
            raise FacewiseError("give a second image or --person NAME")
        fw = _fw(db if person else None, profile, collection)
        gate = Gate(require_live=True) if require_live else None
        v = fw.verify_person(image, person, gate=gate) if person else fw.verify(image, other, gate=gate)
        if as_json:
            _emit_json(v.to_dict())
        else:
            far = f", est. FAR {v.far:.1e}" if v.far is not None else ""
            why = f" ({v.reason})" if v.reason else ""
            verdict = "SAME" if v.same else "DIFFERENT"
            out.print(f"{verdict}: score {v.score:.3f}, threshold {v.threshold:.3f}{far}{why}")
        fw.close()
        if not v.same:
            raise typer.Exit(EXIT_DIFFERENT)


@app.command()
def detect(
    sources: Annotated[list[Path], typer.Argument(help="Images or folders.")],
    profile: ProfileOpt = "default", as_json: JsonOpt = False,
) -> None:
    """Faces with boxes, landmarks, yaw and quality reasons."""
    from .pipeline import Pipeline

    with handled():
        pipe = Pipeline(profile)
        t = Table("file", "face", "box", "det", "yaw", "quality", "reasons")
        for f in _images_in(sources):
            try:
                img, dets = pipe.detect(f)
            except ImageError as exc:
                err.print(f"[red]error:[/red] {escape(str(exc))}")
                continue
            for face in pipe.make_faces(img.pixels, dets):
                if as_json:
                    _emit_json({"file": str(f), **face.to_dict()})
                t.add_row(f.name, str(face.index), str([round(v) for v in face.box.as_list()]),
                          f"{face.det_score:.2f}", f"{face.yaw:+.0f}", f"{face.quality.score:.2f}",
                          "; ".join(face.quality.reasons))
        if not as_json:
            out.print(t, markup=False)  # names and reasons are data, not markup


@app.command()
def analyze(
    sources: Annotated[list[Path], typer.Argument(help="Images or folders.")],
    profile: ProfileOpt = "default", as_json: JsonOpt = False,
) -> None:
    """Per face: quality with reasons, liveness, head pose and expression (where the models are available)."""
    from .api import FaceWise

    with handled():
        fw = FaceWise(profile=profile)
        t = Table("file", "face", "box", "quality", "live", "yaw/pitch/roll", "expression", "reasons")
        for f in _images_in(sources):
            try:
                faces = fw.analyze(f)
            except ImageError as exc:
                err.print(f"[red]error:[/red] {escape(str(exc))}")
                continue
            for face in faces:
                d = face.to_dict()
                if as_json:
                    _emit_json({"file": str(f), **d})
                    continue
                live, pose, expr = d.get("live"), d.get("pose"), d.get("expression")
                t.add_row(f.name, str(face.index), str([round(v) for v in face.box.as_list()]),
                          f"{face.quality.score:.2f}", f"{live['score']:.2f}" if live else "n/a",
                          f"{pose['yaw']:+.0f}/{pose['pitch']:+.0f}/{pose['roll']:+.0f}" if pose else "n/a",
                          f"{expr['label']} {expr['score']:.2f}" if expr else "n/a", "; ".join(face.quality.reasons))
        if not as_json:
            out.print(t, markup=False)  # names and reasons are data, not markup


# -- threshold, export, import --------------------------------------------------------------------
@app.command()
def threshold(
    value: Annotated[float | None, typer.Option("--score", help="Decide at this raw score.")] = None,
    far: Annotated[float | None, typer.Option("--far", help="Decide at this false-accept rate, e.g. 1e-4.")] = None,
    db: GalleryOpt = DEFAULT_GALLERY, profile: ProfileOpt = "default", collection: CollOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """Show, or set, how a collection decides (a raw score or a target FAR)."""
    with handled():
        fw = _fw(db, profile, collection)
        d = fw.set_threshold(value, far) if (value is not None or far is not None) else fw.decision
        if as_json:
            _emit_json({"threshold": d.threshold, "source": d.source})
        else:
            out.print(f"threshold {d.threshold:.4f} ({d.source})")


@app.command("export")
def export_cmd(path: Path, db: GalleryOpt = DEFAULT_GALLERY, profile: ProfileOpt = "default",
               collection: CollOpt = "default") -> None:
    """Write a collection to a JSON file (.json or .json.gz)."""
    with handled():
        fw = _fw(db, profile, collection)
        n = fw.export(path)
        out.print(f"exported {n} samples to {path}")


@app.command("import")
def import_cmd(path: Path, db: GalleryOpt = DEFAULT_GALLERY, profile: ProfileOpt = "default",
               collection: CollOpt = "default") -> None:
    """Merge an exported collection into this one (same profile)."""
    with handled():
        fw = _fw(db, profile, collection)
        n = fw.import_(path)
        out.print(f"imported {n} new samples from {path}")


# -- people -------------------------------------------------------------------------------------
@people_app.command("list")
def people_list(db: GalleryOpt = DEFAULT_GALLERY, profile: ProfileOpt = "default", collection: CollOpt = "default",
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
def people_show(person: str, db: GalleryOpt = DEFAULT_GALLERY, profile: ProfileOpt = "default",
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
def people_rename(person: str, new_name: str, db: GalleryOpt = DEFAULT_GALLERY, profile: ProfileOpt = "default",
                  collection: CollOpt = "default") -> None:
    with handled():
        p = _fw(db, profile, collection).rename_person(person, new_name)
        out.print(f"renamed to {p.name}", markup=False)


@people_app.command("delete")
def people_delete(person: str, db: GalleryOpt = DEFAULT_GALLERY, profile: ProfileOpt = "default",
                  collection: CollOpt = "default") -> None:
    """Delete a person with all samples and templates."""
    with handled():
        n = _fw(db, profile, collection).delete_person(person)
        out.print(f"deleted {person} and {n} samples", markup=False)


@people_app.command("delete-sample")
def people_delete_sample(sample_id: int, db: GalleryOpt = DEFAULT_GALLERY, profile: ProfileOpt = "default",
                         collection: CollOpt = "default") -> None:
    with handled():
        _fw(db, profile, collection).delete_sample(sample_id)
        out.print(f"deleted sample {sample_id}")


# -- models -------------------------------------------------------------------------------------
@models_app.command("list")
def models_list(as_json: JsonOpt = False) -> None:
    """Every model card, where its files are found, and which profiles are usable."""
    from .models.catalogue import cards, is_available, search_path
    from .profiles import load_profile, profile_names

    rows = [(c, is_available(c.id)) for c in cards().values()]
    profiles = [load_profile(n) for n in profile_names()]
    if as_json:
        _emit_json({"search_path": [str(p) for p in search_path()],
                    "models": [{**c.summary(), "available": ok} for c, ok in rows],
                    "profiles": [{"name": p.name, "available": p.available(), "models": p.models,
                                  "commercial_use": p.commercial_use} for p in profiles]})
        return
    t = Table("id", "task", "licence", "available")
    for c, ok in rows:
        t.add_row(c.id, c.task, c.licence, "[green]yes[/green]" if ok else "[red]no[/red]")
    out.print(t)
    t = Table("profile", "models", "available", "commercial use")
    for p in profiles:
        t.add_row(p.name, ", ".join(p.models), "yes" if p.available() else "no", "yes" if p.commercial_use else "no")
    out.print(t)
    out.print("search path: " + os.pathsep.join(str(p) for p in search_path()))


@models_app.command("info")
def models_info(model_id: str) -> None:
    """A model's card."""
    from .models.catalogue import card, locate_file

    with handled():
        c = card(model_id)
        d = c.summary()
        for f in d["files"]:
            found = locate_file(next(x for x in c.files if x.path == f["path"]))
            f["found"] = str(found) if found else None
        _emit_json(d)


@models_app.command("verify")
def models_verify(model_ids: Annotated[list[str] | None, typer.Argument()] = None) -> None:
    """Check model files against their sha256 (all available models by default)."""
    from .models.catalogue import cards, is_available, verify

    ids = model_ids or [c for c in cards() if is_available(c)]
    bad = 0
    for mid in ids:
        with handled():
            for st in verify(mid):
                bad += not st.ok
                out.print(f"{mid}: {st.path}: {'[green]ok[/green]' if st.ok else '[red]' + st.reason + '[/red]'}")
    if bad:
        raise typer.Exit(EXIT_MODEL)


@models_app.command("fetch")
def models_fetch(model_id: str, timeout: float = 30.0) -> None:
    """Download a model's files (URL + sha256 from its card) into the per-user cache."""
    from .models.catalogue import fetch

    with handled():
        for p in fetch(model_id, timeout=timeout):
            out.print(f"{model_id}: {p}")


# -- demo ---------------------------------------------------------------------------------------
@app.command()
def demo(
    train: Annotated[Path, typer.Option(help="Folder of <person>/*.jpg to enrol.")],
    test: Annotated[Path, typer.Option(help="Images (or a folder) to identify.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Where annotated images and demo.db go.")] = Path("demo-out"),
    profile: ProfileOpt = "default",
) -> None:
    """Enrol a folder of people, identify every face in the test images, write annotated copies."""
    from .api import FaceWise

    with handled():
        out_dir.mkdir(parents=True, exist_ok=True)
        db = out_dir / "demo.db"
        for suffix in ("", "-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)
        fw = FaceWise(db=db, profile=profile)
        with progress_bar() as bar:
            items = sum(1 for d in train.iterdir() if d.is_dir() for _ in d.iterdir())
            task = bar.add_task("enrolling", total=items)
            results = fw.enroll_folder(train, face="largest", progress=lambda r: bar.advance(task))
        added = [r for r in results if r.status == "added"]
        out.print(f"enrolled {len(added)} photos of {len({r.person for r in added})} people from {train} "
                  f"(profile {fw.profile.name})")
        for r in results:
            if r.status != "added":
                out.print(f"  skipped {r.source}: {r.reason}", markup=False)
        _identify_files(fw, _images_in([test]), 1, out_dir / "annotated", False)
        out.print(f"annotated images in {out_dir / 'annotated'}; gallery {db}")
        fw.close()


def _register_subcommands() -> None:
    from . import (
        cli_data,  # noqa: F401  (registers `facewise doctor`, `facewise encrypt ...`, `facewise retention`)
        cli_eval,  # noqa: F401  (registers `facewise eval ...`)
        cli_scale,  # noqa: F401  (registers `facewise index`, `facewise cluster`, `facewise people merge|split`)
        cli_serve,  # noqa: F401  (registers `facewise serve` and `facewise keys ...`)
        cli_video,  # noqa: F401  (registers `facewise video`)
    )


_register_subcommands()

if __name__ == "__main__":  # pragma: no cover
    # `python -m facewise.cli`: sub-command modules registered on the imported `facewise.cli`, not on `__main__`
    from facewise.cli import app as _registered_app

    _registered_app()

