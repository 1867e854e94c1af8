"""Commands: enrol, identify, verify, detect, analyze, threshold, export, import, demo."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from facewise.cli.common import (
    DEFAULT_GALLERY,
    EXIT_DIFFERENT,
    EXIT_INPUT,
    CollOpt,
    CollProfileOpt,
    FaceOpt,
    GalleryOpt,
    JsonOpt,
    ProfileOpt,
    _emit_json,
    _face_choice,
    _fw,
    _images_in,
    app,
    cli_hint,
    err,
    error_object,
    find_person,
    handled,
    out,
    progress_bar,
    report_error,
)
from facewise.errors import EnrollmentError, ImageError, NotFoundError, ValidationError
from facewise.types import EnrollResult

if TYPE_CHECKING:
    from facewise.api import FaceWise
    from facewise.core.outfiles import InputFiles

LiveThrOpt = Annotated[Path | None, typer.Option(
    "--live-threshold", help="A `calibrate-liveness` threshold file (default: $FACEWISE_LIVENESS_THRESHOLD, "
                             "else the model's own).")]


def _wanted_attributes(what: list[str] | None, annotate: bool) -> tuple[str, ...]:
    """``--what`` as the library's ``analyze(what=...)``: every registered attribute by default, an option such as
    ``live_map`` when named; ``--annotate`` draws liveness's occlusion map, so it asks for it."""
    from facewise.models import attributes

    names = attributes.names() if not what else tuple(w.strip() for v in what for w in v.split(",") if w.strip())
    return (*names, "live_map") if annotate and "live" in names and "live_map" not in names else names


def _use_live_threshold(fw: FaceWise, path: Path | None) -> None:
    from facewise.core.analysis import LiveThreshold

    if path is not None:
        fw.engine.set_live_threshold(LiveThreshold.load(path))


# -- enrol / identify / verify / detect ---------------------------------------------------------
@app.command()
def enroll(
    sources: Annotated[list[Path] | None, typer.Argument(
        help="Images of one person (--name) or <folder>/<person>/*.jpg")] = None,
    name: Annotated[str | None, typer.Option("--name", "-n", help="Person to enrol the images as.")] = None,
    from_track: Annotated[list[str] | None, typer.Option(
        "--from-track", help="TIMELINE_JSON:TRACK_ID from `facewise video`: enrol that track's best frame.")] = None,
    face: FaceOpt = "only",
    min_quality: Annotated[float | None, typer.Option(
        min=0.0, max=1.0, help="Refuse faces below this quality (0..1).")] = None,
    require_live: Annotated[bool, typer.Option(help="Refuse faces the anti-spoofing model finds not live.")] = False,
    live_threshold: LiveThrOpt = None,
    db: GalleryOpt = DEFAULT_GALLERY, profile: CollProfileOpt = None, collection: CollOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """Enrol people: `--name NAME photo.jpg ...`, or folders laid out as <folder>/<person>/*.jpg."""
    from facewise.api import folder_items
    from facewise.core.analysis import Gate
    from facewise.gallery.names import check_name

    with handled(as_json):
        face_choice = _face_choice(face)
        if not sources and not from_track:
            raise ValidationError("give images, a <folder>/<person>/ layout, or --from-track TIMELINE_JSON:TRACK_ID")
        if name is not None:
            check_name(name)  # a bad --name is refused before anything is opened or computed (exit 2)
        items: list[tuple[str, Any]] = []
        if from_track:  # `facewise video` thumbnails; a neighbour's face may show at the edge: take the largest
            from facewise.video.outputs import track_thumbnail

            if not name:
                raise ValidationError("--from-track needs --name (who the track is)")
            items += [(name, track_thumbnail(spec)) for spec in from_track]
            face_choice = "largest" if face_choice == "only" else face_choice
        for src in sources or []:
            if not src.exists():
                raise NotFoundError(f"{src}: no such file or folder (nothing was enrolled)")
            if name:
                items += [(name, f) for f in _images_in([src])]
            elif src.is_dir():
                items += folder_items(src)
            else:
                raise ValidationError(f"{src}: give --name for single images, or a <folder>/<person>/ layout")
        fw = _fw(db, profile, collection, create=True)  # after the inputs are checked: a typo creates nothing
        _use_live_threshold(fw, live_threshold)
        failure: EnrollmentError | None = None
        with progress_bar() as bar:
            task = bar.add_task("enrolling", total=len(items))
            try:
                results = fw.enroll_items(items, face=face_choice,
                                          gate=Gate(min_quality=min_quality, require_live=require_live),
                                          progress=lambda r: bar.advance(task))
            except EnrollmentError as exc:  # nothing stored: the rows still say why, then exit 3
                results, failure = [r for r in exc.results if isinstance(r, EnrollResult)], exc
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
        if failure is not None:
            for r in results:
                if r.status == "rejected":
                    err.print(f"[red]error:[/red] {escape(r.reason or 'rejected')}")  # one line per file
            if as_json:
                _emit_json({"error": error_object(failure)})
            if (hint := cli_hint(failure)) is not None:
                err.print(f"[dim]hint:[/dim] {escape(hint)}")
            raise typer.Exit(failure.exit_code)


@app.command()
def identify(
    sources: Annotated[list[Path], typer.Argument(help="Images or folders of images.")],
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="Candidates per face.")] = 1,
    annotate_dir: Annotated[Path | None, typer.Option("--annotate", help="Write annotated copies here.")] = None,
    db: GalleryOpt = DEFAULT_GALLERY, profile: CollProfileOpt = None, collection: CollOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """Name every face in the images, or say "unknown" below the collection's threshold.

    Exit code 3 if any image could not be read (the others are still identified)."""
    with handled(as_json):
        fw = _fw(db, profile, collection)
        failures = _identify_files(fw, _images_in(sources), top_k, annotate_dir, as_json)
        fw.close()
        if failures:  # the readable images were still identified
            raise typer.Exit(EXIT_INPUT)


