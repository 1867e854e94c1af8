"""Accuracy on turned faces: Color FERET frontal-half and frontal-profile pairs, by pose, per yaw source.

    python bench/pose.py --profile accurate [--fit]

Embeds every image of ``pose/feret/{frontal_half,frontal_profile}_pairs.csv`` once with the profile
(central face, centre prior when none is found, as ``facewise eval pairs`` does), keeps both yaw
estimates of each face (five landmarks and FSA-Net), then scores the pairs with the profile's
pose-aware fusion driven by each yaw source. Prints 10-fold accuracy per pair list and accuracy at
the best global threshold by the FERET pose label of the turned image (hl/hr about 67 deg, pl/pr
about 90 deg) and by the estimated yaw bin. ``--fit`` also sweeps the fade points (full weight until
``a`` degrees, zero at ``b``) on the frontal-half pairs and scores the best on the frontal-profile
pairs. ``--json`` prints one JSON object. ``--lfw-fade-changes`` instead counts the LFW pairs whose
fade weight FSA-Net yaw would change (the pairs an LFW re-run has to look at).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from facewise.core.imageio import load_image
from facewise.core.pipeline import Pipeline
from facewise.decision.fusion import FusionScorer
from facewise.eval.embed import central_face, centre_prior
from facewise.eval.pairs import parse_pairs_csv
from facewise.eval.verification import PairScores, evaluate, pose_bin
from facewise.models.attributes.headpose import pose_from_landmarks
from facewise.models.profiles import load_profile

DATA = Path(os.environ.get("FACEWISE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
FERET = DATA / "pose" / "feret"
LISTS = ("frontal_half_pairs.csv", "frontal_profile_pairs.csv")


def embed(pipe: Pipeline, paths: list[str]) -> dict[str, np.ndarray]:
    """Vectors, landmark yaw, FSA-Net yaw, quality and the no-face flag of every image."""
    from facewise.core.quality import assess

    fsanet = Pipeline(replace(pipe.profile, yaw="fsanet")).headpose
    n = len(paths)
    out = {"vec": np.zeros((n, pipe.dim), np.float32), "yaw_landmarks": np.zeros(n, np.float32),
           "yaw_fsanet": np.zeros(n, np.float32), "quality": np.zeros(n, np.float32), "no_face": np.zeros(n, bool)}
    for i, p in enumerate(paths):
        px = load_image(p).pixels
        h, w = px.shape[:2]
        faces = pipe.make_faces(px, pipe.detect_pixels(px))
        if faces:
            f = central_face(faces, w, h)
            det_box, lm, q = f.box, f.landmarks, f.quality.score
        else:
            d = centre_prior(w, h)
            det_box, lm = d.box, d.landmarks
            q = assess(px, d, pose_from_landmarks(lm)[0], pipe.quality_policy).score
            out["no_face"][i] = True
        out["vec"][i] = pipe.embed_landmarks(px, [lm])[0]
        out["yaw_landmarks"][i] = pose_from_landmarks(lm)[0]
        out["yaw_fsanet"][i] = fsanet.estimate(px, [[det_box.x1, det_box.y1, det_box.x2, det_box.y2]])[0, 0]
        out["quality"][i] = q
        if i % 100 == 0:
            print(f"  {i}/{n}", file=sys.stderr)
    return out


class _Emb:  # the slice of EmbeddedImages that PairScores.from_embedded reads
    def __init__(self, paths: list[str], e: dict[str, np.ndarray], yaw: np.ndarray) -> None:
        self.paths, self.vectors, self.yaw, self.quality = paths, e["vec"], yaw, e["quality"]
        self.no_face, self.failed, self.found_by = e["no_face"], np.zeros(len(paths), bool), None
        self._where = {p: i for i, p in enumerate(paths)}

    def rows(self, ps: list[Any]) -> np.ndarray:
        return np.array([self._where[os.fspath(p)] for p in ps], np.int64)


def score(profile_dict: dict[str, Any], plist: list[Any], emb: _Emb) -> dict[str, Any]:
    from facewise.models.profiles import Profile

    scorer = FusionScorer(Profile.from_dict(profile_dict))
    v, y, q = emb.vectors, emb.yaw, emb.quality
    fn = None if scorer.plain else (lambda a, b: scorer.scores(v[a], v[b], y[a], y[b], q[a], q[b]))
    ps = PairScores.from_embedded(plist, emb, fn)  # type: ignore[arg-type]
    rep = evaluate(ps, n_boot=10)
    _, thr = _best_threshold(ps)
    right = (ps.scores >= thr) == ps.labels
    by_label: dict[str, Any] = {}
    for p, ok, yw in zip(plist, right, np.abs(ps.yaw).max(1), strict=True):
        tag = Path(p.path2).stem.rsplit("_", 1)[-1][:1]  # h or p: the turned image of the pair
        label = {"h": "half (hl/hr)", "p": "profile (pl/pr)"}.get(tag, "other")
        for key in (f"label {label}", f"estimated yaw {pose_bin(float(yw))}"):
            n, k = by_label.get(key, (0, 0))
            by_label[key] = (n + 1, k + int(ok))
    return {"accuracy": round(rep.accuracy, 5), "std": round(rep.accuracy_std, 5),
            "by_bin": {k: {"pairs": n, "accuracy_at_global_threshold": round(k2 / n, 4)}
                       for k, (n, k2) in sorted(by_label.items())}}


def _best_threshold(ps: PairScores) -> tuple[float, float]:
    from facewise.eval import metrics as mt

    return mt.best_accuracy_threshold(ps.scores, ps.labels)


def with_fade(d: dict[str, Any], a: float, b: float) -> dict[str, Any]:
    d = json.loads(json.dumps(d))
    for r in d.get("fusion", {}).get("rules", []):
        if r.get("on") == "yaw":
            r["full_until"], r["zero_at"] = a, b
    return d


def lfw_fade_changes(prof: Any) -> dict[str, int]:
    """How many LFW View-2 pairs get another fade weight when yaw comes from FSA-Net instead of the
    landmarks (the pairs whose LFW score would change; everything else scores the same)."""
    from facewise.eval.pairs import parse_lfw_pairs

    rules = [r for r in prof.fusion.get("rules", []) if r.get("on") == "yaw"]
    if not rules:
        return {"pairs": 0, "changed": 0, "faded_more": 0}
    lo, hi = float(rules[0]["full_until"]), float(rules[0]["zero_at"])
    plist = parse_lfw_pairs(DATA / "lfw" / "pairs.txt", DATA / "lfw" / "images")
    paths = list(dict.fromkeys(str(x) for p in plist for x in (p.path1, p.path2)))
    pipe = Pipeline(replace(prof, yaw="fsanet"), threads=1)
    yaws: dict[str, tuple[float, float]] = {}
    for f in paths:
        px = load_image(f).pixels
        faces = pipe.make_faces(px, pipe.detect_pixels(px))
        if faces:
            c = central_face(faces, px.shape[1], px.shape[0])
            yaws[f] = (abs(pose_from_landmarks(c.landmarks)[0]), abs(c.yaw))
    changed = more = 0
    for p in plist:
        a, b = yaws.get(str(p.path1)), yaws.get(str(p.path2))
        if a is None or b is None:
            continue
        w = [float(np.clip((hi - max(a[k], b[k])) / (hi - lo), 0, 1)) for k in (0, 1)]
        changed += abs(w[0] - w[1]) > 1e-6
        more += w[1] < w[0] - 1e-6
    return {"pairs": len(plist), "changed": changed, "faded_more": more}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="accurate")
    ap.add_argument("--fit", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--lfw-fade-changes", action="store_true",
                    help="only count the LFW pairs whose fade weight FSA-Net yaw would change")
    args = ap.parse_args()
    prof = load_profile(args.profile)
    if args.lfw_fade_changes:
        print(json.dumps({"profile": prof.name, "lfw_fade_changes": lfw_fade_changes(prof)}))
        return
    pipe = Pipeline(replace(prof, yaw="landmarks")).load()
    lists = {name: parse_pairs_csv(FERET / name) for name in LISTS}
    paths = list(dict.fromkeys(str(x) for pl in lists.values() for p in pl for x in (p.path1, p.path2)))
    e = embed(pipe, paths)
    base = prof.to_dict()
    result: dict[str, Any] = {"profile": prof.name, "images": len(paths), "no_face_images": int(e["no_face"].sum()),
                              "results": {}}
    for src in ("landmarks", "fsanet"):
        emb = _Emb(paths, e, e[f"yaw_{src}"])
        for name, plist in lists.items():
            result["results"][f"{name} yaw={src}"] = score(base, plist, emb)
        if args.fit and base.get("fusion", {}).get("rules"):
            grid = [(a, b) for a in (10, 15, 20, 25, 30, 40) for b in (30, 40, 50, 60, 75, 90) if b > a]
            fits = {(a, b): score(with_fade(base, a, b), lists[LISTS[0]], emb)["accuracy"] for a, b in grid}
            best = max(fits, key=lambda k: (fits[k], k[0]))
            result["results"][f"fit yaw={src}"] = {
                "best_on_frontal_half": {"full_until": best[0], "zero_at": best[1], "accuracy": fits[best]},
                "frontal_profile_with_it": score(with_fade(base, *best), lists[LISTS[1]], emb)}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
