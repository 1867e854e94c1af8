"""Liveness as the product decides: no-face rule, fitted thresholds, the fused cues model, its reasons and map."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import DATA, MODELS
from facewise.core.analysis import Analyzer, LiveThreshold
from facewise.core.imageio import load_image, save_rgb
from facewise.errors import FacewiseError
from facewise.eval.liveness import evaluate_liveness, fit_threshold, product_eer, product_rates
from facewise.models.attributes.livecues import CUE_NAMES, face_cues
from facewise.models.attributes.livefusion import FEATURES, GRID, LiveFusion

LIVE = DATA / "liveness"
APFOL = LIVE / "apfol" / "dataset"
NUAA = LIVE / "nuaa"
SAMPLES = LIVE / "silentface_samples" / "images" / "sample"

pytestmark = pytest.mark.skipif(
    not ((MODELS / "antispoof").is_dir() and APFOL.is_dir() and NUAA.is_dir()),
    reason="anti-spoofing models or liveness data not found")


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    a = Analyzer()
    assert a.live_model_name == "fused"
    return a


@pytest.fixture(scope="module")
def detect(fast_pipeline):  # type: ignore[no-untyped-def]
    def fn(rgb: np.ndarray) -> np.ndarray:
        d = fast_pipeline.detector.detect(rgb)
        return np.array([[x.box.x1, x.box.y1, x.box.x2, x.box.y2] for x in d]).reshape(-1, 4)

    return fn


def _faces(fast_pipeline, path: Path):  # type: ignore[no-untyped-def]
    img, dets = fast_pipeline.detect(path)
    return img.pixels, fast_pipeline.make_faces(img.pixels, dets)


# ---------------------------------------------------------------------------------- the product's rule


def test_no_face_is_refused_whatever_its_class() -> None:
    real = np.array([0.9, np.nan, 0.8, 0.2])
    fake = np.array([np.nan, 0.1, 0.7])
    r = product_rates(real, fake, 0.5)
    assert r["bpcer"] == pytest.approx(0.5)  # the faceless bona fide sample is refused
    assert r["apcer"] == pytest.approx(1 / 3)  # the faceless attack is stopped, not scored on the whole image
    eer, thr = product_eer(real, fake)
    assert 0.0 <= eer <= 1.0 and 0.0 <= thr <= 1.0


def test_fit_threshold_refuses_the_target_share_of_bona_fide() -> None:
    s = np.linspace(0.0, 1.0, 201)
    t = fit_threshold(np.r_[s, np.nan], 0.05)
    assert np.mean(s < t) == pytest.approx(0.05, abs=0.01)
    with pytest.raises(FacewiseError, match="at least 10"):
        fit_threshold(np.array([0.5, np.nan]))
    with pytest.raises(FacewiseError, match="target BPCER"):
        fit_threshold(s, 0.7)


def test_one_sided_cues_count_only_on_the_attack_side() -> None:
    from facewise.models.attributes.livefusion import one_sided

    z = np.array([[2.0, 2.0, -2.0], [-2.0, -2.0, 2.0]])
    out = one_sided(z, [None, 0.5, 0.5], [1, 1, -1])
    assert out[:, 0].tolist() == [2.0, -2.0]  # MiniFASNet: two-sided
    assert out[:, 1].tolist() == [0.0, -2.5]  # "higher = live" cue: only below its hinge
    assert out[:, 2].tolist() == [0.0, 1.5]  # "higher = attack" cue: only above its hinge


def test_eval_counts_faceless_samples_as_refused(analyzer, detect, tmp_path: Path) -> None:
    """Apfol crops plus a faceless patch of a real NUAA frame in each class: both are refused."""
    rng = np.random.default_rng(1)
    frame = load_image(NUAA / "real" / "0001_0001_00_00_01_0.jpg").pixels
    for label in ("real", "fake"):
        (tmp_path / label).mkdir()
        files = sorted((APFOL / label).glob("*.png"))
        for i in rng.choice(len(files), size=25, replace=False):
            shutil.copyfile(files[i], tmp_path / label / files[i].name)
        save_rgb(tmp_path / label / "wall.png", frame[:120, :160])  # background only: no face
    res = evaluate_liveness(tmp_path, analyzer.live_model, detect, size=224, threshold=0.5)
    assert res["no_face"]["real"] >= 1 and res["no_face"]["fake"] >= 1
    assert np.isnan(res["scores"]["real"][res["names"]["real"].index("wall.png")])
    # the faceless bona fide sample counts against BPCER; the faceless attack is not accepted
    assert res["bpcer"] >= 1 / 26 - 1e-9
    assert res["acer"] < 0.15, res
    assert res["faces_only"]["acer"] <= res["acer"] + 1e-9


# ---------------------------------------------------------------------------------- cues, reasons, map


def test_cues_are_finite_numbers_on_real_frames() -> None:
    rgb = load_image(NUAA / "fake" / "0001_0001_00_00_01_0.jpg").pixels
    cues = face_cues(rgb, (250, 150, 400, 330))
    assert set(cues) == set(CUE_NAMES)
    assert all(np.isfinite(v) for v in cues.values())
    assert 0.0 <= cues["specular"] <= 1.0 and 0.0 <= cues["edge"] <= 1.5


@pytest.mark.parametrize(("path", "live"), [
    (NUAA / "real" / "0001_0001_00_00_01_156.jpg", True),
    (NUAA / "fake" / "0001_0001_00_00_01_206.jpg", False),
    (APFOL / "real" / "10.png", True),
    (APFOL / "fake" / "10.png", False),
    (SAMPLES / "image_T1.jpg", True),  # not in the fused model's training data
    (SAMPLES / "image_F2.jpg", False),
])
def test_live_result_carries_cues_and_map(analyzer, fast_pipeline, path: Path, live: bool) -> None:
    pixels, faces = _faces(fast_pipeline, path)
    assert faces
    face = max(faces, key=lambda f: f.box.width * f.box.height)
    analyzer.analyze(pixels, [face], what=("live", "live_map"))
    res = face.attributes["live"]
    assert res["is_live"] is live, res["score"]
    assert res["model"] == "fused" and res["threshold_source"] == "fused model boundary"
    assert set(res["cues"]) <= set(FEATURES)
    for c in res["cues"].values():
        assert np.isfinite(c["value"]) and c["fired"] == (c["pull"] <= -1.0)
    if not live:  # an attack says why: at least one cue fired, and the reason names it
        assert res["fired"]
        assert any(r.startswith("not live") and res["fired"][0] in r for r in face.quality.reasons)
    delta = np.asarray(res["map"]["delta"])
    assert delta.shape == (GRID, GRID) and np.all(np.abs(delta) <= 1.0)
    x1, y1, x2, y2 = res["map"]["box"]
    assert 0 <= x1 < x2 <= pixels.shape[1] and 0 <= y1 < y2 <= pixels.shape[0]


def test_occlusion_map_responds_to_the_face(analyzer, fast_pipeline) -> None:
    """On an attack the map is not flat: hiding some part of the face changes P(live)."""
    pixels, faces = _faces(fast_pipeline, APFOL / "fake" / "10.png")
    model: LiveFusion = analyzer.live_model
    f = faces[0]
    m = model.occlusion_map(pixels, [f.box.x1, f.box.y1, f.box.x2, f.box.y2])
    assert np.ptp(np.asarray(m["delta"])) > 0.01


# ---------------------------------------------------------------------------------- threshold files


def test_threshold_file_round_trip_and_mismatch(analyzer, tmp_path: Path) -> None:
    t = LiveThreshold("fused", 0.73, 0.05, 120, "my webcam")
    t.save(tmp_path / "t.json")
    assert LiveThreshold.load(tmp_path / "t.json") == t
    a = Analyzer()
    a.set_live_threshold(t)
    assert a.live_threshold() == (0.73, "fitted (my webcam)")
    with pytest.raises(FacewiseError, match="fitted for the minifasnet scorer"):
        a.set_live_threshold(LiveThreshold("minifasnet", 0.4, 0.05, 120))
    (tmp_path / "bad.json").write_text('{"threshold": 0.5}')
    with pytest.raises(FacewiseError, match="not a liveness threshold file"):
        LiveThreshold.load(tmp_path / "bad.json")


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "facewise.cli", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def test_calibrate_liveness_then_analyze_uses_it(tmp_path: Path) -> None:
    bona = tmp_path / "mine"
    bona.mkdir()
    for f in sorted((NUAA / "real").glob("0001_*.jpg"))[:12]:
        shutil.copyfile(f, bona / f.name)
    thr_file = tmp_path / "live.json"
    r = _cli("calibrate-liveness", str(bona), "--out", str(thr_file), "-p", "fast", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["model"] == "fused" and doc["n_bona_fide"] == 12 and 0 < doc["threshold"] <= 1
    probe = NUAA / "fake" / "0001_0001_00_00_01_206.jpg"
    r = _cli("analyze", str(probe), "-p", "fast", "--json", "--live-threshold", str(thr_file),
             "--annotate", str(tmp_path / "ann"))
    assert r.returncode == 0, r.stderr
    live = json.loads(r.stdout.splitlines()[0])["live"]
    assert live["threshold"] == pytest.approx(round(doc["threshold"], 4))
    assert live["threshold_source"].startswith("fitted") and not live["is_live"]
    drawn = cv2.imread(str(tmp_path / "ann" / (probe.stem + ".jpg")))
    assert drawn is not None and drawn.shape[:2] == load_image(probe).pixels.shape[:2]
    (tmp_path / "junk.json").write_text("not json")
    r = _cli("analyze", str(probe), "-p", "fast", "--live-threshold", str(tmp_path / "junk.json"))
    assert r.returncode == 1 and "liveness threshold file" in r.stderr and "Traceback" not in r.stderr


def test_verify_require_live_refuses_a_printed_photo_of_the_same_person(tmp_path: Path) -> None:
    """NUAA subject 1: the live frame verifies; the printed photo of the same person is refused as not live."""
    from facewise.api import FaceWise
    from facewise.core.analysis import Gate

    live = NUAA / "real" / "0001_0001_00_00_01_156.jpg"
    other = NUAA / "real" / "0001_0001_00_00_01_213.jpg"
    photo = NUAA / "fake" / "0001_0001_00_00_01_206.jpg"
    fw = FaceWise(profile="fast")
    ok = fw.verify(live, other, gate=Gate(require_live=True))
    assert ok.same and not ok.reason
    spoof = fw.verify(photo, other, gate=Gate(require_live=True))
    assert not spoof.same and spoof.reason.startswith("not live")
    # the gate decides at a deployment's own threshold: at 0 (accept everything) the photo gets through
    LiveThreshold("fused", 0.0, 0.05, 100, "lenient").save(tmp_path / "lenient.json")
    fw.analyzer.set_live_threshold(LiveThreshold.load(tmp_path / "lenient.json"))
    lenient = fw.verify(photo, other, gate=Gate(require_live=True))
    assert lenient.same and not lenient.reason
    fw.close()
