"""What one profile's first image costs right after another profile ran (the bench's chunk switch).

    python bench/switch_cost.py [--before default] [--after fast] [--chunks 10]
    FACEWISE_ORT_SPIN=1 python bench/switch_cost.py      # onnxruntime's own default: idle threads spin

For each chunk of 20 LFW images, ``--before`` runs ``analyze_many`` on the chunk, then ``--after`` runs the
first three images one at a time, each stage timed (wall ms: decode, detect, quality, align + embed).
Printed: the mean per stage for image 1, 2 and 3 after the switch. With spinning onnxruntime threads the
first detection after ``default`` (dlib's ResNet on onnxruntime) waits for them (docs/SPEED.md).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from stages import STAGES, stage_times

from facewise.core.imageio import load_image
from facewise.core.pipeline import Pipeline
from facewise.models.profiles import load_profile

DATA = Path(os.environ.get("FACEWISE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", default="default")
    ap.add_argument("--after", default="fast")
    ap.add_argument("--chunks", type=int, default=10)
    args = ap.parse_args()
    files = sorted((DATA / "lfw" / "images").glob("*/*.jpg"))
    files = [str(files[i]) for i in np.linspace(0, len(files) - 1, 20 * args.chunks).astype(int)]
    before = Pipeline(load_profile(args.before)).load()
    after = Pipeline(load_profile(args.after)).load()
    for f in files[:3]:  # warm-up: every shape compiled, every session run once
        after.analyze(load_image(f))
        before.analyze_many(files[:3])
    spent = np.zeros((3, 4))
    for c in range(0, len(files), 20):
        chunk = files[c : c + 20]
        before.analyze_many(chunk)
        for i, f in enumerate(chunk[:3]):
            spent[i] += stage_times(after, f, time.perf_counter)
    ms = spent / args.chunks * 1000
    print(json.dumps({"before": args.before, "after": args.after, "ort_spin": os.environ.get("FACEWISE_ORT_SPIN", "0"),
                      "ms_per_stage": {f"image {i + 1}": dict(zip(STAGES,
                                                                   np.round(ms[i], 2).tolist(), strict=True))
                                       for i in range(3)}}, indent=1))


if __name__ == "__main__":
    main()
