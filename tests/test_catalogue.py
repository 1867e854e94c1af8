"""Model cards, discovery on the search path, integrity checks and offline fetch errors."""

from __future__ import annotations

import pytest

from facewise.errors import FacewiseError, ModelNotFoundError
from facewise.models import catalogue
from facewise.models.profiles import load_profile, profile_names


def test_every_card_is_complete():
    cards = catalogue.cards()
    assert {"dlib-hog", "dlib-resnet-v1", "yunet-2023mar", "reid-0095", "mobilefacenet-y1"} <= set(cards)
    for c in cards.values():
        assert c.task and c.licence and c.source and c.files, c.id
        for f in c.files:
            assert f.sha256 and len(f.sha256) == 64 and f.size, (c.id, f.path)


def test_default_profile_uses_registry_models_only(monkeypatch, tmp_path):
    monkeypatch.setenv("FACEWISE_MODEL_PATH", str(tmp_path))  # nothing on the model path
    monkeypatch.setenv("FACEWISE_CACHE", str(tmp_path / "cache"))
    default = load_profile("default")
    assert default.available()
    assert default.commercial_use
    assert not load_profile("fast").available()


def test_non_commercial_weights_are_never_default():
    for name in profile_names():
        prof = load_profile(name)
        if name == "default":
            assert all(catalogue.card(m).commercial_use for m in prof.models)


def test_accurate_commercial_loads_only_models_whose_cards_say_yes():
    prof = load_profile("accurate-commercial")
    loaded = {*prof.models, prof.detector, *([prof.detector_fallback] if prof.detector_fallback else [])}
    assert {"reid-0095", "dlib-resnet-v1"} <= loaded
    for m in loaded:
        assert catalogue.card(m).commercial == "yes", m
    assert prof.commercial == "yes" and prof.flip and prof.calibration  # calibrated on its own


def test_every_card_states_licence_training_data_and_a_commercial_answer():
    for c in catalogue.cards().values():
        assert c.commercial in ("yes", "no", "unclear"), c.id
        if c.id in ("dlib-hog", "dlib-hog-68", "dlib-resnet-v1", "yunet-2023mar", "fsanet"):
            assert c.training_data and "not stated" not in c.training_data, c.id
    # the 68-point predictor's training data (iBUG 300-W) excludes commercial use: never a yes
    assert catalogue.card("dlib-hog-68").commercial == "no"
    assert "shape_predictor_68" not in " ".join(f.path for f in catalogue.card("dlib-hog").files)


def test_profile_commercial_answer_is_the_weakest_of_its_models():
    assert load_profile("default").commercial == "yes"
    assert load_profile("accurate").commercial == "no"  # MobileFaceNet y1 is non-commercial
    prof = load_profile("default")
    assert catalogue.ModelCard.from_dict({"id": "x", "task": "t", "commercial_use": False}).commercial == "no"
    with pytest.raises(FacewiseError, match="commercial_use"):
        catalogue.ModelCard.from_dict({"id": "x", "task": "t", "commercial_use": "maybe"})
    assert prof.commercial_use is True


def test_models_list_shows_commercial_use_per_model_and_profile():
    import json
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-m", "facewise.cli", "models", "list", "--json"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in res.stdout.splitlines() if line.strip()]  # JSON Lines, "kind" per row
    by_id = {m["id"]: m for m in rows if m["kind"] == "model"}
    assert by_id["dlib-hog-68"]["commercial_use"] == "no" and by_id["fsanet"]["commercial_use"] == "unclear"
    assert "training_data" in by_id["dlib-resnet-v1"]
    assert {p["name"]: p["commercial_use"] for p in rows if p["kind"] == "profile"}["default"] == "yes"


def test_verify_checks_sha256_of_real_files(models_dir):
    statuses = catalogue.verify("yunet-2023mar")
    assert [s.ok for s in statuses] == [True]
    assert catalogue.verify("dlib-resnet-v1")[0].ok


