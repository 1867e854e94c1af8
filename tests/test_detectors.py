"""Detectors on real photos: YuNet on OpenVINO against OpenCV's own wrapper, and the retry cascade on
real turned faces (Color FERET profiles)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import DATA, KNN, LFW, MODELS, need

FERET = DATA / "pose" / "feret" / "images"
YUNET = MODELS / "detection" / "face_detection_yunet_2023mar.onnx"


def test_yunet_on_openvino_matches_opencv_on_real_photos():
    from facewise.core.imageio import load_image
    from facewise.models.detectors.yunet import YuNetDetector
    from facewise.models.detectors.yunet_ov import YuNetOpenVino

    need(YUNET), need(LFW), need(KNN)
    files = sorted((LFW / "images").glob("*/*.jpg"))[::700] + sorted((KNN / "test").glob("*.jpg"))
    for min_side in (0, 320):
        ref, ov = YuNetDetector(YUNET, min_side=min_side), YuNetOpenVino(YUNET, min_side=min_side, threads=1)
        n = 0
        for f in files:
            px = load_image(f).pixels
            a, b = ref.detect(px), ov.detect(px)
            assert len(a) == len(b), f.name
            for x, y in zip(a, b, strict=True):
                assert np.abs(x.landmarks - y.landmarks).max() < 1e-3, f.name
                assert np.allclose(x.box.as_list(), y.box.as_list(), atol=1e-3) and abs(x.score - y.score) < 1e-4
                n += 1
        assert n >= len(files)  # every photo has at least one face


@pytest.mark.parametrize(("cached", "promote", "n"), [(2, 1, 24), (8, 3, 80)])
def test_yunet_on_openvino_holds_on_many_image_sizes_in_one_process(cached, promote, n):
    """Eighty image sizes in one detector, with garbage collection between them (the repro of the shape-cache
    crash at the 79th size: a request cached by ``id()`` of an evicted compiled model was reused for another
    shape). (2, 1)
    compiles and evicts on nearly every image; (8, 3) is the shipped policy (recurring shapes compiled, the rest
    on the dynamic model). Every answer matches OpenCV's own wrapper."""
    import gc

    from PIL import Image

    from facewise.models.detectors.yunet import YuNetDetector
    from facewise.models.detectors.yunet_ov import YuNetOpenVino

    need(YUNET), need(LFW)
    face = Image.open(LFW / "images" / "Zico" / "Zico_0003.jpg").convert("RGB")
    ref = YuNetDetector(YUNET)
    ov = YuNetOpenVino(YUNET, threads=1, cached_shapes=cached, promote_after=promote)
    found = 0
    for i in range(n):
        px = np.asarray(face.resize((300 + i * 37 % 900, 260 + (i * 53) % 400)))
        a, b = ref.detect(px), ov.detect(px)
        assert len(a) == len(b), (i, px.shape)
        found += len(a)
        for x, y in zip(a, b, strict=True):
            assert np.allclose(x.box.as_list(), y.box.as_list(), atol=1e-2), (i, px.shape)
        gc.collect()
    assert found >= n * 3 // 4
    assert len(ov._compiled) <= cached


@pytest.fixture(scope="module")
def tight_profile():
    """A real full profile (FERET 00505_pr) cropped to exactly the face box YuNet gives on the full photo:
    the first pass misses it, the ear and chin touch the border."""
    from facewise.core.imageio import load_image
    from facewise.models.detectors.yunet_ov import YuNetOpenVino

    px = load_image(need(FERET / "00505" / "00505_pr.jpg")).pixels
    b = YuNetOpenVino(need(YUNET), threads=1).detect(px)[0].box
    return np.ascontiguousarray(px[int(b.y1) : int(b.y2), int(b.x1) : int(b.x2)])


def test_cascade_finds_a_cropped_profile_the_first_pass_misses(tight_profile):
    from facewise.models.detectors.yunet_ov import YuNetOpenVino

    assert YuNetOpenVino(YUNET, threads=1).detect(tight_profile) == []
    found = YuNetOpenVino(YUNET, retry=True, threads=1).detect(tight_profile)
    assert found and found[0].found_by == "padded"
    h, w = tight_profile.shape[:2]
    box = found[0].box
    assert 0 <= box.x1 < box.x2 <= w and 0 <= box.y1 < box.y2 <= h and box.area > 0.4 * w * h
    assert found[0].landmarks[:, 0].min() > -0.1 * w and found[0].landmarks[:, 0].max() < 1.1 * w


