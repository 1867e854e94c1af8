"""The active challenge on shared videos and on a moved, warped photo: the table in docs/ANALYSIS.md.

    python bench/challenge.py
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from facewise.core.analysis import Analyzer
from facewise.core.challenge import ChallengePolicy, run_challenge
from facewise.core.imageio import load_image
from facewise.core.pipeline import Pipeline
from facewise.eval.challenge import photo_attack_frames, video_frames

DATA = Path(os.environ.get("FACEWISE_DATA", "../shared/data"))
REAL = DATA / "liveness/apfol/videos/real2.webm"  # a webcam clip: the head turns left and right
REPLAY = DATA / "liveness/apfol/videos/fake2.webm"  # the same kind of clip replayed on a screen
STILL = DATA / "video/misc/huimiang_1543684773.avi"  # a webcam clip of a still, frontal face
PHOTO = DATA / "video/face_recognition_examples/examples/knn_examples/train/biden/biden.jpg"

CASES = [
    ("turning head", REAL, "left,right", True), ("turning head", REAL, "right,left", True),
    ("turning head", REAL, "closer,left", False), ("turning head", REAL, "up", False),
    ("still face", STILL, "left", False), ("still face", STILL, "right", False),
    ("screen replay of a turning head", REPLAY, "left,right", False),
    ("photo moved, tilted, warped", PHOTO, "left,right", False),
    ("photo moved, tilted, warped", PHOTO, "right,left", False),
    ("photo moved, tilted, warped", PHOTO, "closer", True),  # why every random challenge includes a turn
]


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    pipe, analyzer = Pipeline("fast").load(), Analyzer()
    rows = ["| clip | steps asked | expected | result | steps seen | reason |", "|---|---|---|---|---|---|"]
    for name, path, steps, expect in CASES:
        frames = (photo_attack_frames(load_image(path).pixels) if path == PHOTO else video_frames(path, 2))
        res = run_challenge(frames, steps.split(","), pipe, analyzer, ChallengePolicy())
        ok = "as expected" if res["passed"] == expect else "**WRONG**"
        rows.append(f"| {name} | {steps} | {'pass' if expect else 'fail'} | "
                    f"{'pass' if res['passed'] else 'fail'} ({ok}) | {','.join(d['step'] for d in res['done']) or '–'} "
                    f"| {res['reason'] or '–'} |")
    logging.info("\n%s", "\n".join(rows))


if __name__ == "__main__":
    main()
