"""Which detector finds the turned faces: every Color FERET image through each detector of a cascade.

    python bench/cascade.py [--profile accurate] [--detector dlib-hog] [--stages yuface,scrfd-2.5g] [--tight]

Runs the profile's detector (as the profile sets it, retries included or not; ``--detector`` puts
another first) on every image of ``pose/feret/images`` (200 identities x fa, fb, hl, hr, pl, pr), then
the cascade's detectors in turn where it finds nothing, and counts per FERET pose label: found by the
first detector's first pass, by its retries (upscaled / padded, where the profile turns them on), by
each cascade stage (what the earlier ones missed), and by none (the centre-prior fallback of the
evaluation). ``--tight`` crops each photo to the face box YuNet finds on it first (a pre-cropped face
photo: ear and chin touch the border). ``--all-stages`` also counts what every detector finds alone.
"""

from __future__ import annotations

import argparse
import json
import os
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from facewise.core.cascade import cascade_detectors, detect_with_cascade
from facewise.core.imageio import load_image
from facewise.core.pipeline import Pipeline
from facewise.models.profiles import load_profile
from facewise.models.registry import load_detector

DATA = Path(os.environ.get("FACEWISE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
IMAGES = DATA / "pose" / "feret" / "images"
LABELS = {"fa": "frontal", "fb": "frontal", "hl": "half", "hr": "half", "pl": "profile", "pr": "profile"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="accurate")
    ap.add_argument("--stages", default="scrfd-2.5g,dlib-hog", help="the cascade, comma-separated")
    ap.add_argument("--detector", help="the first detector (default: the profile's)")
    ap.add_argument("--tight", action="store_true", help="crop each photo to YuNet's face box first")
    ap.add_argument("--all-stages", action="store_true", help="also run every stage on every image")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    prof = load_profile(args.profile)
    if args.detector:
        prof = replace(prof, detector=args.detector, detector_options={}, detector_fallback=None)
    pipe = Pipeline(prof, threads=1)
    stages = cascade_detectors(tuple(s for s in args.stages.split(",") if s), threads=1)
    cropper = load_detector("yunet-2023mar", 1, (("engine", "openvino"),)) if args.tight else None
    paths = sorted(IMAGES.glob("*/*.jpg"))
    found: dict[str, Counter[str]] = {}
    alone: dict[str, Counter[str]] = {}
    for p in paths:
        label = LABELS.get(p.stem.rsplit("_", 1)[-1], "other")
        px = load_image(p).pixels
        if cropper is not None:
            first = cropper.detect(px)
            if not first:
                continue
            b = first[0].box
            px = np.ascontiguousarray(px[max(0, int(b.y1)):int(b.y2), max(0, int(b.x1)):int(b.x2)])
        dets = detect_with_cascade(pipe.detector, stages, px)
        how = dets[0].found_by if dets else "none (centre prior)"
        found.setdefault(label, Counter())[how] += 1
        if args.all_stages:
            for d in [pipe.detector, *stages]:
                alone.setdefault(d.model_id, Counter())[label] += bool(d.detect(px))
    counts = {k: dict(sorted(v.items())) for k, v in sorted(found.items())}
    out: dict[str, Any] = {"profile": pipe.profile.name, "detector": pipe.profile.detector, "tight": args.tight,
                           "detector_options": pipe.profile.detector_options,
                           "cascade": [d.model_id for d in stages],
                           "images": sum(sum(v.values()) for v in found.values()),
                           "found_by": counts}
    if args.all_stages:
        out["each_alone"] = {k: dict(v) for k, v in alone.items()}
    print(json.dumps(out, indent=None if args.json else 1))


if __name__ == "__main__":
    main()
