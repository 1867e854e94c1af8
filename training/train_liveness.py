"""Fit the fused liveness model (MiniFASNet's two scales + cues, logistic) and report every direction.

Input: feature files written by ``training/liveness_features.py`` (one ``.npz`` per data set).
Recipe, fixed before looking at any test set: the features whose direction physics fixes
(``SIGNS``: more high-frequency detail and colour = live; moire peaks, glare, a straight border
= attack; MiniFASNet's logits = live), each coefficient bounded to that sign, standardised
inputs, class-balanced logistic loss with the L2 strength of scikit-learn's default (C = 1),
solved by scipy's L-BFGS-B. Decision point: P(live) = 0.5, the boundary fitted on the training
set. ``chroma_std`` is computed and explained but left out: its direction flips between sets.

    python training/train_liveness.py --features /tmp/facewise-live-features \\
        --train nuaa apfol --out src/facewise/models/weights/liveness-fused.weights --report
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from facewise.eval.liveness import fit_threshold, product_eer, product_rates
from facewise.models.attributes.livefusion import FEATURES, FusionWeights, one_sided

SIGNS = {"fas_v2": 1, "fas_v1se": 1, "hf_energy": 1, "moire": -1, "specular": -1, "saturation": 1, "edge": -1}
C = 1.0
SETS = ("apfol", "nuaa", "silentface")


def load(folder: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    d = np.load(folder / f"{name}.npz")
    if tuple(d["feature_names"]) != FEATURES:
        raise SystemExit(f"{name}.npz has features {list(d['feature_names'])}, expected {list(FEATURES)}")
    return d["features"], d["label"]


def training_data(data: dict[str, tuple[np.ndarray, np.ndarray]], train: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The training sets' rows, with their rescaled copies (``<set>@<factor>``) when loaded."""
    keys = [k for k in data if k.split("@")[0] in train]
    return np.vstack([data[k][0] for k in keys]), np.concatenate([data[k][1] for k in keys])


def fit(x: np.ndarray, y: np.ndarray, train: list[str], c: float = C, one_sided_cues: bool = False) -> FusionWeights:
    """Sign-bounded, class-balanced, L2 (strength 1 / c) logistic regression on the rows with a face.

    ``one_sided_cues``: a cue only counts on the attack side of its bona fide median (absence of an
    attack artefact is no evidence of life); MiniFASNet's logits stay two-sided.
    """
    ok = ~np.isnan(x[:, 0])
    feats = list(SIGNS)
    z = x[ok][:, [FEATURES.index(f) for f in feats]]
    y = y[ok].astype(float)
    mean, scale = z.mean(0), z.std(0) + 1e-9
    z = (z - mean) / scale
    signs = [SIGNS[f] for f in feats]
    hinge: list[float | None] | None = None
    if one_sided_cues:
        hinge = [None if f.startswith("fas_") else float(np.median(z[y == 1, j])) for j, f in enumerate(feats)]
        z = one_sided(z, hinge, signs)
    w = np.where(y == 1, len(y) / (2 * y.sum()), len(y) / (2 * (len(y) - y.sum())))

    def loss(p: np.ndarray) -> tuple[float, np.ndarray]:
        s = p[0] + z @ p[1:]
        nll = np.where(y == 1, np.logaddexp(0, -s), np.logaddexp(0, s))
        g = w * (1 / (1 + np.exp(-s)) - y)
        return float((w * nll).sum() + 0.5 / c * (p[1:] ** 2).sum()), np.r_[g.sum(), z.T @ g + p[1:] / c]

    bounds = [(None, None)] + [(0, None) if SIGNS[f] > 0 else (None, 0) for f in feats]
    res = minimize(loss, np.zeros(len(feats) + 1), jac=True, method="L-BFGS-B", bounds=bounds)
    if not res.success:
        raise SystemExit(f"fit did not converge: {res.message}")
    return FusionWeights(tuple(feats), mean, scale, res.x[1:], float(res.x[0]), 0.5,
                         {"trained_on": train, "n_train": int(ok.sum()), "recipe": "training/train_liveness.py",
                          "threshold_note": "0.5 = the logistic boundary fitted on the training sets; "
                                            "fit your own with `facewise calibrate-liveness`",
                          **({"hinge": hinge, "signs": signs} if hinge else {})})


def rates_row(real: np.ndarray, fake: np.ndarray, thr: float) -> str:
    r = product_rates(real, fake, thr)
    return f"{r['apcer']:.3f} | {r['bpcer']:.3f} | {r['acer']:.3f}"


