"""Cost of the fused liveness score and of its occlusion map, as ratios to MiniFASNet alone (one process).

    python bench/liveness_cost.py [IMAGE]
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from facewise.core.analysis import Analyzer
from facewise.core.imageio import load_image
from facewise.core.pipeline import Pipeline

DATA = Path(os.environ.get("FACEWISE_DATA", "../shared/data"))


def per_call(fn: Callable[[], object], n: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DATA / "liveness/nuaa/real/0001_0001_00_00_01_0.jpg"
    analyzer = Analyzer()
    fused, fas = analyzer.live_model, analyzer.antispoof
    img = load_image(path).pixels
    d = Pipeline("fast").load().detector.detect(img)[0]
    box = np.array([[d.box.x1, d.box.y1, d.box.x2, d.box.y2]])
    base = per_call(lambda: fas.live_scores(img, box), 30)
    fused_t = per_call(lambda: fused.live_scores(img, box), 30)
    map_t = per_call(lambda: fused.explain(img, box[0]), 5)
    logging.info("fused score %.2fx MiniFASNet alone; score + cues + occlusion map %.1fx (MiniFASNet %.1f ms here)",
                 fused_t / base, map_t / base, base * 1e3)


if __name__ == "__main__":
    main()
