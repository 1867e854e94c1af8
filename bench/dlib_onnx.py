"""dlib's ResNet: dlib itself against its ONNX conversion under a few onnxruntime settings, per chip.

    python bench/dlib_onnx.py [--chips 16] [--rounds 5] [--json]

Chips: 150 px dlib chips of LFW faces (first image of every 100th person). Each variant embeds every chip
with its mirror (the flip of ``accurate``): ``dlib`` one chip at a time as the dlib backend does,
``onnx b1x2`` two batch-1 runs per face, ``onnx b2`` the chip and its mirror in one batch-2 run, ``onnx b32``
all chips and mirrors in one run; onnxruntime variants with 1 or 2 intra-op threads, graph optimisation
basic vs all, the CPU memory arena on or off. Variants run round-robin (the load of other processes hits
all alike); the median of the rounds is reported, as ms per face (chip + mirror), wall and process CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from facewise.core.align import align_many
from facewise.core.imageio import load_image
from facewise.core.pipeline import Pipeline
from facewise.models.catalogue import resolve
from facewise.models.convert.dlib_dnn import cached_onnx
from facewise.models.embedders.dlib_resnet import DLIB_150_TEMPLATE

DATA = Path(os.environ.get("FACEWISE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def lfw_chips(n: int) -> np.ndarray:
    pipe = Pipeline("default")
    chips = []
    for person in sorted(p for p in (DATA / "lfw" / "images").iterdir() if p.is_dir())[::100]:
        pixels = load_image(sorted(person.glob("*.jpg"))[0]).pixels
        dets = pipe.detect_pixels(pixels)
        if dets:
            chips.append(align_many(pixels, [dets[0].landmarks], DLIB_150_TEMPLATE, 150)[0])
        if len(chips) == n:
            break
    return np.stack(chips)


def session(model: Path, threads: int, level: str, arena: bool):  # type: ignore[no-untyped-def]
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = {"basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                                     "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}[level]
    opts.enable_cpu_mem_arena = arena
    return ort.InferenceSession(str(model), sess_options=opts, providers=["CPUExecutionProvider"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chips", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import dlib

    dat = resolve("dlib-resnet-v1")[0]
    model = cached_onnx(dat)
    chips = lfw_chips(args.chips)
    mirrors = np.ascontiguousarray(chips[:, :, ::-1])
    net = dlib.face_recognition_model_v1(str(dat))
    variants: dict[str, Callable[[], object]] = {
        "dlib": lambda: [net.compute_face_descriptor(np.ascontiguousarray(c)) for pair in zip(chips, mirrors,
                                                                                               strict=True)
                         for c in pair],
    }
    for threads in (1, 2):
        for level in ("all", "basic"):
            for arena in (True, False):
                if level == "basic" and not arena:
                    continue
                s = session(model, threads, level, arena)
                tag = f"t{threads} {level}{'' if arena else ' no-arena'}"

                def b1x2(s=s):  # type: ignore[no-untyped-def]
                    return [s.run(None, {"chips": c[None]}) for pair in zip(chips, mirrors, strict=True) for c in pair]

                def b2(s=s):  # type: ignore[no-untyped-def]
                    return [s.run(None, {"chips": np.stack(pair)}) for pair in zip(chips, mirrors, strict=True)]

                def b32(s=s):  # type: ignore[no-untyped-def]
                    return s.run(None, {"chips": np.concatenate([chips, mirrors])})

                variants[f"onnx b1x2 {tag}"] = b1x2
                variants[f"onnx b2 {tag}"] = b2
                if arena:
                    variants[f"onnx b32 {tag}"] = b32
    wall: dict[str, list[float]] = {k: [] for k in variants}
    cpu: dict[str, list[float]] = {k: [] for k in variants}
    for fn in variants.values():  # warm-up
        fn()
    for _ in range(args.rounds):
        for name, fn in variants.items():
            w, c = time.perf_counter(), time.process_time()
            fn()
            wall[name].append((time.perf_counter() - w) * 1000 / len(chips))
            cpu[name].append((time.process_time() - c) * 1000 / len(chips))
    out = {"chips": len(chips), "rounds": args.rounds, "load_average": [round(x, 2) for x in os.getloadavg()],
           "ms_per_face_wall": {k: round(statistics.median(v), 2) for k, v in wall.items()},
           "ms_per_face_cpu": {k: round(statistics.median(v), 2) for k, v in cpu.items()}}
    if args.json:
        print(json.dumps(out, indent=1))
        return
    print(f"{len(chips)} chips, {args.rounds} rounds, load {out['load_average']}; ms per face (chip + mirror)")
    for k in variants:
        print(f"{k:32s} wall {out['ms_per_face_wall'][k]:8.2f}   cpu {out['ms_per_face_cpu'][k]:8.2f}")


if __name__ == "__main__":
    main()