def report(data: dict[str, tuple[np.ndarray, np.ndarray]], c: float = C, one_sided_cues: bool = False) -> list[str]:
    """Markdown rows: every train -> test direction, three thresholds, MiniFASNet alone as reference."""
    lines = ["| model | fitted on | tested on | threshold (from) | APCER | BPCER | ACER | EER |",
             "|---|---|---|---|---|---|---|---|"]

    def fas_mean(x: np.ndarray) -> np.ndarray:
        return (1 / (1 + np.exp(-x[:, 0])) + 1 / (1 + np.exp(-x[:, 1]))) / 2

    trains = [["nuaa"], ["apfol"], ["nuaa", "apfol"]]
    for train in [None, *trains]:
        if train is None:
            score, name, fitted, thr0 = fas_mean, "MiniFASNet", "–", 0.5
            train_scores = None
        else:
            x, y = training_data(data, train)
            wts = fit(x, y, train, c, one_sided_cues)
            score, name, fitted, thr0 = wts.probability, "fused", "+".join(train), 0.5
            train_scores = score(np.vstack([data[t][0] for t in train]))[
                np.concatenate([data[t][1] for t in train]) == 1]
        for test in SETS:
            if train is not None and test in train and len(train) == 1:
                continue  # in-domain rows only for the combined model
            x, y = data[test]
            s = score(x)
            real, fake = s[y == 1], s[y == 0]
            eer, _ = product_eer(real, fake)
            thrs = [(thr0, "card" if train is None else "boundary, " + fitted)]
            if train_scores is not None and len(train) == 1:
                thrs.append((fit_threshold(train_scores), f"5 % BPCER on {fitted} bona fide"))
            if (~np.isnan(real)).sum() >= 10:
                thrs.append((fit_threshold(real), f"5 % BPCER on {test} bona fide"))
            for thr, src in thrs:
                lines.append(f"| {name} | {fitted} | {test} | {thr:.3f} ({src}) | {rates_row(real, fake, thr)} "
                             f"| {eer:.3f} |")
    return lines


def write_card(weights: Path, wts: FusionWeights) -> None:
    """The model card next to the weights (``<stem>.json``): sha256, size, what and how."""
    data = weights.read_bytes()
    factors = wts.meta.get("augment_rescale") or []
    augment = (" --augment " + " ".join(f"{a:g}" for a in factors)) if factors else ""
    card = {"id": weights.stem, "task": "antispoof-fusion", "backend": "numpy",
            "files": [weights.name], "sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
            "licence": "Apache-2.0 (project); fitted on NUAA (academic research) and the apfol crops (no licence "
                       "stated)", "commercial_use": False,
            "source": "trained by facewise, training/train_liveness.py",
            "input": {"features": list(wts.features), "note": "logit P(live) of MiniFASNet V2 / V1SE, then the "
                      "cues of facewise.models.attributes.livecues on the face box"},
            "thresholds": {"live": wts.threshold, "note": "the logistic boundary; fit your own on your bona fide "
                           "samples with `facewise calibrate-liveness`"},
            "training": {"trained_on": wts.meta.get("trained_on"), "n": wts.meta.get("n_train"),
                         "command": "python training/liveness_features.py ... (one per set); python "
                                    "training/train_liveness.py --train " + " ".join(wts.meta.get("trained_on", []))
                                    + augment + " --out " + weights.name}}
    weights.with_suffix(".json").write_text(json.dumps(card, indent=1) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--features", type=Path, default=Path("/tmp/facewise-live-features"))
    ap.add_argument("--train", nargs="+", default=["nuaa", "apfol"], choices=SETS)
    ap.add_argument("--out", type=Path, help="write the fitted weights (JSON) here")
    ap.add_argument("--report", action="store_true", help="print the cross-domain table (markdown)")
    ap.add_argument("--augment", nargs="*", type=float, default=[],
                    help="also train on the rescaled copies <set>@<factor>.npz for these factors")
    ap.add_argument("--one-sided", action="store_true",
                    help="cues count only on the attack side of their bona fide median")
    ap.add_argument("--C", type=float, default=C, dest="c", help="inverse L2 strength (sensitivity check)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    data = {s: load(args.features, s) for s in SETS}
    data.update({f"{s}@{f:g}": load(args.features, f"{s}@{f:g}") for s in SETS for f in args.augment
                 if (args.features / f"{s}@{f:g}.npz").is_file()})
    if args.report:
        print("\n".join(report(data, args.c, args.one_sided)))
    if args.out:
        x, y = training_data(data, args.train)
        wts = fit(x, y, args.train, args.c, args.one_sided)
        if args.augment:
            wts.meta["augment_rescale"] = args.augment
        args.out.write_text(json.dumps(wts.to_dict(), indent=1) + "\n")
        write_card(args.out, wts)
        logging.info("wrote %s: %s", args.out, dict(zip(wts.features, wts.coef.round(3), strict=True)))


if __name__ == "__main__":
    main()
