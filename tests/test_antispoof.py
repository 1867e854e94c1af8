"""MiniFASNet anti-spoofing and the liveness evaluation, on real models and real data."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import DATA, MODELS
from facewise.eval.liveness import apcer_bpcer, equal_error_rate, evaluate_liveness
from facewise.models.attributes.antispoof import MiniFASNet, silentface_crop_box

V2 = MODELS / "antispoof" / "2.7_80x80_MiniFASNetV2.onnx"
V1SE = MODELS / "antispoof" / "4_0_0_80x80_MiniFASNetV1SE.onnx"
YUNET = MODELS / "detection" / "face_detection_yunet_2023mar.onnx"
SAMPLES = DATA / "liveness" / "silentface_samples" / "images" / "sample"
APFOL = DATA / "liveness" / "apfol" / "dataset"

# Full apfol set (214 real, 617 fake), every crop resized to 224x224, YuNet boxes, threshold 0.5:
# APCER 0.032, BPCER 0.238, ACER 0.135; EER 0.131 (threshold 0.419).  The floors leave margin for the
# 60 + 60 subsample (over 300 random subsamples the worst ACER was 0.20, the worst EER 0.22).
ACER_FLOOR = 0.25
EER_FLOOR = 0.25

needs_models = pytest.mark.skipif(
    not (V2.is_file() and V1SE.is_file() and YUNET.is_file()), reason="anti-spoofing models not found"
)


@pytest.fixture(scope="module")
def model() -> MiniFASNet:
    return MiniFASNet(V2, V1SE, threads=2)


def yunet_boxes(image_rgb: np.ndarray) -> np.ndarray:
    """YuNet faces as ``[N, 4]`` (x1, y1, x2, y2) boxes in the image's pixels."""
    h, w = image_rgb.shape[:2]
    det = cv2.FaceDetectorYN.create(str(YUNET), "", (w, h), 0.6)
    det.setInputSize((w, h))
    _, faces = det.detect(cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR))
    if faces is None:
        return np.zeros((0, 4))
    return np.c_[faces[:, 0], faces[:, 1], faces[:, 0] + faces[:, 2], faces[:, 1] + faces[:, 3]]


def load_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path))
    assert bgr is not None, path
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


# ------------------------------------------------------------------------------------- pure logic


def test_crop_box_inside_image_is_scaled_around_centre() -> None:
    # 40x40 box centred at (100, 100) in a 400x400 image, scale 2.7 -> 108x108 around the centre.
    assert silentface_crop_box(400, 400, (80, 80, 120, 120), 2.7) == (46, 46, 154, 154)


def test_crop_box_is_shifted_back_inside() -> None:
    left, top, right, bottom = silentface_crop_box(400, 300, (0, 250, 40, 290), 4.0)
    assert (left, top) == (0, 299 - 160)
    assert (right, bottom) == (160, 299)


def test_crop_box_scale_reduced_for_big_face() -> None:
    # A 100-wide face in a 150-wide image: scale capped at 149/100, crop spans the whole width.
    left, top, right, bottom = silentface_crop_box(150, 400, (20, 100, 120, 200), 4.0)
    assert (left, right) == (0, 149)
    assert bottom - top == 149


def test_metrics() -> None:
    real = np.array([0.9, 0.8, 0.7, 0.3])
    fake = np.array([0.1, 0.2, 0.6, 0.05])
    apcer, bpcer, acer = apcer_bpcer(real, fake, 0.5)
    assert apcer == pytest.approx(0.25) and bpcer == pytest.approx(0.25) and acer == pytest.approx(0.25)
    eer, thr = equal_error_rate(real, fake)
    assert eer == pytest.approx(0.25)
    a, b, _ = apcer_bpcer(real, fake, thr)
    assert a == pytest.approx(b)
    assert equal_error_rate(np.array([0.9, 0.8]), np.array([0.1, 0.2]))[0] == 0.0
    assert equal_error_rate(np.array([0.1, 0.2]), np.array([0.9, 0.8]))[0] == 1.0


# ------------------------------------------------------------------------------------- real models


@needs_models
@pytest.mark.skipif(not SAMPLES.is_dir(), reason="silentface samples not found")
@pytest.mark.parametrize(
    ("name", "live"), [("image_T1.jpg", True), ("image_F1.jpg", False), ("image_F2.jpg", False)]
)
def test_silentface_samples(model: MiniFASNet, name: str, live: bool) -> None:
    rgb = load_rgb(SAMPLES / name)
    boxes = yunet_boxes(rgb)
    assert len(boxes) >= 1
    box = boxes[np.argmax((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))]
    scores = model.live_scores(rgb, box[None])
    assert scores.shape == (1,)
    assert (scores[0] > 0.5) == live, f"{name}: P(live) = {scores[0]:.3f}"


@needs_models
@pytest.mark.skipif(not SAMPLES.is_dir(), reason="silentface samples not found")
def test_batched_scores_match_single(model: MiniFASNet) -> None:
    rgb = load_rgb(SAMPLES / "image_T1.jpg")
    box = yunet_boxes(rgb)[0]
    shifted = box + np.array([5.0, -3.0, 5.0, -3.0])
    batch = model.live_scores(rgb, np.stack([box, shifted]))
    single = np.concatenate([model.live_scores(rgb, box[None]), model.live_scores(rgb, shifted[None])])
    np.testing.assert_allclose(batch, single, atol=1e-5)
    assert model.live_scores(rgb, np.zeros((0, 4))).shape == (0,)
    probs = model.class_probs(rgb, box[None])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


@needs_models
@pytest.mark.skipif(not APFOL.is_dir(), reason="apfol data not found")
def test_apfol_subsample(model: MiniFASNet, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for label in ("real", "fake"):
        files = sorted((APFOL / label).glob("*.png"))
        (tmp_path / label).mkdir()
        for i in sorted(rng.choice(len(files), size=60, replace=False)):
            dst = tmp_path / label / files[i].name
            try:
                dst.symlink_to(files[i])
            except OSError:
                shutil.copyfile(files[i], dst)
    result = evaluate_liveness(tmp_path, model, yunet_boxes, size=224)
    assert result["n_real"] == 60 and result["n_fake"] == 60
    assert result["size"] == (224, 224)
    assert set(result["no_face"]) == {"real", "fake"}
    assert result["acer"] < ACER_FLOOR, result
    assert result["eer"] < EER_FLOOR, result
    assert 0.0 <= result["eer_threshold"] <= 1.0
