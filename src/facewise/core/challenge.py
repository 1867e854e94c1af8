"""Active liveness: a random short sequence of head motions, checked on the tracked face within a time limit.

Steps (in image terms, as the camera sees the face; FSA-Net's sign convention):

* ``left``   -- the face turns toward the image's left: yaw >= ``yaw_deg`` *and* the nose moves toward
  that side between the eyes and the mouth (``nose_shift`` >= ``shift``);
* ``right``  -- the same to the image's right (yaw <= -``yaw_deg``, ``nose_shift`` <= -``shift``);
* ``up``     -- chin up: pitch at least ``pitch_deg`` above the first frames' pitch;
* ``closer`` -- the face box at least ``closer_ratio`` times the first frames' width.

``nose_shift`` is the nose tip's barycentric position between the two eyes in the triangle
(eye, eye, mouth centre). Any affine map of a flat picture -- moving, tilting, scaling, mostly even a
perspective warp -- leaves it unchanged, while a real head turn moves the protruding nose toward
one eye. A photo turned in front of the camera therefore fails the turn steps twice over: the
pose model sees a frontal face, and the geometry stays flat. ``closer`` alone cannot tell a photo
brought closer from a face; the passive score (mean P(live) over the tracked frames) must also pass.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from facewise.errors import ModelNotFoundError, ValidationError

log = logging.getLogger(__name__)

STEPS: tuple[str, ...] = ("left", "right", "up", "closer")
# what a person is asked to do for each step (the CLI's prompts, the web page's)
PROMPTS: dict[str, str] = {"left": "turn your head so the camera sees it turn to the image's left",
                           "right": "turn your head so the camera sees it turn to the image's right",
                           "up": "look up", "closer": "come closer to the camera"}


@dataclass(frozen=True)
class ChallengePolicy:
    yaw_deg: float = 20.0
    shift: float = 0.2
    pitch_deg: float = 15.0
    closer_ratio: float = 1.2
    time_limit_s: float = 10.0
    baseline_frames: int = 3
    hold_frames: int = 2  # a step counts when met on this many tracked frames in a row
    min_live: float | None = None  # mean passive P(live) required; None = the analyzer's threshold
    # a face box whose centre moves more than max_jump widths between frames -- or, between frames further apart
    # (a web page's camera sends a few frames a second), more than max_speed widths per second -- is a new face
    max_jump: float = 0.5
    max_speed: float = 2.5


def random_steps(n: int = 2, rng: random.Random | None = None) -> list[str]:
    """``n`` distinct steps in random order, always with at least one turn (a photo can come closer or tilt).

    The default rng is the operating system's (``random.SystemRandom``), so a sequence cannot be predicted.
    """
    if not 1 <= n <= len(STEPS):
        raise ValidationError(f"a challenge has 1 to {len(STEPS)} steps, not {n}")
    rng = rng or random.SystemRandom()
    while True:
        steps = rng.sample(list(STEPS), n)
        if {"left", "right"} & set(steps):
            return steps


def parse_steps(text: str) -> list[str]:
    steps = [s.strip().lower() for s in text.split(",") if s.strip()]
    bad = [s for s in steps if s not in STEPS]
    if not steps or bad:
        raise ValidationError(f"challenge steps must be a comma-separated list of {', '.join(STEPS)}; got {text!r}")
    return steps


def nose_shift(landmarks5: np.ndarray) -> float:
    """Barycentric position of the nose between the eyes (0 frontal; > 0 toward the image-left eye)."""
    pts = np.asarray(landmarks5, dtype=np.float64).reshape(5, 2)
    mouth = (pts[3] + pts[4]) / 2
    basis = np.column_stack([pts[0] - mouth, pts[1] - mouth])
    if abs(np.linalg.det(basis)) < 1e-6:
        return 0.0
    a, b = np.linalg.solve(basis, pts[2] - mouth)
    return float(a - b)


@dataclass
class Observation:
    t: float
    box: tuple[float, float, float, float]
    yaw: float
    pitch: float
    shift: float
    live: float | None = None

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]


@dataclass
class ChallengeChecker:
    """Feed it one :class:`Observation` of the tracked face per frame; it walks the steps in order."""

    steps: Sequence[str]
    policy: ChallengePolicy = field(default_factory=ChallengePolicy)
    done: list[dict[str, Any]] = field(default_factory=list)
    frames: int = 0
    lost: int = 0
    reason: str = ""
    _base: list[Observation] = field(default_factory=list)
    _t0: float | None = None
    _prev: Observation | None = None
    _lives: list[float] = field(default_factory=list)
    _held: int = 0

    def __post_init__(self) -> None:
        bad = [s for s in self.steps if s not in STEPS]
        if not self.steps or bad:
            raise ValidationError(f"unknown challenge steps {bad or '(none)'}; known: {', '.join(STEPS)}")

    @property
    def current(self) -> str | None:
        return self.steps[len(self.done)] if len(self.done) < len(self.steps) else None

    @property
    def finished(self) -> bool:
        return self.current is None or bool(self.reason)

    def _met(self, step: str, o: Observation) -> bool:
        p, base = self.policy, self._base
        if step == "left":
            return o.yaw >= p.yaw_deg and o.shift >= p.shift
        if step == "right":
            return o.yaw <= -p.yaw_deg and o.shift <= -p.shift
        if step == "up":
            return o.pitch - float(np.median([b.pitch for b in base])) >= p.pitch_deg
        return o.width >= p.closer_ratio * float(np.median([b.width for b in base]))

    def check_time(self, t: float) -> bool:
        """Ends the challenge when ``t`` is past its time limit (counted from the first frame); True if ended."""
        if not self.finished and self._t0 is not None and t - self._t0 > self.policy.time_limit_s:
            self.reason = f"time limit {self.policy.time_limit_s:g} s passed during step {self.current!r}"
        return bool(self.reason)

    def update(self, o: Observation | None, t: float) -> None:
        """One frame: ``o`` is the tracked face (None when no face was found), ``t`` seconds from the start."""
        if self.finished:
            return
        if self._t0 is None:
            self._t0 = t
        if self.check_time(t):
            return
        if o is None:
            self.lost += 1
            return
        if self._prev is not None:
            jump = np.hypot((o.box[0] + o.box[2] - self._prev.box[0] - self._prev.box[2]) / 2,
                            (o.box[1] + o.box[3] - self._prev.box[1] - self._prev.box[3]) / 2)
            allowed = max(self.policy.max_jump, self.policy.max_speed * (o.t - self._prev.t))
            if jump > allowed * max(self._prev.width, 1.0):
                self.reason = "the tracked face jumped (another face or a cut)"
                return
        self._prev = o
        self.frames += 1
        if o.live is not None:
            self._lives.append(o.live)
        if len(self._base) < self.policy.baseline_frames:
            self._base.append(o)
            return
        step = self.current
        self._held = self._held + 1 if step is not None and self._met(step, o) else 0
        if step is not None and self._held >= self.policy.hold_frames:
            self._held = 0
            self.done.append({"step": step, "t": round(t - self._t0, 2), "yaw": round(o.yaw, 1),
                              "pitch": round(o.pitch, 1), "shift": round(o.shift, 3),
                              "width": round(o.width, 1)})

    def result(self, live_threshold: float | None = None) -> dict[str, Any]:
        thr = self.policy.min_live if self.policy.min_live is not None else live_threshold
        live = float(np.mean(self._lives)) if self._lives else None
        steps_ok = len(self.done) == len(self.steps) and not self.reason
        passive_ok = live is None or thr is None or live >= thr
        reason = self.reason
        if not reason and not steps_ok:
            reason = f"step {self.current!r} not seen" + (" (no face tracked)" if not self.frames else "")
        if steps_ok and not passive_ok:
            reason = f"motions matched but passive P(live) {live:.2f} < {thr:.2f}"
        return {"passed": steps_ok and passive_ok, "steps": list(self.steps), "done": self.done,
                "reason": reason, "frames": self.frames, "frames_without_face": self.lost,
                "passive_live": None if live is None else round(live, 4), "passive_threshold": thr}


def largest(boxes: np.ndarray) -> int | None:
    """Index of the largest of N x 4 boxes (x1, y1, x2, y2): the face a track starts on; ``None`` for no box."""
    if len(boxes) == 0:
        return None
    return int(np.argmax((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])))


class ChallengeRun:
    """One challenge fed frame by frame -- a camera, a video file or a web page's frames -- on the tracked face.

    The tracked face is the detection nearest the previous one (the largest at first). Each frame gives
    the head-pose model's yaw and pitch, the nose shift and (every ``live_every``-th tracked frame, unless the
    caller scored it already) the passive P(live) to the :class:`ChallengeChecker`.
    """

    def __init__(self, steps: Sequence[str], analyzer: Any, policy: ChallengePolicy | None = None,
                 live_every: int = 5) -> None:
        if analyzer.headpose is None:
            raise ModelNotFoundError("the active challenge needs the head-pose model fsanet on the model path")
        self.policy = policy or ChallengePolicy()
        self.checker = ChallengeChecker(steps, self.policy)
        self.analyzer = analyzer
        self.live_every = max(1, live_every)
        self._prev: np.ndarray | None = None

    @property
    def current(self) -> str | None:
        return self.checker.current

    @property
    def finished(self) -> bool:
        return self.checker.finished

    def track(self, boxes: np.ndarray) -> int | None:
        """Which of this frame's boxes (N x 4: x1, y1, x2, y2) is the tracked face (``None``: no box)."""
        if self._prev is None or len(boxes) == 0:
            return largest(boxes)
        p = self._prev
        return int(np.argmin(np.hypot(boxes[:, 0] + boxes[:, 2] - p[0] - p[2],
                                      boxes[:, 1] + boxes[:, 3] - p[1] - p[3])))

    def observe(self, t: float, rgb: np.ndarray, boxes: np.ndarray, landmarks: Sequence[np.ndarray],
                live: float | None = None) -> int | None:
        """One frame at ``t`` seconds: its face boxes and five-point landmarks (the same order). ``live``: the
        tracked face's P(live) when the caller has scored it (else it is scored here every ``live_every``-th
        tracked frame). Returns the index of the tracked face, or ``None``."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        k = self.track(boxes)
        if k is None:
            self.checker.update(None, t)
            return None
        self._prev = boxes[k]  # (followed after the challenge ends too: the session keeps naming this face)
        if self.checker.finished:
            return k
        yaw, pitch, _ = self.analyzer.headpose.estimate(rgb, boxes[k : k + 1])[0]
        live_model = self.analyzer.live_model
        if live is None and live_model is not None and self.checker.frames % self.live_every == 0:
            live = float(live_model.live_scores(rgb, boxes[k : k + 1])[0])
        x1, y1, x2, y2 = (float(v) for v in boxes[k])
        self.checker.update(Observation(t, (x1, y1, x2, y2), float(yaw), float(pitch), nose_shift(landmarks[k]),
                                        live), t)
        return k

    def status(self, now: float | None = None) -> dict[str, Any]:
        """Where the challenge stands: the step asked for now and its prompt, the steps done; once finished also
        passed and the reason. ``now`` (seconds, the frames' clock) ends it when its time limit has passed."""
        if now is not None:
            self.checker.check_time(now)
        res = self.result()
        if not self.finished:
            res.update(passed=None, reason="")
        current = None if self.finished else self.current
        return {**res, "current": current, "prompt": PROMPTS[current] if current else None,
                "finished": self.finished, "time_limit_s": self.policy.time_limit_s}

    def result(self) -> dict[str, Any]:
        """Passed or not, the steps seen, the reason and the passive score (:meth:`ChallengeChecker.result`)."""
        thr = self.analyzer.live_threshold()[0] if self.analyzer.live_model is not None else None
        return self.checker.result(thr)


def run_challenge(frames: Iterable[tuple[float, np.ndarray]], steps: Sequence[str], pipeline: Any, analyzer: Any,
                  policy: ChallengePolicy | None = None, live_every: int = 5,
                  on_step: Callable[[str | None], None] | None = None) -> dict[str, Any]:
    """Run a challenge over ``(t seconds, RGB frame)`` pairs with a pipeline's detector and the head-pose model.

    Every ``live_every``-th tracked frame is also scored by the passive liveness model. ``on_step`` hears
    each step as it becomes the one asked for (``None`` at the end), e.g. to prompt the user.
    """
    run = ChallengeRun(steps, analyzer, policy, live_every)
    asked = run.current
    if on_step is not None:
        on_step(asked)
    for t, rgb in frames:
        dets = pipeline.detector.detect(rgb)
        boxes = np.array([[d.box.x1, d.box.y1, d.box.x2, d.box.y2] for d in dets]).reshape(-1, 4)
        run.observe(t, rgb, boxes, [d.landmarks for d in dets])
        if on_step is not None and run.current != asked:
            asked = run.current
            on_step(asked)
        if run.finished:
            break
    return run.result()
