"""Golden vectors: each profile's face vectors on three LFW faces, stored when its models last changed.

A change that leaves a profile's models and settings alone must leave its vectors where they were, so
galleries enrolled earlier keep matching: a stored row and a fresh vector must score within ``SCORE_TOLERANCE``
of a perfect match (1 - cosine). That is a score tolerance, not a bit-for-bit one: runtimes and image libraries
move vectors by float rounding from release to release (OpenVINO 2026.4 and OpenCV 5 moved `fast`'s by up to
4.3e-4 in cosine, 5.9e-3 in one coordinate, against rows written on 2025 releases), far below what moves a
decision, while a changed model, alignment or setting moves them by 1e-2 and more. When a profile's models
change on purpose, rewrite its rows (``python tests/test_golden.py PROFILE ...``) in the same commit as its new
calibration. OpenVINO picks bf16 on CPUs that have it, so the stored rows are for this project's machine class.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import LFW, need

GOLDEN = Path(__file__).with_name("data") / "golden_vectors.npz"
SCORE_TOLERANCE = 1e-3  # 1 - cosine between a stored row and a fresh vector
IMAGES = ["Aaron_Peirsol/Aaron_Peirsol_0001.jpg", "Abdullah_Gul/Abdullah_Gul_0014.jpg", "Zico/Zico_0003.jpg"]


def vectors(profile: str) -> list[np.ndarray]:
    from facewise.core.imageio import load_image
    from facewise.core.pipeline import Pipeline

    pipe = Pipeline(profile).load()
    return [pipe.analyze(load_image(LFW / "images" / rel))[1][0].embedding for rel in IMAGES]


@pytest.mark.parametrize("profile", ["default", "fast", "balanced", "accurate", "accurate-commercial"])
def test_profile_vectors_match_the_golden_ones(profile, models_dir):
    from facewise.models.profiles import load_profile

    need(LFW)
    if not load_profile(profile).available():
        pytest.skip(f"models of {profile} not on the model path")
    with np.load(GOLDEN) as z:
        want = [z[f"{profile}/{i}"] for i in range(len(IMAGES))]
    got = vectors(profile)
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g.shape == w.shape, f"{profile} {IMAGES[i]}: dim {g.shape} != {w.shape}"
        drift = 1.0 - float(g @ w) / float(np.linalg.norm(g) * np.linalg.norm(w))
        assert drift < SCORE_TOLERANCE, f"{profile} {IMAGES[i]}: vector changed (1 - cosine {drift:.2e})"


if __name__ == "__main__":  # rewrite the rows of the named profiles
    old = dict(np.load(GOLDEN)) if GOLDEN.exists() else {}
    for name in sys.argv[1:]:
        for i, v in enumerate(vectors(name)):
            old[f"{name}/{i}"] = v
    np.savez_compressed(GOLDEN, **old)