def test_tampered_file_fails_verification(monkeypatch, tmp_path, models_dir):
    bad = tmp_path / "detection"
    bad.mkdir()
    (bad / "face_detection_yunet_2023mar.onnx").write_bytes(b"not the model")
    monkeypatch.setenv("FACEWISE_MODEL_PATH", str(tmp_path))
    st = catalogue.verify("yunet-2023mar")[0]
    assert not st.ok and "sha256 mismatch" in st.reason


def test_missing_model_names_the_file_and_where_to_put_it(monkeypatch, tmp_path):
    monkeypatch.setenv("FACEWISE_MODEL_PATH", str(tmp_path))
    monkeypatch.setenv("FACEWISE_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ModelNotFoundError, match=r"face-reidentification-retail-0095\.xml.*FACEWISE_MODEL_PATH"):
        catalogue.resolve("reid-0095")


def test_fetch_offline_fails_with_a_clear_message(monkeypatch, tmp_path):
    monkeypatch.setenv("FACEWISE_MODEL_PATH", str(tmp_path))
    monkeypatch.setenv("FACEWISE_CACHE", str(tmp_path / "cache"))
    with pytest.raises(FacewiseError, match=r"could not download .*face_detection_yunet_2023mar\.onnx.*by hand"):
        catalogue.fetch("yunet-2023mar", timeout=5)
    assert not (tmp_path / "cache" / "detection" / "face_detection_yunet_2023mar.onnx").exists()


def test_fetch_without_url_says_so(monkeypatch, tmp_path):
    monkeypatch.setenv("FACEWISE_MODEL_PATH", str(tmp_path))
    monkeypatch.setenv("FACEWISE_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ModelNotFoundError, match=r"no public download URL \(manual\): .*omz_converter"):
        catalogue.fetch("mobilefacenet-y1")


def test_unknown_model_and_profile():
    with pytest.raises(ModelNotFoundError, match="unknown model id"):
        catalogue.card("nope")
    with pytest.raises(FacewiseError, match="unknown profile"):
        load_profile("nope")


def test_the_registry_tunes_detectors_for_video_tracking(models_dir):
    """The video pipeline gets its low-threshold and small-crop detectors from the registry, no class of its own."""
    import pytest

    from facewise import FaceWise
    from facewise.models.registry import detector_knobs, load_detector
    from facewise.video.process import tracking_detector

    assert detector_knobs("dlib-hog") == frozenset() and "min_side" not in detector_knobs("scrfd-500m")
    with pytest.raises(ValueError, match="cannot be tuned by score_threshold"):
        load_detector("dlib-hog", score_threshold=0.2)
    with pytest.raises(ValueError, match="min_side"):
        load_detector("scrfd-500m", min_side=0)
    scrfd = load_detector("scrfd-500m", score_threshold=0.2)
    assert scrfd.score_threshold == 0.2 and load_detector("scrfd-500m", score_threshold=0.2) is scrfd  # cached

    fw = FaceWise(db=None, profile="fast")  # YuNet
    det, refine = tracking_detector(fw, low_score=0.3)
    assert det is not fw.pipeline.detector and det.score_threshold == 0.3
    assert fw.pipeline.detector.score_threshold == 0.6
    assert refine is not None and (refine.min_side, refine.max_side, refine.score_threshold) == (0, 640, 0.3)
    assert tracking_detector(fw, low_score=0.9)[0].score_threshold == 0.6  # never above the profile's own
    default = FaceWise(db=None, profile="default")  # yuface: its score is lowered too; no small-crop refiner
    det, refine = tracking_detector(default, low_score=0.3)
    assert det is not default.pipeline.detector and det.score_threshold == 0.3 and refine is None
    from facewise.models.profiles import Profile

    hog_first = Profile.from_dict(load_profile("default").to_dict() | {"detector": "dlib-hog",
                                                                       "detector_fallback": None})
    hog = FaceWise(db=None, profile=hog_first)  # dlib's HOG has no score to lower
    assert tracking_detector(hog, low_score=0.3) == (hog.pipeline.detector, None)
