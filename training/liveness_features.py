"""Extract the fused-liveness features (MiniFASNet's two scales + cues) of a liveness data set, once.

Every sample goes through the product's path: resized (``--size``; 0 keeps the native size), the
profile's detector, the largest face; a sample without a face gets a NaN row (the product refuses it).
Writes ``<out>/<name>.npz`` with ``features`` [N, F], ``label`` (1 bona fide, 0 attack), ``names``.

    python training/liveness_features.py --root ../shared/data/liveness/apfol/dataset --name apfol --size 224
    python training/liveness_features.py --root ../shared/data/liveness/nuaa --name nuaa --size 0
    python training/liveness_features.py --root ../shared/data/liveness/silentface_samples/images/sample \\
        --name silentface --size 0          # flat folder: image_T* bona fide, image_F* attacks
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np

from facewise.core.analysis import Analyzer
from facewise.core.pipeline import Pipeline
from facewise.eval.liveness import collect
from facewise.models.attributes.livefusion import FEATURES, feature_matrix


def _split_flat(root: Path, tmp: Path) -> Path:
    """Silent-Face's samples are one flat folder; link them into real/ and fake/."""
    for label, prefix in (("real", "image_T"), ("fake", "image_F")):
        (tmp / label).mkdir(parents=True)
        for f in root.glob(f"{prefix}*"):
            shutil.copy(f, tmp / label / f.name)
    return tmp


def _rescale(rgb: np.ndarray, factor: float) -> np.ndarray:
    if factor == 1.0:
        return rgb
    h, w = rgb.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--size", type=int, default=224, help="resize to size x size first; 0 = native size")
    ap.add_argument("--profile", default="fast")
    ap.add_argument("--rescale", type=float, default=1.0,
                    help="then scale each image by this factor (training-time augmentation: other camera "
                         "distances and resolutions); the file is named <name>@<factor>.npz")
    ap.add_argument("--out", type=Path, default=Path("/tmp/facewise-live-features"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    fas = Analyzer(threads=1).antispoof
    if fas is None:
        raise SystemExit("minifasnet-v2-v1se is not on FACEWISE_MODEL_PATH")
    pipe = Pipeline(args.profile).load()

    def detect(rgb: np.ndarray) -> np.ndarray:
        d = pipe.detector.detect(rgb)
        return np.array([[x.box.x1, x.box.y1, x.box.x2, x.box.y2] for x in d]).reshape(-1, 4)

    with tempfile.TemporaryDirectory() as tmp:
        root = args.root if (args.root / "real").is_dir() else _split_flat(args.root, Path(tmp))
        size = (args.size, args.size) if args.size else None
        rows, labels, names = [], [], []

        def detect_scaled(rgb: np.ndarray) -> np.ndarray:
            return detect(_rescale(rgb, args.rescale))

        def features(rgb: np.ndarray, box: np.ndarray) -> np.ndarray:
            return feature_matrix(fas, _rescale(rgb, args.rescale), box)

        for label in ("real", "fake"):
            n, mat = collect(root / label, features, detect_scaled, size)
            rows.append(mat)
            labels += [int(label == "real")] * len(n)
            names += [f"{label}/{x}" for x in n]
    feats = np.vstack(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    name = args.name if args.rescale == 1.0 else f"{args.name}@{args.rescale:g}"
    np.savez(args.out / f"{name}.npz", features=feats, label=np.array(labels), names=np.array(names),
             feature_names=np.array(FEATURES))
    logging.info("%s: %d samples (%d without a face) -> %s", name, len(labels),
                 int(np.isnan(feats[:, 0]).sum()), args.out / f"{name}.npz")


if __name__ == "__main__":
    main()
