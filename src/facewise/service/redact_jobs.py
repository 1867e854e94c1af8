"""Redaction jobs: the runner behind ``POST /v1/collections/{collection}/redactions``.

A job's options (``VideoTask.options``) are those of :class:`facewise.video.redact.RedactOptions`: ``mode``,
``names``, ``style``, ``strength``, ``shape``, ``margin``, ``lookahead``, ``duration``. The redacted video becomes the
job's video (``GET /v1/jobs/{id}/video``) and the report its result; tracks name spared people like a video job's
tracks, so erasing a person de-identifies their tracks and drops the video (``jobs._scrub``).
"""

from __future__ import annotations

import logging
import shutil
from typing import TYPE_CHECKING, Any

from facewise.errors import ValidationError
from facewise.service.jobs import VideoTask

if TYPE_CHECKING:
    from facewise.video.decode import VideoReader
    from facewise.video.redact import RedactOptions, RedactReport

log = logging.getLogger(__name__)

MAX_REDACTED_BYTES = 1024 * 1024 * 1024  # a redacted video larger than this is not kept (the job says so)
OPTION_KEYS = {"mode", "names", "style", "strength", "shape", "margin", "lookahead", "duration"}


def redact_options(options: dict[str, Any], max_pixels: int | None = None,
                   max_seconds: float | None = None) -> RedactOptions:
    """:class:`RedactOptions` from a job's options; ``ValidationError`` (422) for a bad one."""
    from facewise.video.decode import DEFAULT_MAX_FRAME_PIXELS, DecodeOptions
    from facewise.video.masks import MaskStyle
    from facewise.video.redact import RedactOptions

    unknown = set(options) - OPTION_KEYS
    if unknown:
        raise ValidationError(f"unknown redaction option(s): {', '.join(sorted(unknown))}")
    mask = MaskStyle(style=str(options.get("style", "gaussian")), strength=float(options.get("strength", 1.0)),
                     shape=str(options.get("shape", "ellipse")), margin=float(options.get("margin", 0.3)))
    duration = options.get("duration")
    decode = DecodeOptions(duration_s=float(duration) if duration else None, max_duration_s=max_seconds,
                           max_pixels=max_pixels or DEFAULT_MAX_FRAME_PIXELS)
    return RedactOptions(mode=str(options.get("mode", "all")), names=tuple(options.get("names") or ()), mask=mask,
                         lookahead=int(options.get("lookahead", 10)), decode=decode)


def _report(report: RedactReport, task: VideoTask) -> dict[str, Any]:
    d = report.to_dict()
    d["source"], d["output"] = task.name, None  # never the server's paths
    return d


def redact_runner(task: VideoTask) -> dict[str, Any]:
    """Redact the uploaded video with :class:`facewise.video.redact.Redactor`; the result is the report."""
    from facewise.video import VideoError
    from facewise.video.redact import Redactor

    opts = redact_options(task.options, task.max_pixels, task.max_seconds)
    out_dir = task.path.with_name(task.path.name + ".out")
    out_dir.mkdir(mode=0o700, exist_ok=True)
    out = out_dir / "redacted.mp4"
    duration = {"ms": 0.0}

    def on_open(reader: VideoReader) -> None:
        duration["ms"] = reader.info.duration_ms or 0.0
        if opts.decode.duration_s:
            duration["ms"] = min(duration["ms"] or 1e12, opts.decode.duration_s * 1000)

    try:
        report = Redactor(task.fw, opts).redact_video(
            task.path, out, on_open=on_open, on_decoded=task.check,
            on_frame=lambda f: task.report(f.t_ms / duration["ms"] if duration["ms"] else 0.0))
        if task.set_video is not None and out.is_file():
            size = out.stat().st_size
            if size <= MAX_REDACTED_BYTES:
                task.set_video(out)
            else:
                log.warning("%s: redacted video of %d bytes not kept (limit %d)", task.name, size, MAX_REDACTED_BYTES)
        return _report(report, task)
    except VideoError as exc:  # ended early: the report of what was decoded (its video is not kept)
        partial = _report(exc.partial, task) if exc.partial is not None else None
        raise type(exc)(str(exc).replace(str(task.path), task.name), partial=partial) from None
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
