"""Free accuracy for the shipped expression model: test-time augmentation and logit calibration, measured.

Caches the model's logits on a FER2013-layout folder for each view (original, mirrored, shifted by
``--shift`` px in four directions), then reports the accuracy and per-class recall of view combinations
and of a per-class logit bias (prior correction) fitted by 2-fold cross-validation on the same folder
(fit on one half, scored on the other, both ways), so no number is scored on what it was fitted on.

    python training/expression_tta.py --root ../shared/data/fer2013/validation --cache /tmp/fer-tta
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import cv2
import numpy as np
from scipy.optimize import minimize

from facewise.core.imageio import load_image
from facewise.models.attributes.expression import CLASSES, ExpressionModel

log = logging.getLogger("expression_tta")


def views(grey: np.ndarray, shift: int) -> dict[str, np.ndarray]:
    out = {"orig": grey, "flip": grey[:, ::-1]}
    for name, (dx, dy) in {"left": (-shift, 0), "right": (shift, 0), "up": (0, -shift), "down": (0, shift)}.items():
        m = np.float32([[1, 0, dx], [0, 1, dy]])
        out[name] = cv2.warpAffine(grey, m, grey.shape[::-1], borderMode=cv2.BORDER_REPLICATE)
    return out


def load(root: Path) -> tuple[list[np.ndarray], np.ndarray]:
    files = [(i, f) for i, c in enumerate(CLASSES) for f in sorted((root / c).iterdir()) if f.is_file()]
    greys = [cv2.cvtColor(load_image(f).pixels, cv2.COLOR_RGB2GRAY) for _, f in files]
    return greys, np.array([i for i, _ in files])


def fit_bias(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-class additive logit bias minimising cross-entropy (a prior correction; argmax-changing)."""
    def nll(b: np.ndarray) -> tuple[float, np.ndarray]:
        z = logits + b
        z = z - z.max(1, keepdims=True)
        p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
        onehot = np.eye(len(CLASSES))[y]
        return float(-np.log(p[np.arange(len(y)), y] + 1e-12).mean()), (p - onehot).mean(0)
    return minimize(nll, np.zeros(len(CLASSES)), jac=True, method="L-BFGS-B").x


def score(logits: np.ndarray, y: np.ndarray) -> dict[str, object]:
    pred = logits.argmax(1)
    recall = {c: round(float(np.mean(pred[y == i] == i)), 4) for i, c in enumerate(CLASSES)}
    return {"accuracy": round(float(np.mean(pred == y)), 4), "recall": recall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, required=True)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/fer-tta"))
    ap.add_argument("--shift", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args.cache.mkdir(parents=True, exist_ok=True)
    cache = args.cache / f"logits_shift{args.shift}.npz"
    if cache.is_file():
        d = np.load(cache)
        y, logits = d["y"], {k: d[k] for k in d.files if k != "y"}
    else:
        model = ExpressionModel.from_default(intra_op_num_threads=args.threads, batch_size=256)
        greys, y = load(args.root)
        per = [views(g, args.shift) for g in greys]
        logits = {}
        for name in per[0]:
            logits[name] = model.logits([v[name] for v in per])
            log.info("%s: %.4f", name, np.mean(logits[name].argmax(1) == y))
        np.savez(cache, y=y, **logits)

    combos = {"orig": ["orig"], "orig+flip": ["orig", "flip"],
              "orig+4 shifts": ["orig", "left", "right", "up", "down"],
              "orig+flip+4 shifts": ["orig", "flip", "left", "right", "up", "down"]}
    rng = np.random.default_rng(0)
    half = rng.permutation(len(y)) < len(y) // 2
    report = {}
    for name, keys in combos.items():
        z = np.mean([logits[k] for k in keys], axis=0)
        cal = z.copy()
        for fit_on in (half, ~half):  # 2-fold: the bias is never scored on the half it was fitted on
            cal[~fit_on] = z[~fit_on] + fit_bias(z[fit_on], y[fit_on])
        report[name] = {"views": len(keys), **score(z, y), "bias_calibrated_2fold": score(cal, y)}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
