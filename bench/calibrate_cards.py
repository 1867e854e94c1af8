"""Write LFW-calibrated default thresholds into the model cards of the embedders.

    python bench/lfw_embed_all.py --detector yunet-2023mar --models reid-0095,mobilefacenet-y1,mobilefacenet-128
    facewise eval pairs --pairs ../shared/data/lfw/pairs.txt --profile default
    python bench/calibrate_cards.py

Protocol: every image named by LFW View-2 pairs.txt (7,701 images, 4,281 people), one embedding per
image without flip; impostor scores = 2,000,000 random pairs of images of different people (seed 0);
genuine = every same-person pair. Thresholds at FAR 1e-1 ... 1e-6 with 95 % bootstrap intervals.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from facewise.decision.calibration import Calibration
from facewise.eval.calibrate import labelled_scores
from facewise.eval.embed import EmbeddedImages
from facewise.models.catalogue import CARDS_DIR, cache_dir, card

CACHE = Path(os.environ.get("FACEWISE_EVAL_CACHE", cache_dir().parent / "eval"))
SETS = {
    "sweep-yunet-2023mar-reid-0095-mobilefacenet-y1-mobilefacenet-128-noflip-*.npz":
        ["reid-0095", "mobilefacenet-y1", "mobilefacenet-128"],
    # the default profile is dlib-hog + dlib-resnet-v1 without flip: its `facewise eval pairs` cache
    "default-{default_key}.npz": ["dlib-resnet-v1"],
}
FARS = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)


def main() -> None:
    from facewise.core.pipeline import Pipeline
    from facewise.eval.embed import _cache_key

    default_key = _cache_key(Pipeline("default"), "center")
    for pattern, models in SETS.items():
        files = sorted(CACHE.glob(pattern.format(default_key=default_key)))
        if not files:
            print(f"no cache for {pattern}: run bench/lfw_embed_all.py first")
            continue
        z = np.load(files[0])
        paths = [str(k).split("|")[0] for k in z["keys"]]
        labels = [Path(p).parent.name for p in paths]
        start = 0
        for m in models:
            d = int(card(m).output_dim or 0)
            block = z["vectors"][:, start : start + d]
            start += d
            block = block / np.maximum(np.linalg.norm(block, axis=1, keepdims=True), 1e-12)
            emb = EmbeddedImages(paths, block.astype(np.float32), z["yaw"], z["quality"], z["no_face"], z["failed"])
            gen, imp = labelled_scores(emb, labels)
            cal = Calibration.fit(imp, gen)
            rows = cal.thresholds_at([f for f in FARS if f * cal.n_impostor >= 1])
            path = CARDS_DIR / f"{m}.json"
            doc = json.loads(path.read_text())
            doc["thresholds"] = {
                "protocol": "LFW View-2 images, all genuine pairs, 2M random impostor pairs, no flip "
                            "(bench/calibrate_cards.py)",
                "at_far": {f"{r.far:g}": {"threshold": round(r.threshold, 4), "low": round(r.low, 4),
                                          "high": round(r.high, 4), "tar": round(r.tar or 0, 4)} for r in rows},
            }
            path.write_text(json.dumps(doc, indent=2) + "\n")
            print(m, {k: v["threshold"] for k, v in doc["thresholds"]["at_far"].items()})


if __name__ == "__main__":
    main()
