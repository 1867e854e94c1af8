"""Pose/quality-aware fusion arithmetic on real profile layouts."""

from __future__ import annotations

import numpy as np
import pytest

from facewise.decision.fusion import FusionScorer
from facewise.models.profiles import Profile

PROFILE = Profile.from_dict({
    "name": "t", "detector": "yunet-2023mar",
    "embedders": [{"model": "reid-0095", "weight": 0.6}, {"model": "mobilefacenet-y1", "weight": 0.4}],
    "fusion": {"rules": [{"model": "mobilefacenet-y1", "on": "yaw", "full_until": 30, "zero_at": 60}]},
})


def profile_vector(rng: np.random.Generator, a: np.ndarray | None = None, b: np.ndarray | None = None):
    a = a if a is not None else rng.normal(size=256)
    b = b if b is not None else rng.normal(size=128)
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    return np.r_[a * np.sqrt(0.6), b * np.sqrt(0.4)].astype(np.float32), a, b


def test_frontal_pairs_score_as_the_plain_dot_product():
    rng = np.random.default_rng(0)
    s = FusionScorer(PROFILE)
    assert not s.plain
    x, xa, xb = profile_vector(rng)
    y, ya, yb = profile_vector(rng)
    got = s.scores(x, y, yaw_a=10, yaw_b=-20)[0]
    assert got == pytest.approx(float(x @ y), abs=1e-5)
    assert got == pytest.approx(0.6 * xa @ ya + 0.4 * xb @ yb, abs=1e-5)


def test_weak_model_fades_out_on_profiles():
    rng = np.random.default_rng(1)
    s = FusionScorer(PROFILE)
    x, xa, xb = profile_vector(rng)
    y, ya, yb = profile_vector(rng)
    assert s.scores(x, y, yaw_a=0, yaw_b=75)[0] == pytest.approx(float(xa @ ya), abs=1e-5)
    half = s.scores(x, y, yaw_a=-45, yaw_b=0)[0]  # y1 at half weight: 0.2 / (0.6 + 0.2)
    assert half == pytest.approx(0.75 * xa @ ya + 0.25 * xb @ yb, abs=1e-5)


def test_vectorised_pairs_match_one_by_one():
    rng = np.random.default_rng(2)
    s = FusionScorer(PROFILE)
    xs = np.stack([profile_vector(rng)[0] for _ in range(5)])
    ys = np.stack([profile_vector(rng)[0] for _ in range(5)])
    yaw = np.array([0, 35, 50, 65, 90])
    many = s.scores(xs, ys, yaw, 0.0)
    one = [s.scores(xs[i], ys[i], yaw[i], 0.0)[0] for i in range(5)]
    assert np.allclose(many, one)


SHIFTED = Profile.from_dict({
    "name": "t3", "detector": "yunet-2023mar",
    "embedders": [{"model": "reid-0095", "weight": 0.4, "shift": 0.0, "scale": 0.1},
                  {"model": "dlib-resnet-v1", "weight": 0.6, "shift": 0.84, "scale": 0.035}],
    "fusion": {"rules": [{"model": "dlib-resnet-v1", "on": "yaw", "full_until": 30, "zero_at": 60}]},
})


def test_shift_and_scale_fuse_in_normalised_units():
    """Weights apply to (cos - shift) / scale; frontal pairs still score the plain dot product, and fading a
    model on another scale maps the survivor back so strangers keep the same score distribution."""
    a_r, a_d = 0.4 / 0.1, 0.6 / 0.035  # effective cosine weights before renormalising
    w_r, w_d = a_r / (a_r + a_d), a_d / (a_r + a_d)
    assert [e.weight for e in SHIFTED.embedders] == pytest.approx([w_r, w_d])
    back = Profile.from_dict(SHIFTED.to_dict())  # the JSON round-trips to the same weights
    assert back.embedders == SHIFTED.embedders and back.signature == SHIFTED.signature
    s = FusionScorer(SHIFTED)
    rng = np.random.default_rng(3)
    xr, yr = (v / np.linalg.norm(v) for v in rng.normal(size=(2, 256)))
    xd, yd = (v / np.linalg.norm(v) for v in rng.normal(size=(2, 128)))
    x = np.r_[xr * np.sqrt(w_r), xd * np.sqrt(w_d)].astype(np.float32)
    y = np.r_[yr * np.sqrt(w_r), yd * np.sqrt(w_d)].astype(np.float32)
    assert s.scores(x, y, 0, 10)[0] == pytest.approx(float(x @ y), abs=1e-5)
    # dlib faded out: only reid-0095 speaks, in the frontal score's units around the strangers' mean
    strangers_mean = w_d * 0.84
    k = w_r * 0.1 + w_d * 0.035  # normalised units -> this profile's cosine units
    want = strangers_mean + k * (xr @ yr - 0.0) / 0.1  # reid-0095's normalised score, weight 1
    assert s.scores(x, y, 0, 80)[0] == pytest.approx(want, abs=1e-5)