def _identify_files(fw: FaceWise, files: list[Path], top_k: int, annotate_dir: Path | None, as_json: bool) -> int:
    from facewise.core.draw import annotate
    from facewise.core.imageio import load_image, save_rgb

    table = Table("file", "face box", "person", "score", "est. FAR", "est. FPIR")
    coll = fw.coll
    decision = coll.decision()  # one snapshot: every file is named, and the summary told, at one threshold
    failures = 0
    targets, inputs = _annotation_targets(files, annotate_dir)
    with progress_bar() as bar:
        task = bar.add_task("identifying", total=len(files))
        for f in files:
            try:
                img = load_image(f)
                results = coll.identify(img, top_k, decision)
            except ImageError as exc:
                failures += 1
                report_error(exc, as_json, file=str(f))
                bar.advance(task)
                continue
            if not results:
                table.add_row(f.name, "-", "(no face)", "", "", "")
            for r in results:
                if as_json:
                    _emit_json({"file": str(f), **r.to_dict()})
                far = decision.format_far(r.far)
                table.add_row(f.name, str([round(v) for v in r.face.box.as_list()]), r.person or "unknown",
                              f"{r.score:.3f}", far, "n/a" if r.fpir is None else f"{r.fpir:.1e}")
            if annotate_dir:
                save_rgb(targets[f], annotate(img.pixels, results), inputs=inputs)
            bar.advance(task)
    if not as_json:
        out.print(table, markup=False)  # names and reasons are data, not markup
        d = decision
        out.print(f"{d.explain()}, profile {coll.profile.name}")
        out.print("est. FAR: per comparison; est. FPIR: chance that a stranger scores this high against someone "
                  f"among the {d.searched} persons searched")
    return failures


def _annotation_targets(files: list[Path], annotate_dir: Path | None) -> tuple[dict[Path, Path], InputFiles]:
    """Where each input's annotated copy goes (``_unique_name``), checked before any work: a target that is one
    of the inputs (``--annotate`` naming the photos' own folder) or a symbolic link is refused (exit 2)."""
    from facewise.core.outfiles import InputFiles, check_target

    inputs = InputFiles(files)
    if annotate_dir is None:
        return {}, inputs
    annotate_dir.mkdir(parents=True, exist_ok=True)
    written: set[str] = set()
    targets = {f: check_target(annotate_dir / _unique_name(f, written), inputs) for f in files}
    return targets, inputs


def _unique_name(f: Path, written: set[str]) -> str:
    """``<stem>.jpg``, or ``<stem>-2.jpg``, ``-3`` … when another input (same name in another folder, or
    a.png next to a.jpg) already took it in this run: annotated copies never overwrite each other."""
    name, k = f"{f.stem}.jpg", 1
    while name in written:
        k += 1
        name = f"{f.stem}-{k}.jpg"
    written.add(name)
    return name