def test_pipeline_reports_which_pass_found_each_face(tight_profile):
    from facewise.core.imageio import load_image
    from facewise.core.pipeline import Pipeline

    pipe = Pipeline("fast")
    if not pipe.profile.available():
        pytest.skip("fast's models are not on the model path")
    _, faces = pipe.analyze(tight_profile)
    assert len(faces) == 1 and faces[0].attributes["found_by"] == "padded"
    assert faces[0].to_dict()["found_by"] == "padded"
    _, faces = pipe.analyze(load_image(need(FERET / "00505" / "00505_pr.jpg")))
    assert faces and "found_by" not in faces[0].attributes  # found by the first pass


@pytest.mark.parametrize("name", ["00737_pl", "00811_pl", "00883_pl", "00907_pr"])
def test_fsanet_yaw_sees_profiles_the_landmark_rule_calls_frontal(name):
    """Real FERET full profiles whose five YuNet landmarks collapse (landmark yaw under 30 deg):
    a profile with ``"yaw": "fsanet"`` sees them turned, so the pose-aware fusion can fade."""
    from dataclasses import replace

    from facewise.core.imageio import load_image
    from facewise.core.pipeline import Pipeline
    from facewise.models.profiles import load_profile

    prof = load_profile("fast")
    if not replace(prof, yaw="fsanet").available():
        pytest.skip("fast or fsanet models are not on the model path")
    px = load_image(need(FERET / name.split("_")[0] / f"{name}.jpg")).pixels
    landmark_pipe, fsanet_pipe = Pipeline(prof), Pipeline(replace(prof, yaw="fsanet"))
    dets = landmark_pipe.detect_pixels(px)[:1]
    assert abs(landmark_pipe.yaws(px, dets)[0]) < 30
    assert abs(fsanet_pipe.yaws(px, dets)[0]) > 60
    assert "fsanet" in replace(prof, yaw="fsanet").models


def test_profile_rejects_an_unknown_yaw_source():
    from facewise.errors import FacewiseError
    from facewise.models.profiles import Profile, load_profile

    d = load_profile("fast").to_dict()
    d["yaw"] = "guess"
    with pytest.raises(FacewiseError, match="yaw must be landmarks or fsanet"):
        Profile.from_dict(d)


def test_registry_only_yuface_finds_turned_faces_dlib_hog_misses():
    """yuface (libfacedetection, BSD, weights inside the PyPI wheel) on the first 20 FERET full
    profiles: it finds every one with mouth corners where dlib's HOG finds only a few."""
    pytest.importorskip("yuface")
    from facewise.core.imageio import load_image
    from facewise.models.registry import load_detector

    files = sorted(need(FERET).glob("*/*_p[lr].jpg"))[:20]
    hog, yu = load_detector("dlib-hog"), load_detector("yuface")
    found_hog = found_yu = 0
    for f in files:
        px = load_image(f).pixels
        found_hog += bool(hog.detect(px))
        dets = yu.detect(px)
        if dets:
            found_yu += 1
            d = dets[0]
            assert d.landmarks.shape == (5, 2) and 0 < d.score <= 1
            assert d.box.x1 <= d.landmarks[:, 0].mean() <= d.box.x2
    assert found_yu == len(files) and found_hog <= len(files) // 2


def test_profile_falls_back_to_its_registry_detector_where_its_own_is_missing(monkeypatch, tmp_path, caplog, knn):
    from facewise.core.pipeline import Pipeline
    from facewise.models.profiles import Profile, load_profile

    monkeypatch.setenv("FACEWISE_MODEL_PATH", str(tmp_path))  # YuNet's file is really absent here
    monkeypatch.setenv("FACEWISE_CACHE", str(tmp_path / "cache"))
    d = load_profile("default").to_dict() | {"detector": "yunet-2023mar", "detector_fallback": "dlib-hog"}
    prof = Profile.from_dict(d)
    assert prof.active_detector == "dlib-hog" and prof.available() and "yunet-2023mar" not in prof.models
    with caplog.at_level("WARNING"):
        faces = Pipeline(prof).analyze(knn / "test" / "obama1.jpg")[1]
    assert len(faces) == 1 and "yunet-2023mar is not installed" in caplog.text
