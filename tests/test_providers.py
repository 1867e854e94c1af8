"""Execution providers: what is asked for and missing falls back to CPU, with a log line saying why."""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pytest

from facewise.errors import FacewiseError, SettingsError
from facewise.models import runtime
from facewise.models.catalogue import is_available, resolve
from facewise.models.profiles import Profile, load_profile

pytestmark = pytest.mark.skipif(not is_available("fsanet"), reason="FSA-Net not on the model path")


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "_warned", set())
    monkeypatch.delenv("FACEWISE_PROVIDERS", raising=False)


def test_cuda_asked_without_gpu_runs_on_cpu_and_says_why(monkeypatch: pytest.MonkeyPatch,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has CUDA: nothing falls back")
    monkeypatch.setenv("FACEWISE_PROVIDERS", "cuda,cpu")
    path = resolve("fsanet")[0]
    with caplog.at_level(logging.INFO, logger="facewise.models.runtime"):
        sess = runtime.onnx_session(path, threads=1)
        runtime.onnx_session(path, threads=1)  # a second session: no second warning
    assert sess.get_providers() == ["CPUExecutionProvider"]
    out = sess.run(None, {sess.get_inputs()[0].name: np.zeros((1, 3, 64, 64), np.float32)})
    assert np.isfinite(out[0]).all()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "asked for CUDAExecutionProvider" in warnings[0] and "running on CPUExecutionProvider" in warnings[0]
    assert "offers" in warnings[0] and "CPUExecutionProvider" in warnings[0].split("offers")[1]
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert infos == [f"onnxruntime session {path.name} on CPUExecutionProvider"] * 2


def test_profile_providers_reach_the_session_and_the_setting_wins(monkeypatch: pytest.MonkeyPatch,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    path = resolve("fsanet")[0]
    with caplog.at_level(logging.WARNING, logger="facewise.models.runtime"), runtime.requested(("tensorrt", "cpu")):
        runtime.onnx_session(path, threads=1)
        assert runtime.wanted_providers() == ("tensorrt", "cpu")
        monkeypatch.setenv("FACEWISE_PROVIDERS", "cpu")
        assert runtime.wanted_providers() == ("cpu",)  # the machine's setting overrides the profile
    assert any("asked for TensorrtExecutionProvider" in r.getMessage() for r in caplog.records)
    assert runtime.wanted_providers() == ("cpu",)


def test_openvino_gpu_falls_back_to_cpu(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    core = runtime.openvino_core()
    if any(d.startswith("GPU") for d in core.available_devices):
        pytest.skip("this machine has an OpenVINO GPU")
    monkeypatch.setenv("FACEWISE_PROVIDERS", "gpu,cpu")
    with caplog.at_level(logging.WARNING, logger="facewise.models.runtime"):
        assert runtime.openvino_device(core) == "CPU"
    assert "OpenVINO: asked for GPU" in caplog.text and "running on CPU" in caplog.text
    assert runtime.openvino_config(2, device="GPU") == {"PERFORMANCE_HINT": "LATENCY"}


def test_pipeline_with_gpu_profile_embeds_on_cpu(caplog: pytest.LogCaptureFixture) -> None:
    """A profile that asks for CUDA and an OpenVINO GPU still embeds a real face here, and says where each of
    its runtimes went: dlib's ResNet on onnxruntime, YuNet and reid-0095 on OpenVINO."""
    import onnxruntime as ort

    from conftest import LFW, need
    from facewise.core.imageio import load_image
    from facewise.core.pipeline import Pipeline

    prof = load_profile("accurate-commercial")
    if not prof.available():
        pytest.skip("accurate-commercial's models not installed")
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has CUDA: nothing falls back")
    gpu = replace(prof, providers=("cuda", "gpu", "cpu"))
    with caplog.at_level(logging.INFO, logger="facewise.models.runtime"):
        _, faces = Pipeline(gpu, threads=1).analyze(load_image(need(LFW / "images" / "Zico" / "Zico_0003.jpg")))
    assert len(faces) == 1 and faces[0].embedding.shape == (Pipeline(prof).dim,)
    assert "onnxruntime: asked for CUDAExecutionProvider" in caplog.text
    assert "OpenVINO: asked for GPU" in caplog.text and "running on CPU" in caplog.text
    assert "on CPUExecutionProvider" in caplog.text


def test_bad_provider_names_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from facewise import settings

    monkeypatch.setenv("FACEWISE_PROVIDERS", "cuda,warp-drive")
    with pytest.raises(SettingsError, match="FACEWISE_PROVIDERS"):
        settings.providers()
    d = load_profile("fast").to_dict()
    with pytest.raises(FacewiseError, match="unknown providers"):
        Profile.from_dict({**d, "providers": ["quantum"]})
    assert Profile.from_dict({**d, "providers": ["CUDA", "cpu"]}).providers == ("cuda", "cpu")
    assert Profile.from_dict({**d, "providers": ["cuda"]}).to_dict()["providers"] == ["cuda"]


def test_idle_onnxruntime_threads_sleep_unless_asked_to_spin(monkeypatch: pytest.MonkeyPatch) -> None:
    path = resolve("fsanet")[0]
    monkeypatch.delenv("FACEWISE_ORT_SPIN", raising=False)
    opts = runtime.onnx_session(path, threads=2).get_session_options()
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    monkeypatch.setenv("FACEWISE_ORT_SPIN", "1")
    opts = runtime.onnx_session(path, threads=2).get_session_options()
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "1"
    monkeypatch.setenv("FACEWISE_ORT_SPIN", "sometimes")
    with pytest.raises(SettingsError, match="FACEWISE_ORT_SPIN='sometimes': expected 0 or 1"):
        runtime.onnx_session(path, threads=2)
