"""Throughput of the project's ONNX models on each execution provider, in one process.

    python bench/providers.py [--providers cuda,cpu] [--batches 1,16,64] [--seconds 2] [--json]

Every ONNX model facewise runs through onnxruntime (dlib's ResNet as converted by
``models/convert/dlib_dnn.py``, SCRFD, MobileFaceNet-128, FSA-Net, MiniFASNet, the expression model)
gets one session per provider, made by ``models.runtime.onnx_session`` as the pipeline makes it (so the
provider really used, and any fallback, is what the JSON's ``ran_on`` says), and runs on random inputs of
its own shape at each batch size for about ``--seconds`` after a warm-up. Weights, not inputs, decide the
work of these networks, so random pixels time them as faces would. Prints items (faces or images) per
second per model x provider x batch, and each provider's speed-up over the last one listed (CPU).

Models whose files are not on the model path, or that cannot take a batch (a static batch-1 graph), are
reported and skipped. OpenVINO's models (YuNet in ``fast``, reid-0095, MobileFaceNet y1) do not run on
onnxruntime: OpenVINO has no NVIDIA plug-in, so on an NVIDIA machine they stay on the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from facewise.models import runtime
from facewise.models.catalogue import is_available, resolve

# model id -> how to find its ONNX files; dlib's ResNet is converted once from its .dat (cached)
MODELS = ("dlib-resnet-v1", "scrfd-2.5g", "mobilefacenet-128", "fsanet", "minifasnet-v2-v1se", "expression-fer7")


def onnx_files(model_id: str) -> list[Path]:
    if model_id == "dlib-resnet-v1":
        from facewise.models.convert.dlib_dnn import cached_onnx

        return [cached_onnx(resolve(model_id)[0])]
    if model_id == "expression-fer7":
        from facewise.models.attributes.expression import DEFAULT_MODEL_PATH

        return [DEFAULT_MODEL_PATH]
    return [p for p in resolve(model_id) if p.suffix == ".onnx"]


SIDE = 640  # a dynamic height or width (SCRFD): the detector's working size for a photo


def feed(sess: Any, batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    out = {}
    for inp in sess.get_inputs():
        shape = [batch if i == 0 else (d if isinstance(d, int) else SIDE) for i, d in enumerate(inp.shape)]
        if isinstance(inp.shape[0], int) and inp.shape[0] != batch:
            raise ValueError(f"static batch {inp.shape[0]}")
        if "uint8" in inp.type:
            out[inp.name] = rng.integers(0, 256, shape, dtype=np.uint8)
        else:
            out[inp.name] = rng.standard_normal(shape).astype(np.float32)
    return out


def time_runs(sess: Any, inputs: dict[str, np.ndarray], seconds: float) -> float:
    """Runs per second: a warm-up, then as many runs as fit in ``seconds`` (at least 5)."""
    for _ in range(3):
        sess.run(None, inputs)
    n, t0 = 0, time.perf_counter()
    while n < 5 or time.perf_counter() - t0 < seconds:
        sess.run(None, inputs)
        n += 1
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--providers", default="cuda,cpu", help="providers to compare, comma-separated; the last is "
                    "the baseline of the speed-ups")
    ap.add_argument("--batches", default="1,16,64")
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--threads", type=int, default=0, help="CPU intra-op threads (0: facewise's default)")
    ap.add_argument("--onnx", type=Path, action="append", default=[],
                    help="another ONNX file to time (repeatable), e.g. a converted graph whose source is not here")
    ap.add_argument("--models", default=",".join(MODELS), help="model ids to time (default: every ONNX model)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    import onnxruntime as ort

    providers = [p.strip() for p in args.providers.split(",") if p.strip()]
    batches = [int(b) for b in args.batches.split(",")]
    rng = np.random.default_rng(0)
    result: dict[str, Any] = {"onnxruntime": ort.__version__, "available": ort.get_available_providers(),
                              "cpus": os.cpu_count(), "threads": args.threads or runtime.default_threads(),
                              "models": {}}
    todo: list[tuple[str, list[Path] | None]] = [(m, None) for m in args.models.split(",") if m]
    todo += [(f"file:{p.name}", [p]) for p in args.onnx]
    for model, given in todo:
        if given is None and model != "expression-fer7" and not is_available(model):
            result["models"][model] = {"skipped": "files not on the model path"}
            continue
        try:
            files = given or onnx_files(model)
        except Exception as exc:  # a converter that cannot run here, say
            result["models"][model] = {"skipped": f"{type(exc).__name__}: {exc}"}
            continue
        rows: dict[str, Any] = {}
        outputs: dict[tuple[str, str], np.ndarray] = {}
        for path in files:
            for prov in providers:
                with runtime.requested((prov, "cpu")):
                    sess = runtime.onnx_session(path, args.threads)
                ran_on = sess.get_providers()[0]
                probe = feed(sess, 1, np.random.default_rng(1))  # the same input on every provider
                outputs[(path.name, prov)] = np.asarray(sess.run(None, probe)[0], np.float64)
                for b in batches:
                    try:
                        rate = time_runs(sess, feed(sess, b, rng), args.seconds) * b
                    except Exception as exc:
                        rows[f"{path.name} {prov} b{b}"] = {"skipped": str(exc).splitlines()[0][:120]}
                        continue
                    rows[f"{path.name} {prov} b{b}"] = {"ran_on": ran_on, "items_per_s": round(rate, 1)}
                print(f"{model} {path.name} {prov} done", file=sys.stderr)
        base = providers[-1]
        for path in files:  # do the providers agree? (largest absolute difference of the first output)
            ref_out = outputs.get((path.name, base))
            for prov in providers[:-1]:
                got = outputs.get((path.name, prov))
                if got is not None and ref_out is not None and got.shape == ref_out.shape:
                    rows[f"{path.name} {prov} agrees"] = {f"max_abs_diff_vs_{base}": float(np.abs(got - ref_out).max())}
        for key, row in list(rows.items()):
            if key.endswith(" agrees"):
                continue
            name, prov, bs = key.rsplit(" ", 2)
            ref = rows.get(f"{name} {base} {bs}", {})
            if prov != base and "items_per_s" in row and "items_per_s" in ref:
                row[f"vs_{base}"] = round(row["items_per_s"] / ref["items_per_s"], 2)
        result["models"][model] = rows
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print(f"onnxruntime {result['onnxruntime']}, providers {', '.join(result['available'])}")
    print("| model file | provider | batch | ran on | items/s | speed-up |")
    print("|---|---|---|---|---|---|")
    for model, rows in result["models"].items():
        if "skipped" in rows:
            print(f"| {model} | | | skipped: {rows['skipped']} | | |")
            continue
        for key, row in rows.items():
            if key.endswith(" agrees"):
                print(f"| {key.rsplit(' ', 2)[0]} | {key.rsplit(' ', 2)[1]} vs {providers[-1]} | | "
                      f"max abs diff {next(iter(row.values())):.2e} | | |")
                continue
            name, prov, bs = key.rsplit(" ", 2)
            up = next((f"{v}x" for k, v in row.items() if k.startswith("vs_")), "")
            print(f"| {name} | {prov} | {bs[1:]} | {row.get('ran_on', row.get('skipped', ''))} | "
                  f"{row.get('items_per_s', '')} | {up} |")


if __name__ == "__main__":
    main()
