"""Tracking on every profile's own scale (issue 24, part B): the Hamilton clip (a wide shot, cuts to Lin-Manuel
Miranda, to the audience) with `default` and `fast`. A track may come back after a cut only as the same person:
every shot a track spans must look like the shot it started in (their mean face vectors score at least the
profile's threshold at FAR 1e-2). Observed on the real tracker of a real run: a subclass records what each
update matched and changes nothing."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

import facewise.video.process as process
from conftest import DATA, need
from facewise import FaceWise
from facewise.decision.rates import ScoreScale
from facewise.types import Face
from facewise.video.decode import DecodeOptions
from facewise.video.process import VideoOptions, VideoProcessor
from facewise.video.tracker import Tracker, TrackerStep

HAMILTON = DATA / "video" / "face_recognition_examples" / "examples" / "short_hamilton_clip.mp4"


class _Recording(Tracker):
    seen: ClassVar[list[tuple[int, int, Face]]] = []  # (track id, shot, face) of every match, in order

    def update(self, faces: list[Face], t_ms: float, embed=None, cut: bool = False) -> TrackerStep:  # type: ignore[no-untyped-def]
        step = super().update(faces, t_ms, embed, cut)
        _Recording.seen += [(tr.id, self.shot, f) for tr, f in step.matched]
        return step


@pytest.mark.parametrize("profile", ["default", "fast"])
def test_no_track_holds_two_people_across_cuts(profile: str, models_dir: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    need(HAMILTON)
    _Recording.seen = []
    monkeypatch.setattr(process, "Tracker", _Recording)
    fw = FaceWise(db=None, profile=profile)
    res = VideoProcessor(fw, VideoOptions(decode=DecodeOptions(stride=2))).run(HAMILTON)
    assert res.stats.cuts == 3 and _Recording.seen
    scale = ScoreScale.of(fw.profile)
    threshold = scale.at_far(1e-2, 0.3)
    segments: dict[int, dict[int, list[np.ndarray]]] = {}
    for tid, shot, face in _Recording.seen:
        if face.embedding is not None:
            segments.setdefault(tid, {}).setdefault(shot, []).append(face.embedding)
    spanning = 0
    for tid, shots in segments.items():
        order = sorted(shots)
        means = {s: np.mean(shots[s], axis=0) for s in order}
        first = means[order[0]] / np.linalg.norm(means[order[0]])
        for s in order[1:]:
            spanning += 1
            sim = float(first @ (means[s] / np.linalg.norm(means[s])))
            assert sim >= threshold, f"{profile}: track {tid} spans shots {order}; shot {s} scores {sim:.3f} " \
                                     f"against its first (threshold at FAR 1e-2: {threshold:.3f})"
    print(f"{profile}: {len(segments)} tracks, {spanning} come back across a cut, all as the same person")
    fw.close()
