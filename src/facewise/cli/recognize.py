"""Commands: enrol, identify, verify, detect, analyze, threshold, export, import, demo."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from facewise.cli.common import (
    DEFAULT_GALLERY,
    EXIT_DIFFERENT,
    EXIT_INPUT,
    CollOpt,
    CollProfileOpt,
    GalleryOpt,
    JsonOpt,
    ProfileOpt,
    _emit_json,
    _face_choice,
    _fw,
    _images_in,
    app,
    err,
    handled,
    out,
    progress_bar,
)
from facewise.errors import ImageError, ValidationError


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
    db: GalleryOpt = DEFAULT_GALLERY, profile: CollProfileOpt = None, collection: CollOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """Enrol people: `--name NAME photo.jpg ...`, or folders laid out as <folder>/<person>/*.jpg."""
    from facewise.api import folder_items
    from facewise.core.analysis import Gate
    from facewise.gallery.names import check_name

    with handled():
        if not sources and not from_track:
            raise ValidationError("give images, a <folder>/<person>/ layout, or --from-track TIMELINE_JSON:TRACK_ID")
        if name is not None:
            check_name(name)  # a bad --name is refused before anything is opened or computed (exit 2)
        fw = _fw(db, profile, collection, create=True)
        items: list[tuple[str, Any]] = []
        if from_track:  # `facewise video` thumbnails; a neighbour's face may show at the edge: take the largest
            from facewise.video.outputs import track_thumbnail

            if not name:
                raise ValidationError("--from-track needs --name (who the track is)")
            items += [(name, track_thumbnail(spec)) for spec in from_track]
            face = "largest" if face == "only" else face
        for src in sources or []:
            if name:
                items += [(name, f) for f in _images_in([src])]
            elif src.is_dir():
                items += folder_items(src)
            else:
                raise ValidationError(f"{src}: give --name for single images, or a <folder>/<person>/ layout")
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
    db: GalleryOpt = DEFAULT_GALLERY, profile: CollProfileOpt = None, collection: CollOpt = "default",
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
    from facewise.core.draw import annotate
    from facewise.core.imageio import load_image, save_rgb

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
    db: GalleryOpt = DEFAULT_GALLERY, profile: CollProfileOpt = None, collection: CollOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """Same person? Exit code 0 if yes, 10 if not (errors: 3 input, 4 model, 5 not found)."""
    from facewise.core.analysis import Gate

    with handled():
        if (other is None) == (person is None):
            raise ValidationError("give a second image or --person NAME")
        fw = _fw(db if person else None, profile, collection, create=not person)  # two images: in memory
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
    from facewise.core.pipeline import Pipeline

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
    from facewise.api import FaceWise

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
    db: GalleryOpt = DEFAULT_GALLERY, profile: CollProfileOpt = None, collection: CollOpt = "default",
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
def export_cmd(path: Path, db: GalleryOpt = DEFAULT_GALLERY, profile: CollProfileOpt = None,
               collection: CollOpt = "default") -> None:
    """Write a collection to a JSON file (.json or .json.gz)."""
    with handled():
        fw = _fw(db, profile, collection)
        n = fw.export(path)
        out.print(f"exported {n} samples to {path}")


@app.command("import")
def import_cmd(path: Path, db: GalleryOpt = DEFAULT_GALLERY, profile: CollProfileOpt = None,
               collection: CollOpt = "default") -> None:
    """Merge an exported collection into this one (same profile)."""
    with handled():
        fw = _fw(db, profile, collection, create=True)
        n = fw.import_(path)
        out.print(f"imported {n} new samples from {path}")



# -- demo ---------------------------------------------------------------------------------------
@app.command()
def demo(
    train: Annotated[Path | None, typer.Option(
        help="Folder of <person>/*.jpg to enrol (default: the example photos, fetched once if missing).")] = None,
    test: Annotated[Path | None, typer.Option(help="Images (or a folder) to identify.")] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Where annotated images and demo.db go.")] = Path("demo-out"),
    profile: ProfileOpt = "default",
) -> None:
    """Enrol a folder of people, identify every face in the test images, write annotated copies."""
    from facewise.api import FaceWise
    from facewise.errors import NotFoundError
    from facewise.models.examples import examples

    with handled():
        if train is None or test is None:
            found = examples()
            train, test = train or found.train, test or found.test
        for what, folder in (("--train", train), ("--test", test)):
            if not folder.exists():
                raise NotFoundError(f"{what} {folder}: no such file or folder")
        if not train.is_dir():
            raise NotFoundError(f"--train {train}: not a folder of <person>/*.jpg")
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
