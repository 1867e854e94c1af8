"""Detector cascade (core/cascade.py) on real turned faces: Color FERET full profiles that dlib's HOG
misses are found by the next detectors of the profile's cascade, each face says which, and the
evaluation counts what found every image, centre-prior fallbacks included."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest

from conftest import DATA, need

FERET = DATA / "pose" / "feret" / "images"


def _hog_first_profile(cascade: list[str]):
    from facewise.models.profiles import Profile, load_profile

    d = load_profile("default").to_dict() | {"detector": "dlib-hog", "detector_options": {}, "detector_fallback": None,
                                              "detector_cascade": cascade}
    return Profile.from_dict(d)  # dlib's HOG and ResNet: always installed


@pytest.fixture(scope="module")
def profiles():
    from facewise.core.imageio import load_image

    return [(f.stem, load_image(f).pixels) for f in sorted(need(FERET).glob("*/*_p[lr].jpg"))[:10]]


def test_cascade_finds_the_real_profiles_the_first_detector_misses(profiles):
    from facewise.core.pipeline import Pipeline
    from facewise.models.catalogue import is_available
    from facewise.models.registry import load_detector

    if not (is_available("scrfd-2.5g") and is_available("yunet-2023mar")):
        pytest.skip("SCRFD or YuNet is not on the model path")
    pipe = Pipeline(_hog_first_profile(["scrfd-2.5g", "yunet-2023mar"]), threads=1)
    hog = load_detector("dlib-hog")
    rescued = 0
    for name, px in profiles:
        _, faces = pipe.analyze(px, embed=False)
        assert faces, name  # every FERET profile is found by one stage or another
        if hog.detect(px):
            assert "found_by" not in faces[0].attributes, name
        else:
            rescued += 1
            assert faces[0].attributes["found_by"] == "cascade:scrfd-2.5g", name
            assert faces[0].to_dict()["found_by"] == "cascade:scrfd-2.5g"
            b = faces[0].box
            assert b.x1 <= faces[0].landmarks[:, 0].mean() <= b.x2 and b.area > 0.02 * px.shape[0] * px.shape[1]
    assert rescued >= len(profiles) // 2  # HOG misses most full profiles


def test_missing_cascade_models_are_skipped_with_a_log_line(monkeypatch, tmp_path, caplog, profiles):
    from facewise.core import cascade
    from facewise.core.pipeline import Pipeline

    monkeypatch.setenv("FACEWISE_MODEL_PATH", str(tmp_path))  # SCRFD's file is really absent here
    monkeypatch.setenv("FACEWISE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(cascade, "_skipped", set())
    stages = None
    with caplog.at_level(logging.WARNING, logger="facewise.core.cascade"):
        stages = cascade.cascade_detectors(("scrfd-2.5g", "dlib-hog"))
        cascade.cascade_detectors(("scrfd-2.5g",))  # said once
    assert [s.model_id for s in stages] == ["dlib-hog"]
    assert caplog.text.count("detector cascade: scrfd-2.5g is not installed") == 1
    # a profile whose whole cascade is missing detects as before
    prof = _hog_first_profile(["scrfd-2.5g"])
    assert "scrfd-2.5g" not in prof.models and prof.available()
    pipe = Pipeline(prof, threads=1)
    for _, px in profiles[:3]:
        got, alone = pipe.detect_pixels(px), pipe.detector.detect(px)
        assert [d.box for d in got] == [d.box for d in alone]
    assert pipe.cascade == []


def test_eval_reports_what_found_each_image(tmp_path, profiles):
    from facewise.core.pipeline import Pipeline
    from facewise.eval.embed import embed_images
    from facewise.models.catalogue import is_available
    from facewise.models.registry import load_detector

    if not is_available("scrfd-2.5g"):
        pytest.skip("SCRFD is not on the model path")
    hog = load_detector("dlib-hog")
    missed = next(px for _, px in profiles if not hog.detect(px))
    cv2.imwrite(str(tmp_path / "profile.png"), missed)
    cv2.imwrite(str(tmp_path / "wall.png"), np.ascontiguousarray(missed[:96, :96]))  # FERET backdrop, no face
    pipe = Pipeline(_hog_first_profile(["scrfd-2.5g"]), threads=1)
    paths = [str(tmp_path / "profile.png"), str(tmp_path / "wall.png")]
    for _ in range(2):  # computed, then from the cache
        emb = embed_images(pipe, paths, cache_dir=tmp_path / "cache")
        assert list(emb.found_by) == ["cascade:scrfd-2.5g", "centre prior"]
        assert emb.found_by_counts() == {"cascade:scrfd-2.5g": 1, "centre prior": 1}
        assert list(emb.no_face) == [False, True] and emb.vectors.any(1).all()


def test_an_installed_cascade_model_counts_in_the_profiles_licence():
    from facewise.models.catalogue import is_available

    assert _hog_first_profile([]).commercial == "yes"
    if is_available("scrfd-2.5g"):  # SCRFD's weights are non-commercial research only
        assert _hog_first_profile(["scrfd-2.5g"]).commercial == "no"
    assert _hog_first_profile(["scrfd-2.5g"]).to_dict()["detector_cascade"] == ["scrfd-2.5g"]
    assert "detector_cascade" not in _hog_first_profile([]).to_dict()


@pytest.mark.parametrize("name", ["00533_pl", "00811_pl", "00940_pr"])
def test_accurate_finds_tight_profile_crops_yunet_misses(name):
    """Real FERET full profiles cropped to YuNet's own face box on the photo (ear and chin on the
    border): YuNet misses them, the first stage of accurate's cascade (yuface) finds them."""
    pytest.importorskip("yuface")
    from facewise.core.imageio import load_image
    from facewise.core.pipeline import Pipeline
    from facewise.models.catalogue import is_available
    from facewise.models.registry import load_detector

    if not is_available("yunet-2023mar"):
        pytest.skip("YuNet is not on the model path")
    px = load_image(need(FERET / name.split("_")[0] / f"{name}.jpg")).pixels
    yunet = load_detector("yunet-2023mar", 1, (("engine", "openvino"),))
    b = yunet.detect(px)[0].box
    crop = np.ascontiguousarray(px[max(0, int(b.y1)) : int(b.y2), max(0, int(b.x1)) : int(b.x2)])
    assert yunet.detect(crop) == []
    pipe = Pipeline("accurate", threads=1)
    assert pipe.profile.detector_cascade[0] == "yuface"
    _, faces = pipe.analyze(crop, embed=False)
    assert len(faces) == 1 and faces[0].attributes["found_by"] == "cascade:yuface"
    h, w = crop.shape[:2]
    assert faces[0].box.area > 0.3 * w * h
