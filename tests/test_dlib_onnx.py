"""dlib's ResNet converted to ONNX (models/convert/dlib_dnn.py): the same descriptors as dlib, on real faces."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from conftest import LFW, need

DAT = "dlib_face_recognition_resnet_model_v1.dat"


def dat_path() -> Path:
    from facewise.models.catalogue import resolve

    return resolve("dlib-resnet-v1")[0]


@pytest.fixture(scope="module")
def lfw_chips() -> np.ndarray:
    """150 px dlib chips of LFW faces (every 200th person: 22 faces; aligned as the pipeline aligns them)."""
    from facewise.core.align import align_many
    from facewise.core.imageio import load_image
    from facewise.core.pipeline import Pipeline
    from facewise.models.embedders.dlib_resnet import DLIB_150_TEMPLATE

    need(LFW)
    pipe = Pipeline("default")
    people = sorted(p for p in (LFW / "images").iterdir() if p.is_dir())[::200][:24]
    chips = []
    for person in people:
        pixels = load_image(sorted(person.glob("*.jpg"))[0]).pixels
        dets = pipe.detect_pixels(pixels)
        if dets:
            chips.append(align_many(pixels, [dets[0].landmarks], DLIB_150_TEMPLATE, 150)[0])
    assert len(chips) >= 20
    return np.stack(chips)


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory) -> Path:
    from facewise.models.convert.dlib_dnn import convert

    out = tmp_path_factory.mktemp("converted") / "dlib.onnx"
    assert convert(dat_path(), out) <= 1e-4
    return out


def test_onnx_descriptors_equal_dlib_on_lfw_faces(lfw_chips, onnx_model):
    from facewise.models.convert.dlib_dnn import dlib_descriptors
    from facewise.models.runtime import onnx_session

    want = dlib_descriptors(dat_path(), lfw_chips)
    sess = onnx_session(onnx_model, 1)
    batch = sess.run(None, {"chips": lfw_chips})[0]  # the whole batch in one call
    one = np.vstack([sess.run(None, {"chips": lfw_chips[i:i + 1]})[0] for i in range(3)])
    mirrored = np.concatenate([lfw_chips[:4], lfw_chips[:4, :, ::-1]])  # flip TTA: chip and mirror together
    both = sess.run(None, {"chips": np.ascontiguousarray(mirrored)})[0]
    assert float(np.abs(batch - want).max()) <= 1e-4
    assert float(np.abs(one - want[:3]).max()) <= 1e-4
    assert float(np.abs(both - dlib_descriptors(dat_path(), mirrored)).max()) <= 1e-4


def test_the_embedder_runs_on_onnx_and_matches_the_dlib_engine(lfw_chips, tmp_path, monkeypatch):
    from facewise.models.catalogue import card
    from facewise.models.embedders.dlib_resnet import DlibOnnxEmbedder, DlibResNetEmbedder

    monkeypatch.setenv("FACEWISE_CACHE", str(tmp_path))
    fast = DlibResNetEmbedder.from_card(card("dlib-resnet-v1"), [dat_path()], 1)
    assert isinstance(fast, DlibOnnxEmbedder)
    cached = list((tmp_path / "converted").glob("dlib-resnet-*-c*.onnx"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    again = DlibResNetEmbedder.from_card(card("dlib-resnet-v1"), [dat_path()], 1)  # reuses the cached graph
    assert isinstance(again, DlibOnnxEmbedder) and cached[0].stat().st_mtime_ns == stamp
    monkeypatch.setenv("FACEWISE_DLIB_ENGINE", "dlib")
    slow = DlibResNetEmbedder.from_card(card("dlib-resnet-v1"), [dat_path()], 1)
    assert type(slow) is DlibResNetEmbedder
    assert float(np.abs(fast.embed(lfw_chips) - slow.embed(lfw_chips)).max()) <= 1e-4


def test_a_refused_conversion_falls_back_to_dlib_and_says_why(tmp_path, monkeypatch, caplog):
    from facewise.models.catalogue import card
    from facewise.models.convert import dlib_dnn
    from facewise.models.embedders.dlib_resnet import DlibResNetEmbedder

    monkeypatch.setenv("FACEWISE_CACHE", str(tmp_path))
    monkeypatch.setattr(dlib_dnn, "TOLERANCE", -1.0)  # no graph can pass: the refusal path
    with caplog.at_level(logging.WARNING):
        emb = DlibResNetEmbedder.from_card(card("dlib-resnet-v1"), [dat_path()], 1)
    assert type(emb) is DlibResNetEmbedder
    assert "runs on dlib" in caplog.text and "differs from dlib" in caplog.text
    assert not list(tmp_path.rglob("*.onnx")) and not list(tmp_path.rglob("*.tmp"))


def test_other_files_are_refused(tmp_path):
    from facewise.models.catalogue import resolve
    from facewise.models.convert.dlib_dnn import DatFormatError, read_dat

    with pytest.raises(DatFormatError):
        read_dat(resolve("dlib-hog")[0])  # another dlib file (the 5-point shape predictor)
    cut = tmp_path / DAT
    cut.write_bytes(dat_path().read_bytes()[:1_000_000])
    with pytest.raises(DatFormatError, match="truncated"):
        read_dat(cut)


def test_an_unknown_engine_is_a_settings_error(monkeypatch):
    from facewise.errors import SettingsError
    from facewise.models.catalogue import card
    from facewise.models.embedders.dlib_resnet import DlibResNetEmbedder

    monkeypatch.setenv("FACEWISE_DLIB_ENGINE", "tensorrt")
    with pytest.raises(SettingsError, match="FACEWISE_DLIB_ENGINE"):
        DlibResNetEmbedder.from_card(card("dlib-resnet-v1"), [dat_path()], 1)
