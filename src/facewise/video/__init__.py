"""Video: find, track and name every person in a video file, a webcam or a stream.

See :mod:`facewise.video.process` for the pipeline and docs/VIDEO.md for the command line and measurements.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from facewise.video.decode import (
    DecodeOptions,
    Frame,
    VideoError,
    VideoInfo,
    VideoLimitError,
    VideoReader,
    parse_source,
)
from facewise.video.outputs import OutputOptions, track_thumbnail, write_timeline
from facewise.video.process import RunHooks, VideoOptions, VideoProcessor
from facewise.video.recognize import ExpressionTrack, IdentityOptions, TrackIdentity
from facewise.video.records import TrackSummary, VideoEvent, VideoResult, VideoStats
from facewise.video.tracker import KalmanBox, Track, Tracker, TrackerOptions

if TYPE_CHECKING:
    from facewise.api import FaceWise
    from facewise.collection import Collection
    from facewise.video.decode import VideoSource
    from facewise.video.records import EventFn

__all__ = [
    "DecodeOptions", "ExpressionTrack", "Frame", "IdentityOptions", "KalmanBox", "OutputOptions", "RunHooks", "Track",
    "TrackIdentity", "TrackSummary", "Tracker", "TrackerOptions", "VideoError", "VideoEvent", "VideoInfo",
    "VideoLimitError",
    "VideoOptions", "VideoProcessor", "VideoReader", "VideoResult", "VideoStats", "parse_source",
    "process_video", "track_thumbnail", "write_timeline",
]


def process_video(fw: FaceWise | Collection, source: VideoSource, options: VideoOptions | None = None,
                  outputs: OutputOptions | None = None, on_event: EventFn | None = None) -> VideoResult:
    """Shortcut for ``VideoProcessor(fw, options).run(source, outputs, RunHooks(on_event=on_event))``."""
    return VideoProcessor(fw, options).run(source, outputs=outputs, hooks=RunHooks(on_event=on_event))
