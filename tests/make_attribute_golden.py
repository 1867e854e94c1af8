"""Writes tests/data/attribute_golden.json: what each attribute gave on real photos before the plug-in rewrite
(the expression entries were re-taken when mirror test-time augmentation was switched on).

Run with the code to take the goldens from on PYTHONPATH (they were taken from main before issue 12):
``PYTHONPATH=/work/main/src python tests/make_attribute_golden.py``. Faces are stored by box and landmarks so
the check does not depend on the detector.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from facewise.core.analysis import Analyzer
from facewise.core.imageio import load_image
from facewise.core.pipeline import Pipeline

DATA = Path(os.environ.get("FACEWISE_DATA", "../shared/data"))
IMAGES = [
    "liveness/silentface_samples/images/sample/image_T1.jpg",
    "liveness/silentface_samples/images/sample/image_F1.jpg",
    "video/face_recognition_examples/examples/knn_examples/test/obama_and_biden.jpg",
    "lfw/images/Aaron_Peirsol/Aaron_Peirsol_0001.jpg",
    "liveness/silentface_samples/images/sample/image_F2.jpg",
    "liveness/nuaa/fake/0001_0001_00_00_01_0.jpg",
]
WHATS = [("live", "pose", "expression"), ("live", "live_map")]
# variant -> how main's Analyzer was set up: as shipped, MiniFASNet alone (``evaluate liveness --model
# minifasnet``), without the FSANet head-pose model (pose from the five landmarks)
VARIANTS = ("shipped", "minifasnet", "no-fsanet")


def analyzer_for(variant: str) -> Analyzer:
    a = Analyzer()
    if variant == "minifasnet":
        a.live_model = a.antispoof
    elif variant == "no-fsanet":
        a.headpose = None
    return a


def main() -> None:
    pipe = Pipeline("default").load()
    out = []
    for variant in VARIANTS:
        analyzer = analyzer_for(variant)
        for rel in IMAGES:
            img = load_image(DATA / rel)
            dets = pipe.detect(img)[1]
            for what in WHATS if variant == "shipped" else WHATS[:1]:
                faces = analyzer.analyze(img.pixels, pipe.make_faces(img.pixels, dets), what)
                out.append({"variant": variant, "image": rel, "what": list(what),
                            "faces": [{"box": [float(v) for v in (f.box.x1, f.box.y1, f.box.x2, f.box.y2)],
                                       "landmarks": np.asarray(f.landmarks).tolist(),
                                       "landmarks_dtype": str(np.asarray(f.landmarks).dtype),
                                       "det_score": f.det_score, "quality": f.quality.score,
                                       "reasons": f.quality.reasons, "attributes": f.attributes} for f in faces]})
    Path(__file__).with_name("data").joinpath("attribute_golden.json").write_text(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
