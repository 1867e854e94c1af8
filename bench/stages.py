"""CPU time per stage of a profile, one thread, on the same LFW images (where `fast`'s time goes).

    python bench/stages.py --images 100 --profiles fast,/path/variant.json [--peer]

Stages: decode, detect (with landmark refiner), quality (``make_faces``), align + embed. CPU time of
the process (``time.process_time``, every thread), so the load of other processes matters less than for
wall time; models run with one inference thread. Prints ms per image per stage.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from facewise.core.imageio import load_image
from facewise.core.pipeline import Pipeline
from facewise.models.profiles import load_profile

DATA = Path(os.environ.get("FACEWISE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


STAGES = ("decode", "detect", "quality", "align+embed")


def stage_times(pipe: Pipeline, path: str, clock: Callable[[], float]) -> tuple[float, float, float, float]:
    """One image through ``pipe``, stage by stage (:data:`STAGES`), each timed by ``clock``."""
    t0 = clock()
    img = load_image(path)
    t1 = clock()
    dets = pipe.detect_pixels(img.pixels)
    t2 = clock()
    faces = pipe.make_faces(img.pixels, dets)
    t3 = clock()
    pipe.embed_landmarks(img.pixels, [x.landmarks for x in faces])
    t4 = clock()
    return t1 - t0, t2 - t1, t3 - t2, t4 - t3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--profiles", default="fast")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--peer", action="store_true", help="also time face_recognition (CPU per image)")
    args = ap.parse_args()
    files = sorted((DATA / "lfw" / "images").glob("*/*.jpg"))
    files = [str(files[i]) for i in np.linspace(0, len(files) - 1, args.images).astype(int)]
    pipes = {}
    for spec in args.profiles.split(","):
        prof = load_profile(spec)
        pipes[spec] = Pipeline(prof, threads=1).load()
    stages = STAGES
    spent = {k: dict.fromkeys(stages, 0.0) for k in pipes}
    for _ in range(args.rounds):  # interleaved, so drift in machine load hits every profile alike
        for f in files:
            for k, pipe in pipes.items():
                for s, dt in zip(stages, stage_times(pipe, f, time.process_time), strict=True):
                    spent[k][s] += dt
    n = len(files) * args.rounds
    peer_ms = None
    if args.peer:  # face_recognition's whole pipeline, same images, same clock
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import face_recognition
        t = time.process_time()
        for _ in range(args.rounds):
            for f in files:
                img = face_recognition.load_image_file(f)
                face_recognition.face_encodings(img, face_recognition.face_locations(img))
        peer_ms = round(1000 * (time.process_time() - t) / n, 2)
    out = {k: {**{s: round(1000 * v / n, 2) for s, v in d.items()}, "total": round(1000 * sum(d.values()) / n, 2)}
           for k, d in spent.items()}
    doc = {"images": len(files), "rounds": args.rounds, "cpu_ms_per_image": out}
    if peer_ms is not None:
        doc["face_recognition_cpu_ms_per_image"] = peer_ms
        doc["cpu_ratio_vs_face_recognition"] = {k: round(peer_ms / v["total"], 2) for k, v in out.items()}
    print(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
