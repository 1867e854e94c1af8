"""Every environment variable facewise reads, in one place, with typed accessors.

The accessors read the environment on each call (no import-time snapshot), so a test or a long-running
process that changes a variable sees the new value. A value that cannot be used is a :class:`SettingsError`
naming the variable and the value; an empty variable counts as unset.

Two variables are read by the CLI framework rather than here: ``FACEWISE_DB`` and ``FACEWISE_PROFILE`` are the
``envvar=`` of the ``--db`` and ``--profile`` options (Typer reads them). The only other ``os.environ`` use in
the package is ``batch.indexing`` *setting* ``OMP_NUM_THREADS`` for its worker processes.
"""

from __future__ import annotations

import os
from pathlib import Path

from facewise.errors import SettingsError

VARIABLES: dict[str, str] = {
    "FACEWISE_MODEL_PATH": "folders searched first for model files (os.pathsep-separated)",
    "FACEWISE_CACHE": "per-user model cache folder (default $XDG_CACHE_HOME/facewise/models)",
    "XDG_CACHE_HOME": "base of the default cache folders (default ~/.cache)",
    "FACEWISE_THREADS": "inference threads per model session (a positive integer; default min(4, CPUs))",
    "FACEWISE_ORT_SPIN": "1 lets onnxruntime's idle inference threads busy-wait for the next run (default 0: "
                         "they sleep, leaving the cores to the next stage; see docs/SPEED.md)",
    "FACEWISE_DLIB_ENGINE": "what runs dlib's ResNet embedder: onnx (default; converted once, cached) or dlib",
    "FACEWISE_PROVIDERS": "where models run, in order of preference, comma-separated: cuda, tensorrt, rocm, "
                          "directml, coreml, openvino (onnxruntime) and gpu, npu (OpenVINO devices), cpu "
                          "(default: the profile's \"providers\", else cpu); what is missing falls back to cpu",
    "FACEWISE_MAX_PIXELS": "largest image accepted, in pixels (decompression-bomb guard; default 80,000,000)",
    "FACEWISE_MAX_IMPORT_MB": "largest export `import` reads, in MiB once decompressed (.json.gz bomb guard; "
                              "default 1024)",
    "FACEWISE_EVAL_CACHE": "embedding cache of `facewise eval` (default: an `eval` folder next to the model cache)",
    "FACEWISE_KEY": "gallery encryption key, base64 of 32 bytes (or use FACEWISE_KEY_FILE, not both)",
    "FACEWISE_KEY_FILE": "file holding the gallery encryption key",
    "FACEWISE_DATA": "folder of the shared example data; `facewise demo` looks for its photos there first",
    "FACEWISE_MODEL_MIRROR": "base URL `facewise models fetch` downloads from instead of the cards' URLs "
                             "(<base>/<file path in the card>; only when set)",
    "FACEWISE_EXAMPLES_URL": "where `facewise demo` downloads its example photos from (default: the public URL)",
    "FACEWISE_LIVENESS_THRESHOLD": "a `calibrate-liveness` threshold file used wherever liveness is decided",
    "FACEWISE_UMASK": "octal umask of the CLI and `facewise serve` (default 077: files are owner-only)",
    "FACEWISE_DB": "default of the CLI's --db option (read by Typer)",
    "FACEWISE_PROFILE": "default of the CLI's --profile option (read by Typer)",
}

KEY_VARIABLES = ("FACEWISE_KEY", "FACEWISE_KEY_FILE")