@app.command()
def verify(
    image: Annotated[Path, typer.Argument(help="Probe image.")],
    other: Annotated[Path | None, typer.Argument(help="Second image (or use --person).")] = None,
    person: Annotated[str | None, typer.Option(
        "--person", help="Compare with an enrolled person: a name, or an id as 6, #6 or id:6.")] = None,
    face: FaceOpt = "only",
    other_face: Annotated[str, typer.Option(
        "--other-face", metavar="only|largest|N", help="The same choice for the second image.")] = "only",
    require_live: Annotated[bool, typer.Option(help="Answer 'different' if the probe is not live.")] = False,
    live_threshold: LiveThrOpt = None,
    db: GalleryOpt = DEFAULT_GALLERY, profile: CollProfileOpt = None, collection: CollOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """Same person? Exit code 0 if yes, 10 if not (errors: 3 input or several faces without --face, 4 model,
    5 not found)."""
    from facewise.core.analysis import Gate

    with handled(as_json):
        choice, other_choice = _face_choice(face), _face_choice(other_face, "--other-face")
        if (other is None) == (person is None):
            raise ValidationError("give a second image or --person NAME")
        fw = _fw(db if person else None, profile, collection, create=not person)  # two images: in memory
        _use_live_threshold(fw, live_threshold)
        gate = Gate(require_live=True) if require_live else None
        if person:
            v = fw.verify_person(image, find_person(fw, person).id, face=choice, gate=gate)
        else:
            assert other is not None  # (one of the two was given)
            v = fw.verify(image, other, face=choice, gate=gate, other_face=other_choice)
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
    """Faces with boxes, landmarks, yaw and quality reasons (exit code 3 if any image could not be read)."""
    from facewise.core.pipeline import Pipeline

    failures = 0
    with handled(as_json):
        pipe = Pipeline(profile)
        t = Table("file", "face", "box", "det", "yaw", "quality", "reasons")
        for f in _images_in(sources):
            try:
                img, dets = pipe.detect(f)
            except ImageError as exc:
                failures += 1
                report_error(exc, as_json, file=str(f))
                continue
            for face in pipe.make_faces(img.pixels, dets):
                if as_json:
                    _emit_json({"file": str(f), **face.to_dict()})
                t.add_row(f.name, str(face.index), str([round(v) for v in face.box.as_list()]),
                          f"{face.det_score:.2f}", f"{face.yaw:+.0f}", f"{face.quality.score:.2f}",
                          "; ".join(face.quality.reasons))
        if not as_json:
            out.print(t, markup=False)  # names and reasons are data, not markup
    if failures:
        raise typer.Exit(EXIT_INPUT)


@app.command()
def analyze(
    sources: Annotated[list[Path], typer.Argument(help="Images or folders.")],
    profile: ProfileOpt = "default", as_json: JsonOpt = False,
    annotate_dir: Annotated[Path | None, typer.Option(
        "--annotate", help="Write copies with the liveness verdict, fired cues and occlusion map drawn.")] = None,
    live_threshold: LiveThrOpt = None,
    what: Annotated[list[str] | None, typer.Option(
        "--what", help="Attributes to measure (repeat or comma-separate; default: every registered one); "
                       "'live_map' adds liveness's occlusion map (--annotate draws it).")] = None,
) -> None:
    """Per face: quality with reasons, liveness (with its cues and map), head pose, expression and any other
    registered face attribute.

    Exit code 3 if any image could not be read (the others are still analysed); 2 for an unknown --what."""
    from facewise.api import FaceWise
    from facewise.core.draw import annotate_analysis
    from facewise.core.imageio import load_image, save_rgb
    from facewise.models import attributes

    failures = 0
    with handled(as_json):
        fw = FaceWise(profile=profile)
        _use_live_threshold(fw, live_threshold)
        wanted = _wanted_attributes(what, annotate_dir is not None)
        files = _images_in(sources)
        targets, inputs = _annotation_targets(files, annotate_dir)
        plugins = [attributes.attribute_class(n) for n in attributes.names()]  # one column each, registry order
        t = Table("file", "face", "box", "quality", *(p.column or p.name for p in plugins), "reasons")
        for f in files:
            try:
                img = load_image(f)
                faces = fw.analyze(img, what=wanted)
            except ImageError as exc:
                failures += 1
                report_error(exc, as_json, file=str(f))
                continue
            if annotate_dir:
                save_rgb(targets[f], annotate_analysis(img.pixels, faces), inputs=inputs)
            for face in faces:
                d = face.to_dict()
                if as_json:
                    _emit_json({"file": str(f), **d})
                    continue
                cells = [p.summary(face.attributes[n]) if n in face.attributes else "n/a"
                         for n, p in zip(attributes.names(), plugins, strict=True)]
                t.add_row(f.name, str(face.index), str([round(v) for v in face.box.as_list()]),
                          f"{face.quality.score:.2f}", *cells, "; ".join(face.quality.reasons))
        if not as_json:
            out.print(t, markup=False)  # names and reasons are data, not markup
        _hint_missing_analysis_models()
    if failures:
        raise typer.Exit(EXIT_INPUT)


def _hint_missing_analysis_models() -> None:
    """A "n/a" column says why: one stderr line per analysis model that is not on the model path."""
    from facewise.models.catalogue import ANALYSIS_MODELS, is_available

    effect = {"minifasnet-v2-v1se": "liveness is n/a", "fsanet": "head pose comes from the five landmarks"}
    for m in ANALYSIS_MODELS:
        if not is_available(m):
            err.print(f"note: {effect.get(m, m + ' is missing')}: model {m} is not on the model path; "
                      "`facewise models fetch --analysis` fetches it or says how to get it", markup=False)


# -- threshold, export, import --------------------------------------------------------------------
@app.command()
def threshold(
    value: Annotated[float | None, typer.Option("--score", help="Decide at this raw score.")] = None,
    far: Annotated[float | None, typer.Option(
        "--far", help="Decide at this false-accept rate per comparison, e.g. 1e-4 (identify and verify).")] = None,
    fpir: Annotated[float | None, typer.Option(
        "--fpir", help="Identify at this chance that a stranger gets a name from a search of the whole gallery, "
        "e.g. 0.01 (the default); the threshold follows the number of persons.")] = None,
    db: GalleryOpt = DEFAULT_GALLERY, profile: CollProfileOpt = None, collection: CollOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """Show, or set, how a collection decides (a raw score, a target FAR or a target FPIR), and why."""
    with handled(as_json):
        fw = _fw(db, profile, collection)
        given = (value, far, fpir)
        d = fw.set_threshold(value, far, fpir) if any(x is not None for x in given) else fw.decision
        v = fw.verification_decision
        if as_json:
            _emit_json({"threshold": d.threshold, "source": d.source, "far": d.far_at_threshold, "fpir": d.fpir,
                        "persons": d.searched, "verify": {"threshold": v.threshold, "source": v.source,
                                                          "far": v.far_at_threshold}, "index": fw.index_info()})
        else:
            out.print(f"identify: {d.explain()}")
            out.print(f"verify:   {v.explain()}")
            ix = fw.index_info()
            out.print(f"index:    {ix['index']} ({ix['reason']})")


@app.command("export")
def export_cmd(path: Annotated[Path, typer.Argument(help="The file to write (.json or .json.gz).")],
               db: GalleryOpt = DEFAULT_GALLERY, profile: CollProfileOpt = None,
               collection: CollOpt = "default", as_json: JsonOpt = False) -> None:
    """Write a collection to a JSON file (.json or .json.gz)."""
    with handled(as_json):
        fw = _fw(db, profile, collection)
        n = fw.export(path)
        fw.close()
        if as_json:
            _emit_json({"file": str(path), "exported": n, "collection": collection, "profile": fw.profile.name})
        else:
            out.print(f"exported {n} samples to {path}", markup=False)


@app.command("import")
def import_cmd(path: Annotated[Path, typer.Argument(help="A file written by `facewise export`.")],
               db: GalleryOpt = DEFAULT_GALLERY, profile: CollProfileOpt = None, collection: CollOpt = "default",
               as_json: JsonOpt = False) -> None:
    """Merge an exported collection into this one (same profile). A new collection gets the export's profile."""
    from facewise.gallery.exchange import read_export

    with handled(as_json):
        doc = read_export(path)  # a bad file is refused before anything is opened or created
        fw = _fw(db, profile or doc["collection"].get("profile") or "default", collection, create=True)
        n = fw.import_(path)
        if as_json:
            _emit_json({"file": str(path), "imported": n, "collection": collection, "profile": fw.profile.name})
        else:
            out.print(f"imported {n} new samples from {path} into collection {collection!r} "
                      f"(profile {fw.profile.name})", markup=False)
        fw.close()



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
        failures = _identify_files(fw, _images_in([test]), 1, out_dir / "annotated", False)
        out.print(f"annotated images in {out_dir / 'annotated'}; gallery {db}")
        fw.close()
        if failures:  # the readable test images were still identified
            raise typer.Exit(EXIT_INPUT)
