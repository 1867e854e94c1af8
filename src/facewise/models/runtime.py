"""Hardware sessions, kept apart from model code: onnxruntime and OpenVINO with a thread budget, on the
execution providers asked for, with CPU fallback.

Which providers a session asks for: ``FACEWISE_PROVIDERS`` (it describes the machine, so it wins), else those
of the model loading in progress (:func:`requested`, set by the registry from a profile's ``"providers"``),
else CPU. Names: ``cuda``,
``tensorrt``, ``rocm``, ``directml``, ``coreml``, ``openvino`` (onnxruntime execution providers), ``gpu``,
``npu`` (OpenVINO devices, for OpenVINO IR models) and ``cpu``. What this install or machine lacks is left
out with one WARNING line naming what was asked, what is available and what runs; each session's provider is
logged at INFO.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from facewise import settings

log = logging.getLogger(__name__)

ORT_PROVIDERS = {"cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider",
                 "rocm": "ROCMExecutionProvider", "directml": "DmlExecutionProvider",
                 "coreml": "CoreMLExecutionProvider", "openvino": "OpenVINOExecutionProvider",
                 "cpu": "CPUExecutionProvider"}
OPENVINO_DEVICES = {"gpu": "GPU", "npu": "NPU", "cpu": "CPU"}
_PROFILE_PROVIDERS: ContextVar[tuple[str, ...]] = ContextVar("facewise_providers", default=())
_warned: set[tuple[str, ...]] = set()


@contextmanager
def requested(providers: tuple[str, ...]) -> Iterator[None]:
    """Sessions created inside ask for ``providers`` (a profile's list) unless ``FACEWISE_PROVIDERS`` is set."""
    token = _PROFILE_PROVIDERS.set(tuple(providers))
    try:
        yield
    finally:
        _PROFILE_PROVIDERS.reset(token)


def wanted_providers() -> tuple[str, ...]:
    """The provider names a new session asks for, in order (see the module docstring)."""
    return settings.providers() or _PROFILE_PROVIDERS.get() or ("cpu",)


def _warn_once(key: tuple[str, ...], msg: str, *args: Any) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning(msg, *args)


def ort_providers() -> list[str]:
    """The onnxruntime providers to ask for: the wanted ones this install has, CPU always last."""
    import onnxruntime as ort

    asked = [ORT_PROVIDERS[p] for p in wanted_providers() if p in ORT_PROVIDERS]
    available = ort.get_available_providers()
    chosen = [p for p in dict.fromkeys(asked) if p in available and p != "CPUExecutionProvider"]
    chosen.append("CPUExecutionProvider")
    missing = [p for p in asked if p not in available]
    if missing:
        _warn_once(("ort", *asked), "onnxruntime: asked for %s; this install offers %s; running on %s",
                   ", ".join(asked), ", ".join(available), ", ".join(chosen))
    return chosen


def default_threads() -> int:
    return settings.threads() or max(1, min(4, os.cpu_count() or 1))


def onnx_session(path: Path, threads: int = 0) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or default_threads()
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    # idle intra-op threads spin for ~10 ms after a run by default: on 2 cores that delays the next stage
    # (an OpenVINO model, decoding) by as much; sleeping threads cost nothing measurable here (docs/SPEED.md)
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if settings.ort_spin() else "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "1" if settings.ort_spin() else "0")
    chosen = ort_providers()
    try:
        sess = ort.InferenceSession(str(path), sess_options=opts, providers=chosen)
    except Exception as exc:  # a provider that is installed but cannot start (no driver, no device)
        if chosen == ["CPUExecutionProvider"]:
            raise
        _warn_once(("ort-failed", *chosen), "onnxruntime: %s could not start (%s); running on CPUExecutionProvider",
                   chosen[0], str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        sess = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    got = sess.get_providers()
    if got[0] != chosen[0]:
        _warn_once(("ort-fell", *chosen), "onnxruntime: asked for %s; the session runs on %s", chosen[0], got[0])
    log.info("onnxruntime session %s on %s", path.name, got[0])
    return sess


def openvino_core() -> Any:
    """An ``openvino.Core``, or :class:`ModelNotFoundError` saying how to install OpenVINO."""
    try:
        import openvino as ov
    except ImportError as exc:  # pragma: no cover - depends on the install
        from facewise.errors import ModelNotFoundError, install_hint

        raise ModelNotFoundError(f"this model needs OpenVINO (a core dependency): {install_hint('openvino')}") from exc
    return ov.Core()


def openvino_device(core: Any) -> str:
    """The OpenVINO device to compile for: the first wanted device (``gpu``, ``npu``) that ``core`` lists,
    else ``"CPU"`` (with one WARNING line when a device was asked for and is not there)."""
    asked = [OPENVINO_DEVICES[p] for p in wanted_providers() if p in OPENVINO_DEVICES]
    available = list(core.available_devices)
    present = [d for d in asked if d == "CPU" or any(a == d or a.startswith(d + ".") for a in available)]
    device = present[0] if present else "CPU"
    skipped = asked[:asked.index(device)] if device in asked else asked
    if skipped:
        _warn_once(("ov", *asked), "OpenVINO: asked for %s; this machine offers %s; running on %s",
                   ", ".join(asked), ", ".join(available) or "no device", device)
    return device


def openvino_config(threads: int = 0, precision: str | None = None, device: str = "CPU") -> dict[str, Any]:
    """Compile settings: ``threads`` inference threads (0: :func:`default_threads`; CPU only); ``precision``
    None leaves OpenVINO's choice (bf16 on CPUs that have it), ``"f32"`` keeps full precision."""
    config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
    if device == "CPU":
        config["INFERENCE_NUM_THREADS"] = threads or default_threads()
    if precision:
        config["INFERENCE_PRECISION_HINT"] = precision
    return config


def openvino_compiled(xml: Path, threads: int = 0, batch_dynamic: bool = True, batch: int | None = None) -> Any:
    """A compiled IR: batch dimension dynamic, or fixed to ``batch`` when given."""
    core = openvino_core()
    model = core.read_model(str(xml))
    if batch_dynamic or batch:
        shape = model.input(0).get_partial_shape()
        shape[0] = batch or -1
        model.reshape({model.input(0).get_any_name(): shape})
    device = openvino_device(core)
    compiled = core.compile_model(model, device, openvino_config(threads, device=device))
    log.info("OpenVINO model %s on %s", xml.name, device)
    return compiled
