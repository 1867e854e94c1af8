"""Hardware sessions, kept apart from model code: onnxruntime and OpenVINO with a thread budget."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from facewise import settings

log = logging.getLogger(__name__)


def default_threads() -> int:
    return settings.threads() or max(1, min(4, os.cpu_count() or 1))


def onnx_session(path: Path, threads: int = 0) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or default_threads()
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def openvino_core() -> Any:
    """An ``openvino.Core``, or :class:`ModelNotFoundError` saying how to install OpenVINO."""
    try:
        import openvino as ov
    except ImportError as exc:  # pragma: no cover - depends on the install
        from facewise.errors import ModelNotFoundError

        raise ModelNotFoundError("this model needs OpenVINO: pip install 'facewise[openvino]'") from exc
    return ov.Core()


def openvino_config(threads: int = 0, precision: str | None = None) -> dict[str, Any]:
    """Compile settings: ``threads`` inference threads (0: :func:`default_threads`); ``precision`` None
    leaves OpenVINO's choice (bf16 on CPUs that have it), ``"f32"`` keeps full precision."""
    config: dict[str, Any] = {"INFERENCE_NUM_THREADS": threads or default_threads(), "PERFORMANCE_HINT": "LATENCY"}
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
    return core.compile_model(model, "CPU", openvino_config(threads))
