"""``facewise redact``: hide faces in photos, folders and videos (all, the unknown ones, or named people)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from facewise.cli.common import (
    EXIT_INPUT,
    CollOpt,
    CollProfileOpt,
    JsonOpt,
    _fw,
    app,
    choice,
    err,
    error_object,
    handled,
    out,
    progress_bar,
    report_error,
)
from facewise.errors import FacewiseError, ModelNotFoundError, ValidationError

if TYPE_CHECKING:
    from facewise.video.redact import Redactor, RedactReport

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".wmv", ".flv", ".3gp"}


def _emit(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _is_image(path: Path) -> bool:
    from facewise.core.imageio import is_image_path

    return is_image_path(path)


def _jobs(source: Path, dest: Path) -> list[tuple[Path, Path]]:
    """(input, output) pairs: one file, or every photo and video of a folder mirrored under ``dest``."""
    if not source.is_dir():
        return [(source, dest)]
    if dest.is_symlink():
        raise ValidationError(f"{dest}: is a symbolic link; redaction never writes through one")
    if dest.exists() and not dest.is_dir():
        raise ValidationError(f"{dest}: the input is a folder, so --out must be a folder too")
    if dest.resolve() == source.resolve():
        raise ValidationError(f"{dest}: is the input folder; redaction never overwrites its input")
    pairs = []
    inside = dest.resolve()
    for f in sorted(source.rglob("*")):
        if not f.is_file() or f.name.startswith(".") or inside in f.resolve().parents:
            continue
        suffix = f.suffix.lower()
        if _is_image(f):
            pairs.append((f, dest / f.relative_to(source)))
        elif suffix in VIDEO_SUFFIXES:
            target = dest / f.relative_to(source)
            pairs.append((f, target if suffix in (".mp4", ".mov", ".mkv") else target.with_suffix(".mp4")))
    return pairs


def _write_report(report: RedactReport, dest: Path) -> Path:
    from facewise.video.redact import report_path
    from facewise.video.redact_io import write_bytes_atomic

    path = report_path(dest)
    write_bytes_atomic(path, json.dumps(report.to_dict(), ensure_ascii=False, indent=1).encode())
    return path


def _summary(report: RedactReport) -> str:
    d = report.to_dict()
    s = d["stats"]
    if report.kind == "image":
        spared = sum(f["action"] == "spared" for f in d["faces"])
        return f"{report.output}: {s['masks']} face(s) hidden, {spared} spared"
    spared = [t for t in d["tracks"] if t["frames_shown"]]
    names = ", ".join(sorted({t["person"] for t in spared})) or "nobody"
    return (f"{report.output}: {len(d['tracks'])} tracks, {len(d['tracks']) - len(spared)} hidden, {len(spared)} "
            f"shown ({names}); {s['frames']} frames at {s['fps']:.1f} fps; {s['predicted_masks']} predicted and "
            f"{s['lookahead_masks']} look-ahead masks; audio {d['audio']}")


def _one(redactor: Redactor, src: Path, dest: Path, as_json: bool) -> bool:
    """Redact one input and write its report; False (after reporting) when it failed."""
    from facewise.video.decode import VideoError

    try:
        if _is_image(src):
            report = redactor.redact_image(src, dest)
        else:
            with progress_bar() as bar:
                task = bar.add_task(src.name, total=None)
                report = redactor.redact_video(src, dest, on_open=lambda r: bar.update(task, total=r.expected_frames),
                                               on_frame=lambda f: bar.advance(task))
    except VideoError as exc:
        partial = exc.partial
        if partial is None:
            report_error(exc, as_json, file=str(src))
            return False
        _write_report(partial, dest)
        if as_json:
            _emit({**partial.to_dict(), "error": error_object(exc), "file": str(src)})
        err.print(f"[red]error:[/red] {escape(str(exc))} (what was decoded is redacted in {escape(str(dest))})")
        return False
    except FacewiseError as exc:
        if isinstance(exc, ValidationError | ModelNotFoundError):
            raise
        report_error(exc, as_json, file=str(src))
        return False
    _write_report(report, dest)
    if as_json:
        _emit(report.to_dict())
    else:
        out.print(escape(_summary(report)))
    return True


@app.command("redact")
def redact_cmd(
    source: Annotated[Path, typer.Argument(metavar="INPUT", help="A photo, a video, or a folder of them.")],
    dest: Annotated[Path, typer.Option("--out", metavar="PATH",
                                       help="Output file (a folder for a folder input); never the input. A video "
                                            "becomes .mp4, .mov or .mkv (H.264, audio copied). The report is "
                                            "written beside it as OUT.json.")],
    mode: Annotated[str | None, typer.Option(metavar="all|unknown|only",
                                             help="all faces; unknown: keep enrolled people visible (needs --db); "
                                                  "only: hide the people given by --only.")] = None,
    only: Annotated[list[str] | None, typer.Option("--only", metavar="NAME",
                                                   help="A person to hide (repeat); implies --mode only.")] = None,
    db: Annotated[str | None, typer.Option("--db", metavar="PATH|URL",
                                           help="Gallery (needed by --mode unknown and --only).",
                                           envvar="FACEWISE_DB", show_default=False)] = None,
    profile: CollProfileOpt = None, collection: CollOpt = "default",
    style: Annotated[str, typer.Option(metavar="gaussian|pixelate|box", help="How a face is hidden.")] = "gaussian",
    strength: Annotated[float, typer.Option(min=0.1, max=10.0, help="Blur / pixelation strength (1 = default).")]
    = 1.0,
    shape: Annotated[str, typer.Option(metavar="ellipse|box", help="Shape of the mask.")] = "ellipse",
    margin: Annotated[float, typer.Option(min=0.0, max=2.0, help="Mask grows by this share of the face per side.")]
    = 0.3,
    lookahead: Annotated[int, typer.Option(min=0, max=120, help="Frames a mask starts before a face is first "
                                                                "detected.")] = 10,
    hold: Annotated[float, typer.Option(min=0.0, max=10.0, help="Seconds a lost face keeps its predicted mask.")]
    = 1.0,
    as_json: JsonOpt = False,
) -> None:
    """Hide faces in photos and videos: every face, the unknown ones (enrolled people stay visible), or named ones.

    In videos the masks follow tracks: a face the detector misses for a few frames stays hidden where it is
    predicted, masks start a few frames before a face is first detected, and sparing is decided per track.
    Writes OUT and OUT.json (per track: hidden or spared and why). Exit code 3: an unreadable input (a folder
    goes on with the others); 5: no such gallery, collection or person.
    """
    from facewise.video.masks import MaskStyle
    from facewise.video.redact import RedactOptions, Redactor

    with handled(as_json):
        names = tuple(only or ())
        chosen = choice(mode, "--mode", ("all", "unknown", "only")) if mode is not None else (
            "only" if names else "all")
        if chosen != "all" and db is None:
            raise ValidationError(f"--mode {chosen} needs --db: the gallery of the people to recognise")
        options = RedactOptions(mode=chosen, names=names, lookahead=lookahead, hold_s=hold,
                                mask=MaskStyle(style=choice(style, "--style", ("gaussian", "pixelate", "box")),
                                               strength=strength, shape=choice(shape, "--shape", ("ellipse", "box")),
                                               margin=margin))
        pairs = _jobs(source, dest)
        if db is None:
            from facewise.api import FaceWise

            fw = FaceWise(db=None, profile=profile or "fast")
            try:
                redactor = Redactor(fw, options)
            except ModelNotFoundError:
                if profile is not None:
                    raise
                err.print("profile fast's models are missing: using the default profile")
                fw = FaceWise(db=None, profile="default")
                redactor = Redactor(fw, options)
        else:
            fw = _fw(db, profile, collection)
            redactor = Redactor(fw, options)
        failed = 0
        try:
            for src, target in pairs:
                failed += not _one(redactor, src, target, as_json)
        finally:
            fw.close()
        if not pairs:
            err.print(f"{escape(str(source))}: no photos or videos found")
        if failed:
            raise typer.Exit(EXIT_INPUT)

