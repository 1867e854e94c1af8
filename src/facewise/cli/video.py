"""``facewise video``: find, track and name every person in a video file, a webcam or a stream."""

from __future__ import annotations

import json
import sys
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
    GalleryOpt,
    JsonOpt,
    _fw,
    app,
    err,
    error_object,
    handled,
    out,
    progress_bar,
    report_error,
)
from facewise.errors import ValidationError

if TYPE_CHECKING:
    from facewise.video import VideoEvent, VideoResult


def _emit(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _clock(ms: float) -> str:
    s = ms / 1000
    return f"{int(s // 60)}:{s % 60:06.3f}"


def _print_event(ev: VideoEvent, as_json: bool) -> None:
    if as_json:
        _emit(ev.to_dict())
        return
    if ev.kind == "challenge" and ev.detail is not None:
        ch = ev.detail
        if not ch["finished"]:
            err.print(f"{_clock(ev.t_ms)}  challenge: now {ch['prompt']}")
        else:
            verdict = "[green]PASSED[/green]" if ch["passed"] else f"[red]FAILED[/red] ({escape(ch['reason'])})"
            out.print(f"{_clock(ev.t_ms)}  challenge {','.join(ch['steps'])}: {verdict}")
        return
    who = ev.person or "unknown"
    what = {"entered": "entered", "identified": "identified as", "left": "left"}.get(ev.kind, ev.kind)
    if ev.kind == "identified":
        out.print(f"{_clock(ev.t_ms)}  track {ev.track} {what} [bold]{who}[/bold] ({ev.score:.2f})")
    else:
        out.print(f"{_clock(ev.t_ms)}  track {ev.track} ({who}) {what}")


def _print_result(result: VideoResult, as_json: bool) -> None:
    if as_json:
        _emit(result.to_dict())
        return
    t = Table("track", "person", "score", "first", "last", "frames", "best frame")
    for tr in result.tracks:
        t.add_row(str(tr.track), tr.person or "unknown", f"{tr.score:.3f}", _clock(tr.first_ms), _clock(tr.last_ms),
                  str(tr.frames), tr.best_frame or "")
    out.print(t)
    s = result.stats
    names = ", ".join(sorted(result.persons())) or "nobody known"
    out.print(f"{len(result.tracks)} tracks ({names}); {s.frames_processed} frames in {s.wall_s:.1f} s: "
              f"{s.fps:.1f} fps, {s.realtime_factor:.2f}x real time; threshold {result.threshold:.3f} "
              f"({result.threshold_source}), profile {result.profile}")
    if result.outputs:
        out.print(f"timeline: {result.outputs['timeline_json']}")


@app.command("video")
def video_cmd(
    source: Annotated[str, typer.Argument(help="Video file, webcam index (0) or stream URL (rtsp://, http://...).")],
    db: GalleryOpt = DEFAULT_GALLERY, profile: CollProfileOpt = None, collection: CollOpt = "default",
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for timeline.json/csv, thumbs/, annotated.mp4.")]
    = Path("video-out"),
    stride: Annotated[int | None, typer.Option(min=1, help="Process every N-th frame.")] = None,
    fps: Annotated[float | None, typer.Option(min=0.01, help="Process about F frames per second of video.")] = None,
    start: Annotated[float, typer.Option(min=0.0, help="Start at this time, in seconds (files).")] = 0.0,
    duration: Annotated[float | None, typer.Option(min=0.01, help="Stop after this many seconds of video.")] = None,
    live: Annotated[bool, typer.Option("--live", help="Print entered / identified / left events as they happen.")]
    = False,
    expression: Annotated[bool, typer.Option("--expression", help="Per-track expression timeline (EMA).")] = False,
    max_age: Annotated[float, typer.Option(min=0.0, help="Seconds a lost face is waited for before its track ends.")]
    = 1.0,
    no_video: Annotated[bool, typer.Option("--no-video", help="Do not write the annotated video.")] = False,
    challenge: Annotated[str | None, typer.Option(
        help="Active liveness on the largest face: 'random' or motions like left,right (left, right, up, closer). "
             "Exit code 10 when it fails.")] = None,
    challenge_time: Annotated[float, typer.Option(min=0.1, help="Seconds to complete the challenge.")] = 10.0,
    as_json: JsonOpt = False,
) -> None:
    """Track and name every face of a video: writes a timeline, thumbnails and an annotated video.

    Exit code 3: unreadable video, or one that ends early (its partial timeline is written, with "error" set);
    exit code 5: no such gallery or collection (the video only reads it). --json: with --live one event per
    line as it happens, then the result as the last line.
    """
    from facewise.video import (
        DecodeOptions,
        OutputOptions,
        RunHooks,
        TrackerOptions,
        VideoError,
        VideoOptions,
        VideoProcessor,
    )

    with handled(as_json):
        if stride is not None and fps is not None:
            raise ValidationError("give --stride or --fps, not both")
        steps: tuple[str, ...] = ()
        if challenge is not None:
            from facewise.core.challenge import parse_steps, random_steps

            steps = tuple(random_steps(2) if challenge.strip().lower() == "random" else parse_steps(challenge))
        options = VideoOptions(
            decode=DecodeOptions(stride=stride or 1, fps=fps, start_s=start, duration_s=duration),
            tracker=TrackerOptions(max_age_s=max_age), expression=expression, challenge=steps,
            challenge_time_limit_s=challenge_time)
        outputs = OutputOptions(out_dir, annotated_video=not no_video)
        fw = _fw(db, profile, collection)  # only reads the gallery: a missing one is exit 5, never created
        proc = VideoProcessor(fw, options)
        on_event = (lambda ev: _print_event(ev, as_json)) if live else None
        with progress_bar() as bar:
            task = bar.add_task("video", total=None, visible=not live)
            hooks = RunHooks(on_open=lambda r: bar.update(task, total=r.expected_frames),
                             on_frame=lambda f: bar.advance(task), on_event=on_event)
            try:
                result = proc.run(source, outputs, hooks)
            except VideoError as exc:
                bar.stop()
                if exc.partial is not None and as_json:  # the partial result, its "error" as the error object
                    _emit({**exc.partial.to_dict(), "error": error_object(exc)})
                    err.print(f"[red]error:[/red] {escape(str(exc))} (partial timeline written to {out_dir})")
                elif exc.partial is not None:
                    _print_result(exc.partial, as_json)
                    err.print(f"[red]error:[/red] {escape(str(exc))} (partial timeline written to {out_dir})")
                else:
                    report_error(exc, as_json, source=source)
                fw.close()
                raise typer.Exit(EXIT_INPUT) from None
        _print_result(result, as_json)
        fw.close()
        if result.challenge is not None and not result.challenge["passed"]:
            raise typer.Exit(EXIT_DIFFERENT)
