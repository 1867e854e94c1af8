"""FSA-Net head pose and the landmark-based fallback, on real models and LFW images."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import DATA, MODELS
from facewise.models.attributes.headpose import FSANet, pose_from_landmarks

FSA_1X1 = MODELS / "headpose" / "fsanet-1x1-iter-688590.onnx"
FSA_VAR = MODELS / "headpose" / "fsanet-var-iter-688590.onnx"
YUNET = MODELS / "detection" / "face_detection_yunet_2023mar.onnx"
LFW = DATA / "lfw" / "images"

# Found by scanning all of LFW with YuNet + FSA-Net; both methods agree on these.
FRONTAL = LFW / "AJ_Lamas" / "AJ_Lamas_0001.jpg"  # FSA-Net yaw ~ -3, landmarks ~ -5
TURNED_POSITIVE = LFW / "Franz_Muentefering" / "Franz_Muentefering_0003.jpg"  # faces image-left, ~ +58
TURNED_NEGATIVE = LFW / "Brendan_Hansen" / "Brendan_Hansen_0002.jpg"  # faces image-right, ~ -40

needs_models = pytest.mark.skipif(
    not (FSA_1X1.is_file() and FSA_VAR.is_file() and YUNET.is_file()), reason="head-pose models not found"
)
needs_lfw = pytest.mark.skipif(not LFW.is_dir(), reason="LFW images not found")


@pytest.fixture(scope="module")
def fsanet() -> FSANet:
    return FSANet(FSA_1X1, FSA_VAR, threads=2)


def load_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path))
    assert bgr is not None, path
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def detect(image_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Largest YuNet face: box (x1, y1, x2, y2) and landmarks [5, 2] (image-left eye first)."""
    h, w = image_rgb.shape[:2]
    det = cv2.FaceDetectorYN.create(str(YUNET), "", (w, h), 0.6)
    det.setInputSize((w, h))
    _, faces = det.detect(cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR))
    assert faces is not None and len(faces) > 0
    f = faces[int(np.argmax(faces[:, 2] * faces[:, 3]))]
    box = np.array([f[0], f[1], f[0] + f[2], f[1] + f[3]], dtype=np.float64)
    return box, f[4:14].reshape(5, 2).astype(np.float64)


def mirror_landmarks(lm: np.ndarray, width: int) -> np.ndarray:
    out = lm.copy()
    out[:, 0] = width - lm[:, 0]
    return out[[1, 0, 2, 4, 3]]


# ------------------------------------------------------------------------------------- landmarks only


def test_landmarks_frontal_template_is_near_zero() -> None:
    # ArcFace 112x112 template: a frontal, upright face.
    template = np.array([[38.29, 51.70], [73.53, 51.50], [56.03, 71.74], [41.55, 92.37], [70.73, 92.20]])
    yaw, pitch, roll = pose_from_landmarks(template)
    assert abs(yaw) < 5 and abs(pitch) < 10 and abs(roll) < 2


def test_landmarks_signs() -> None:
    base = np.array([[40.0, 50.0], [72.0, 50.0], [56.0, 68.0], [43.0, 84.0], [69.0, 84.0]])
    nose_left = base.copy()
    nose_left[2, 0] -= 10  # nose towards the image-left eye: face turned to the image left
    assert pose_from_landmarks(nose_left)[0] > 20
    left_eye_up = base.copy()
    left_eye_up[0, 1] -= 6  # image-left eye higher
    assert pose_from_landmarks(left_eye_up)[2] > 5
    nose_up = base.copy()
    nose_up[2, 1] -= 8  # nose towards the eye line: face tilted up
    assert pose_from_landmarks(nose_up)[1] > 10


def test_landmarks_mirror_is_exactly_antisymmetric() -> None:
    rng = np.random.default_rng(0)
    base = np.array([[40.0, 50.0], [72.0, 50.0], [56.0, 68.0], [43.0, 84.0], [69.0, 84.0]])
    for _ in range(20):
        lm = base + rng.normal(0, 3, size=base.shape)
        yaw, pitch, roll = pose_from_landmarks(lm)
        yaw_m, pitch_m, roll_m = pose_from_landmarks(mirror_landmarks(lm, 112))
        assert yaw_m == pytest.approx(-yaw, abs=1e-6)
        assert roll_m == pytest.approx(-roll, abs=1e-6)
        assert pitch_m == pytest.approx(pitch, abs=1e-6)


# ------------------------------------------------------------------------------------- real images


@needs_models
@needs_lfw
def test_frontal(fsanet: FSANet) -> None:
    rgb = load_rgb(FRONTAL)
    box, lm = detect(rgb)
    pose = fsanet.estimate(rgb, box[None])
    assert pose.shape == (1, 3) and pose.dtype == np.float32
    assert abs(pose[0, 0]) < 20
    assert abs(pose_from_landmarks(lm)[0]) < 20


