"""Active liveness challenge: real webcam turns pass when asked for, fail otherwise; a warped photo fails."""

from __future__ import annotations

import os
import random
import subprocess
import sys

import numpy as np
import pytest

from conftest import DATA, MODELS
from facewise.core.analysis import Analyzer
from facewise.core.challenge import (
    STEPS,
    ChallengeChecker,
    ChallengePolicy,
    Observation,
    nose_shift,
    parse_steps,
    random_steps,
    run_challenge,
)
from facewise.core.imageio import load_image
from facewise.errors import FacewiseError
from facewise.eval.challenge import photo_attack_frames, video_frames

TURNS = DATA / "liveness" / "apfol" / "videos" / "real2.webm"
REPLAY = DATA / "liveness" / "apfol" / "videos" / "fake2.webm"
STILL = DATA / "video" / "misc" / "huimiang_1543684773.avi"
PHOTO = DATA / "video" / "face_recognition_examples" / "examples" / "knn_examples" / "train" / "biden" / "biden.jpg"

needs_data = pytest.mark.skipif(
    not (TURNS.is_file() and STILL.is_file() and (MODELS / "headpose").is_dir()),
    reason="challenge videos or the head-pose model not found")


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    return Analyzer()


def test_random_steps_always_include_a_turn_and_bad_steps_are_refused() -> None:
    rng = random.Random(0)
    for n in (1, 2, 3):
        for _ in range(50):
            steps = random_steps(n, rng)
            assert len(set(steps)) == n and set(steps) <= set(STEPS) and {"left", "right"} & set(steps)
    assert parse_steps(" Left, closer ") == ["left", "closer"]
    with pytest.raises(FacewiseError, match="comma-separated"):
        parse_steps("left,jump")
    with pytest.raises(FacewiseError):
        random_steps(0)


@needs_data
def test_nose_shift_is_flat_under_any_affine_map_of_a_picture(fast_pipeline) -> None:
    """A picture moved, scaled, sheared or tilted keeps its nose where it was between the eyes."""
    _, dets = fast_pipeline.detect(PHOTO)
    lm = dets[0].landmarks.astype(np.float64)
    base = nose_shift(lm)
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = np.eye(2) + rng.normal(0, 0.3, (2, 2))
        moved = lm @ a.T + rng.normal(0, 50, 2)
        assert nose_shift(moved) == pytest.approx(base, abs=1e-6)


def test_checker_walks_steps_in_order_and_keeps_time() -> None:
    def obs(t: float, yaw: float = 0.0, shift: float = 0.0, width: float = 100.0) -> Observation:
        return Observation(t, (0.0, 0.0, width, width), yaw, 0.0, shift)

    c = ChallengeChecker(["left", "closer"], ChallengePolicy(time_limit_s=5, hold_frames=1))
    for i, o in enumerate([obs(0), obs(0.1), obs(0.2), obs(0.3, width=130), obs(0.4, yaw=30, shift=0.4),
                           obs(0.5, width=130)]):
        c.update(o, o.t)
        assert len(c.done) == (1 if 4 <= i < 5 else 2 if i == 5 else 0)  # closer before left does not count
    assert c.result()["passed"]
    late = ChallengeChecker(["right"], ChallengePolicy(time_limit_s=1))
    for t in (0.0, 0.5, 2.0):
        late.update(obs(t), t)
    assert not late.result()["passed"] and "time limit" in late.result()["reason"]


@needs_data
@pytest.mark.parametrize(("steps", "passes"), [(["left", "right"], True), (["closer", "left"], False)])
def test_recorded_turn_passes_only_the_matching_challenge(fast_pipeline, analyzer, steps, passes) -> None:
    res = run_challenge(video_frames(TURNS, 3), steps, fast_pipeline, analyzer)
    assert res["passed"] is passes, res
    if passes:
        assert [d["step"] for d in res["done"]] == steps and res["passive_live"] >= res["passive_threshold"]


@needs_data
def test_still_face_does_not_turn(fast_pipeline, analyzer) -> None:
    res = run_challenge(video_frames(STILL, 3), ["left"], fast_pipeline, analyzer)
    assert not res["passed"] and res["reason"] == "step 'left' not seen"


@needs_data
def test_moved_tilted_warped_photo_fails_the_turns(fast_pipeline, analyzer) -> None:
    frames = photo_attack_frames(load_image(PHOTO).pixels, seconds=6, fps=8)
    res = run_challenge(frames, ["left", "right"], fast_pipeline, analyzer)
    assert not res["passed"] and res["frames"] > 20, res


@needs_data
@pytest.mark.skipif(not REPLAY.is_file(), reason="replay video not found")
def test_replayed_turns_fail_on_the_passive_score(fast_pipeline, analyzer) -> None:
    res = run_challenge(video_frames(REPLAY, 3), ["left", "right"], fast_pipeline, analyzer)
    assert not res["passed"] and "passive" in res["reason"], res


@pytest.mark.shared("models")
def test_cli_challenge_on_a_missing_video_is_a_clear_error(tmp_path) -> None:
    r = subprocess.run([sys.executable, "-m", "facewise.cli", "challenge", str(tmp_path / "none.mp4")],
                       capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"}, timeout=120)
    assert r.returncode == 5 and "no such video file" in r.stderr and "Traceback" not in r.stderr


@needs_data
def test_cli_live_video_mode_asks_for_the_challenge(tmp_path, knn) -> None:
    """`facewise video SOURCE --live --challenge ...` (a camera index in real use): prompts as events, the result in
    the timeline, exit code 10 when the motions are not seen."""
    import json

    from facewise import FaceWise

    db = tmp_path / "g.db"
    with FaceWise(str(db), profile="fast", create=True) as fw:
        fw.enroll("biden", [knn / "train" / "biden" / "biden.jpg"])
    base = [sys.executable, "-m", "facewise.cli", "video", str(TURNS), "--db", str(db), "--stride", "3", "--no-video",
            "--out", str(tmp_path / "out"), "--json", "--live"]
    env = {**os.environ, "COLUMNS": "200"}
    ok = subprocess.run([*base, "--challenge", "left,right"], capture_output=True, text=True, env=env, timeout=300)
    assert ok.returncode == 0, ok.stderr
    lines = [json.loads(x) for x in ok.stdout.splitlines()]
    asked = [e["challenge"]["current"] for e in lines if e.get("event") == "challenge"]
    assert asked == ["left", "right", None] and lines[-1]["challenge"]["passed"] is True
    bad = subprocess.run([*base, "--challenge", "up", "--challenge-time", "3"], capture_output=True, text=True,
                         env=env, timeout=300)
    assert bad.returncode == 10, bad.stderr
    res = json.loads(bad.stdout.splitlines()[-1])["challenge"]
    assert res["passed"] is False and "time limit 3 s" in res["reason"]
