"""CPU cost of the expression model per face, with and without mirror test-time augmentation.

    python bench/expression_cost.py [--root ../shared/data/fer2013/validation] [--faces 300]

One face at a time (as `analyze` runs it on a portrait), one inference thread, process CPU time
(independent of other load on the machine): median and 95th percentile per face, for the shipped
setting (flip) and without it, alternating face by face so both see the same conditions.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import cv2
import numpy as np

from facewise.models.attributes.expression import CLASSES, ExpressionModel

DATA = Path(os.environ.get("FACEWISE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=DATA / "fer2013" / "validation")
    ap.add_argument("--faces", type=int, default=300)
    args = ap.parse_args()
    files = sorted(f for c in CLASSES for f in (args.root / c).glob("*"))[:: max(1, 3589 // args.faces)]
    faces = [cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) for f in files[: args.faces]]
    models = {"flip (shipped)": ExpressionModel.from_default(), "no flip": ExpressionModel.from_default(flip=False)}
    for m in models.values():
        m.predict(faces[:4])  # warm-up
    costs: dict[str, list[float]] = {k: [] for k in models}
    for face in faces:
        for name, m in models.items():
            t = time.process_time()
            m.predict([face])
            costs[name].append((time.process_time() - t) * 1000)
    out = {name: {"median_ms": round(float(np.median(v)), 2), "p95_ms": round(float(np.percentile(v, 95)), 2)}
           for name, v in costs.items()}
    print(json.dumps({"faces": len(faces), "threads": 1, "cpu_ms_per_face": out}))


if __name__ == "__main__":
    main()
