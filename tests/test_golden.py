"""Golden vectors: each profile's face vectors on three LFW faces, stored when its models last changed.

A change that leaves a profile's models and settings alone must leave its vectors alone (to 1e-4), so
galleries enrolled earlier keep matching. When a profile's models change on purpose, rewrite its rows
(``python tests/test_golden.py PROFILE ...``) in the same commit as its new calibration. OpenVINO picks
bf16 on CPUs that have it, so the stored rows are for this project's machine class.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import LFW, need

GOLDEN = Path(__file__).with_name("data") / "golden_vectors.npz"
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
        assert float(np.abs(g - w).max()) < 1e-4, f"{profile} {IMAGES[i]}: vector changed"


if __name__ == "__main__":  # rewrite the rows of the named profiles
    old = dict(np.load(GOLDEN)) if GOLDEN.exists() else {}
    for name in sys.argv[1:]:
        for i, v in enumerate(vectors(name)):
            old[f"{name}/{i}"] = v
    np.savez_compressed(GOLDEN, **old)