def _get(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value else None


def _positive_int(name: str) -> int | None:
    raw = _get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected a positive integer") from None
    if value < 1:
        raise SettingsError(f"{name}={raw!r}: expected a positive integer")
    return value


def dlib_engine() -> str:
    """``FACEWISE_DLIB_ENGINE``: ``"onnx"`` (default: dlib's ResNet converted to ONNX, run by onnxruntime) or
    ``"dlib"`` (dlib itself)."""
    raw = (_get("FACEWISE_DLIB_ENGINE") or "onnx").lower()
    if raw not in ("onnx", "dlib"):
        raise SettingsError(f"FACEWISE_DLIB_ENGINE={raw!r}: expected onnx or dlib")
    return raw


def model_path() -> list[Path]:
    """``FACEWISE_MODEL_PATH`` split on ``os.pathsep`` (empty entries skipped); ``[]`` when unset."""
    return [Path(p) for p in (_get("FACEWISE_MODEL_PATH") or "").split(os.pathsep) if p]


def data_dir() -> Path | None:
    """``FACEWISE_DATA``: a folder of shared example data, or ``None``."""
    raw = _get("FACEWISE_DATA")
    return Path(raw) if raw else None


def model_mirror() -> str | None:
    """``FACEWISE_MODEL_MIRROR``: a base URL serving model files at <base>/<card path>, or ``None``."""
    return _get("FACEWISE_MODEL_MIRROR")


def examples_url() -> str | None:
    """``FACEWISE_EXAMPLES_URL``: base URL of the demo's example photos, or ``None`` for the public one."""
    return _get("FACEWISE_EXAMPLES_URL")


def liveness_threshold_file() -> Path | None:
    """``FACEWISE_LIVENESS_THRESHOLD``: a deployment's fitted liveness threshold file, or ``None``."""
    raw = _get("FACEWISE_LIVENESS_THRESHOLD")
    return Path(raw) if raw else None


def umask() -> int:
    """``FACEWISE_UMASK`` as an octal mask (default ``0o077``: what the CLI creates is owner-only)."""
    raw = _get("FACEWISE_UMASK")
    if raw is None:
        return 0o077
    try:
        return int(raw, 8) & 0o777
    except ValueError:
        raise SettingsError(f"FACEWISE_UMASK={raw!r}: expected an octal mask such as 077") from None


def model_cache_dir() -> Path:
    """``FACEWISE_CACHE``, else ``$XDG_CACHE_HOME/facewise/models``, else ``~/.cache/facewise/models``."""
    explicit = _get("FACEWISE_CACHE")
    if explicit is not None:
        return Path(explicit)
    base = _get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "facewise" / "models"


def eval_cache_dir() -> Path:
    """``FACEWISE_EVAL_CACHE``, else an ``eval`` folder beside :func:`model_cache_dir`."""
    explicit = _get("FACEWISE_EVAL_CACHE")
    return Path(explicit) if explicit is not None else model_cache_dir().parent / "eval"


def threads() -> int | None:
    """``FACEWISE_THREADS`` as a positive integer; ``None`` when unset (the caller picks its default)."""
    return _positive_int("FACEWISE_THREADS")


PROVIDER_NAMES = ("cuda", "tensorrt", "rocm", "directml", "coreml", "openvino", "gpu", "npu", "cpu")


def ort_spin() -> bool:
    """``FACEWISE_ORT_SPIN``: ``True`` lets onnxruntime's intra-op threads spin between runs (its own default);
    ``False`` (the default here) makes them sleep, so a pipeline mixing onnxruntime and OpenVINO stages on a
    few cores does not lose the next stage's first milliseconds to threads that are only waiting."""
    raw = _get("FACEWISE_ORT_SPIN")
    if raw is None or raw in ("0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise SettingsError(f"FACEWISE_ORT_SPIN={raw!r}: expected 0 or 1")


def providers() -> tuple[str, ...] | None:
    """``FACEWISE_PROVIDERS`` as a tuple of names from :data:`PROVIDER_NAMES`; ``None`` when unset."""
    raw = _get("FACEWISE_PROVIDERS")
    if raw is None:
        return None
    names = tuple(x.strip().lower() for x in raw.split(",") if x.strip())
    bad = [x for x in names if x not in PROVIDER_NAMES]
    if bad or not names:
        raise SettingsError(f"FACEWISE_PROVIDERS={raw!r}: expected a comma-separated list of "
                            f"{', '.join(PROVIDER_NAMES)}")
    return names


def max_pixels(default: int) -> int:
    """``FACEWISE_MAX_PIXELS`` as a positive integer, else ``default``."""
    value = _positive_int("FACEWISE_MAX_PIXELS")
    return default if value is None else value


def max_import_bytes(default: int) -> int:
    """``FACEWISE_MAX_IMPORT_MB`` in bytes (a positive integer of MiB), else ``default``."""
    value = _positive_int("FACEWISE_MAX_IMPORT_MB")
    return default if value is None else value << 20


def key_env() -> dict[str, str]:
    """The set, non-empty encryption-key variables (``FACEWISE_KEY``, ``FACEWISE_KEY_FILE``) by name."""
    return {name: value for name in KEY_VARIABLES if (value := _get(name)) is not None}