@needs_models
@needs_lfw
@pytest.mark.parametrize("path", [FRONTAL, TURNED_POSITIVE], ids=["frontal", "turned"])
def test_mirror_flips_yaw_and_roll(fsanet: FSANet, path: Path) -> None:
    rgb = load_rgb(path)
    mirrored = np.ascontiguousarray(rgb[:, ::-1])
    width = rgb.shape[1]
    box, lm = detect(rgb)
    box_m, lm_m = detect(mirrored)  # detected afresh on the mirrored image

    yaw, _, roll = fsanet.estimate(rgb, box[None])[0]
    yaw_m, _, roll_m = fsanet.estimate(mirrored, box_m[None])[0]
    assert abs(yaw + yaw_m) < 5 and abs(roll + roll_m) < 5, (yaw, yaw_m, roll, roll_m)
    # With the exactly mirrored box the crop is the exact mirror and flip-averaging makes it exact.
    exact = np.array([width - box[2], box[1], width - box[0], box[3]])
    yaw_x, _, roll_x = fsanet.estimate(mirrored, exact[None])[0]
    assert abs(yaw + yaw_x) < 0.1 and abs(roll + roll_x) < 0.1

    lyaw, _, lroll = pose_from_landmarks(lm)
    lyaw_x, _, lroll_x = pose_from_landmarks(mirror_landmarks(lm, width))
    assert lyaw_x == pytest.approx(-lyaw, abs=1e-6) and lroll_x == pytest.approx(-lroll, abs=1e-6)
    if path == FRONTAL:  # YuNet's own landmarks on the mirror differ by a few pixels
        lyaw_m, _, lroll_m = pose_from_landmarks(lm_m)
        assert abs(lyaw + lyaw_m) < 5 and abs(lroll + lroll_m) < 5, (lyaw, lyaw_m, lroll, lroll_m)


@needs_models
@needs_lfw
@pytest.mark.parametrize(
    ("path", "sign"), [(TURNED_POSITIVE, 1.0), (TURNED_NEGATIVE, -1.0)], ids=["pos", "neg"]
)
def test_turned_face(fsanet: FSANet, path: Path, sign: float) -> None:
    rgb = load_rgb(path)
    box, lm = detect(rgb)
    yaw = float(fsanet.estimate(rgb, box[None])[0, 0])
    lyaw = pose_from_landmarks(lm)[0]
    assert sign * yaw > 25, yaw
    assert sign * lyaw > 25, lyaw
    # and the mirrored image turns the other way
    mirrored = np.ascontiguousarray(rgb[:, ::-1])
    box_m, lm_m = detect(mirrored)
    assert -sign * float(fsanet.estimate(mirrored, box_m[None])[0, 0]) > 25
    assert -sign * pose_from_landmarks(lm_m)[0] > 25


@needs_models
@needs_lfw
def test_in_plane_rotation_sign_agrees(fsanet: FSANet) -> None:
    rgb = load_rgb(FRONTAL)
    h, w = rgb.shape[:2]
    # Negative OpenCV angle = clockwise on screen: the image-left eye goes up, roll > 0.
    rot = cv2.warpAffine(rgb, cv2.getRotationMatrix2D((w / 2, h / 2), -20, 1.0), (w, h))
    box, lm = detect(rot)
    roll = float(fsanet.estimate(rot, box[None])[0, 2])
    lroll = pose_from_landmarks(lm)[2]
    base_box, base_lm = detect(rgb)
    assert roll - float(fsanet.estimate(rgb, base_box[None])[0, 2]) > 5, roll
    assert lroll - pose_from_landmarks(base_lm)[2] > 3, lroll


@needs_models
def test_batch_and_empty(fsanet: FSANet) -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, size=(120, 160, 3), dtype=np.uint8)
    # Extra columns (a score) are ignored; a box reaching outside the image is clipped.
    boxes = np.array([[10, 10, 70, 90, 0.9], [60, 20, 190, 140, 0.8]])
    out = fsanet.estimate(img, boxes)
    assert out.shape == (2, 3) and np.all(np.isfinite(out))
    np.testing.assert_allclose(out[0], fsanet.estimate(img, boxes[:1, :4])[0], atol=1e-5)
    assert fsanet.estimate(img, np.zeros((0, 4))).shape == (0, 3)


@needs_models
def test_fsanet_is_loaded_once_for_the_pipeline_yaw_and_the_pose_attribute() -> None:
    """One loader (the model registry): a profile that takes yaw from FSA-Net and the ``pose`` attribute share it."""
    from facewise.core.analysis import Analyzer
    from facewise.core.pipeline import Pipeline
    from facewise.models.profiles import Profile, load_profile
    from facewise.models.registry import load_headpose

    prof = Profile.from_dict(load_profile("default").to_dict() | {"yaw": "fsanet"})
    shared = Pipeline(prof).headpose
    assert isinstance(shared, FSANet) and shared is Analyzer().headpose is load_headpose("fsanet")
