"""Accuracy on turned faces: Color FERET frontal-half and frontal-profile pairs, by pose, per yaw source.

    python bench/pose.py --profile accurate [--fit] [--cache DIR]
        [--lfw [--rows] [--per-model | --group-cv] [--eval-cache EVALDIR]]

Embeds every image of ``pose/feret/{frontal_half,frontal_profile}_pairs.csv`` once with the profile
(central face, centre prior when none is found, as ``facewise eval pairs`` does), keeps both yaw
estimates of each face (five landmarks and FSA-Net), then scores the pairs with the profile's
pose-aware fusion driven by each yaw source. Prints 10-fold accuracy per pair list and accuracy at
the best global threshold by the FERET pose label of the turned image (hl/hr about 67 deg, pl/pr
about 90 deg) and by the estimated yaw bin. ``--fit`` also sweeps the fade points (full weight until
``a`` degrees, zero at ``b``) on the frontal-half pairs and scores the best on the frontal-profile
pairs. ``--json`` prints one JSON object. ``--lfw-fade-changes`` instead counts the LFW pairs whose
fade weight FSA-Net yaw would change (the pairs an LFW re-run has to look at).

``--lfw`` also embeds the 7,701 LFW images of ``lfw/pairs.txt`` (the same record per image) and scores
every yaw source x faded models x fade points variant on LFW (10-fold) and both FERET lists; the pick
(``fit_variants``) sees only frontal-half and LFW. ``--cache DIR`` keeps every pass on disk, written
in checkpoints, so reruns embed nothing; ``--eval-cache EVALDIR`` writes LFW's rows for the profile as
shipped where ``facewise calibrate --cache EVALDIR`` and ``facewise eval pairs --cache EVALDIR`` read
them. ``--lfw --per-model`` instead fits each model's fade separately (``per_model_fit``: its own AUC by yaw
bin on frontal-half + LFW, a rule fixed in the code) and scores that fusion on frontal-profile, the test.
Rows of images the detector missed are embedded again when the profile's detector cascade changed.
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


def _cache_file(cache: Path | None, tag: str, prof: Any) -> Path | None:
    if cache is None:
        return None
    import hashlib

    opts = sorted(prof.detector_options.items())
    key = hashlib.sha256(f"{prof.signature}|{prof.detector}|{opts}|{tag}|v2".encode()).hexdigest()[:12]
    cache.mkdir(parents=True, exist_ok=True)
    return cache / f"pose-{prof.name}-{tag}-{key}.npz"


def embed(pipe: Pipeline, paths: list[str], cache: Path | None = None, tag: str = "feret",
          checkpoint: int = 250) -> dict[str, np.ndarray]:
    """Fused vectors (the profile's weights), landmark yaw, FSA-Net yaw, quality, the no-face flag and
    which detector pass found the face, for every image. With ``cache`` the rows go to
    ``cache/pose-<profile>-<tag>-<key>.npz`` every ``checkpoint`` images, and a rerun reuses them."""
    from facewise.core.quality import assess

    fsanet = Pipeline(replace(pipe.profile, yaw="fsanet"), threads=pipe.threads).headpose
    n = len(paths)
    out = {"vec": np.zeros((n, pipe.dim), np.float32), "yaw_landmarks": np.zeros(n, np.float32),
           "yaw_fsanet": np.zeros(n, np.float32), "quality": np.zeros(n, np.float32), "no_face": np.zeros(n, bool),
           "found_by": np.full(n, "", dtype="<U32"), "done": np.zeros(n, bool)}
    where = {p: i for i, p in enumerate(paths)}
    file = _cache_file(cache, tag, pipe.profile)
    cascade = ",".join(pipe.profile.detector_cascade)
    if file is not None and file.exists():
        with np.load(file, allow_pickle=False) as z:
            # rows embedded without this detector cascade are kept, except those the detector missed
            made_with = str(z["cascade"]) if "cascade" in z.files else ""
            redo = z["no_face"] if made_with != cascade else np.zeros(len(z["paths"]), bool)
            for j, p in enumerate(z["paths"]):
                i = where.get(str(p))
                if i is not None and z["done"][j] and not redo[j]:
                    for k in out:
                        out[k][i] = z[k][j]
        print(f"  cache {file}: {int(out['done'].sum())} of {n} images", file=sys.stderr)

    def save() -> None:
        if file is not None:
            tmp = file.with_name(file.name + ".tmp.npz")
            np.savez(tmp, paths=np.array(paths), cascade=np.array(cascade), **out)
            tmp.replace(file)

    todo = [i for i in range(n) if not out["done"][i]]
    for k, i in enumerate(todo):
        px = load_image(paths[i]).pixels
        h, w = px.shape[:2]
        faces = pipe.make_faces(px, pipe.detect_pixels(px))
        if faces:
            f = central_face(faces, w, h)
            det_box, lm, q = f.box, f.landmarks, f.quality.score
            out["found_by"][i] = str(f.attributes.get("found_by", "first"))
        else:
            d = centre_prior(w, h)
            det_box, lm = d.box, d.landmarks
            q = assess(px, d, pose_from_landmarks(lm)[0], pipe.quality_policy).score
            out["no_face"][i], out["found_by"][i] = True, "centre prior"
        out["vec"][i] = pipe.embed_landmarks(px, [lm])[0]
        out["yaw_landmarks"][i] = pose_from_landmarks(lm)[0]
        out["yaw_fsanet"][i] = fsanet.estimate(px, [[det_box.x1, det_box.y1, det_box.x2, det_box.y2]])[0, 0]
        out["quality"][i], out["done"][i] = q, True
        if k % 100 == 0:
            print(f"  {tag} {k}/{len(todo)}", file=sys.stderr)
        if (k + 1) % checkpoint == 0:
            save()
    if todo:
        save()
    return out


class _Emb:  # the slice of EmbeddedImages that PairScores.from_embedded reads
    def __init__(self, paths: list[str], e: dict[str, np.ndarray], yaw: np.ndarray) -> None:
        self.paths, self.vectors, self.yaw, self.quality = paths, e["vec"], yaw, e["quality"]
        self.no_face, self.failed, self.found_by = e["no_face"], np.zeros(len(paths), bool), e["found_by"]
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
    wrong = [{"pair": f"{Path(p.path1).stem} {Path(p.path2).stem}", "same": bool(p.same), "score": round(float(sc), 3)}
             for p, ok, sc in zip(plist, right, ps.scores, strict=True) if not ok]
    return {"accuracy": round(rep.accuracy, 5), "std": round(rep.accuracy_std, 5),
            "by_bin": {k: {"pairs": n, "accuracy_at_global_threshold": round(k2 / n, 4)}
                       for k, (n, k2) in sorted(by_label.items())},
            "errors_at_global_threshold": wrong}


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


YAW_SOURCES = ("landmarks", "fsanet", "max")  # max: the larger |yaw| of the two estimates
FADED = {"y1+dlib": ("mobilefacenet-y1", "dlib-resnet-v1"), "dlib": ("dlib-resnet-v1",), "y1": ("mobilefacenet-y1",)}
FADE_GRID = [(a, b) for a in (15, 20, 25, 30, 35, 40) for b in (35, 45, 50, 60, 75, 90) if b > a]


def yaw_of(e: dict[str, np.ndarray], src: str) -> np.ndarray:
    if src == "max":
        return np.maximum(np.abs(e["yaw_landmarks"]), np.abs(e["yaw_fsanet"]))
    return e[f"yaw_{src}"]


def variant(base: dict[str, Any], a: float, b: float, models: tuple[str, ...]) -> dict[str, Any]:
    d = json.loads(json.dumps(base))
    d["fusion"] = {"rules": [{"model": m, "on": "yaw", "full_until": a, "zero_at": b} for m in models]}
    return d


def quick(profile_dict: dict[str, Any], plist: list[Any], emb: _Emb) -> tuple[float, float]:
    """10-fold accuracy and AUC of the pairs under a profile's fusion."""
    from facewise.eval import metrics as mt
    from facewise.models.profiles import Profile

    scorer = FusionScorer(Profile.from_dict(profile_dict))
    v, y, q = emb.vectors, emb.yaw, emb.quality
    fn = None if scorer.plain else (lambda a, b: scorer.scores(v[a], v[b], y[a], y[b], q[a], q[b]))
    ps = PairScores.from_embedded(plist, emb, fn)  # type: ignore[arg-type]
    return float(mt.ten_fold_accuracy(ps.scores, ps.labels, ps.folds).mean), float(mt.auc(ps.scores, ps.labels))


def fit_variants(base: dict[str, Any], fh: list[Any], fp: list[Any], lfw: list[Any],
                 feret: dict[str, _Emb], lfw_emb: dict[str, _Emb], lfw_floor: float = 0.996) -> dict[str, Any]:
    """Every yaw source x faded models x fade points scored on frontal-half, LFW and frontal-profile. The pick
    sees only frontal-half and LFW: LFW at least ``lfw_floor``, then fewest errors on frontal-half + LFW
    together, then the higher frontal-half AUC, then the higher LFW AUC; frontal-profile is the test."""
    rows = []
    for src in YAW_SOURCES:
        for tag, models in FADED.items():
            for a, b in FADE_GRID:
                d = variant(base, a, b, models)
                acc_fh, auc_fh = quick(d, fh, feret[src])
                acc_l, auc_l = quick(d, lfw, lfw_emb[src])
                acc_fp, _ = quick(d, fp, feret[src])
                rows.append({"yaw": src, "faded": tag, "full_until": a, "zero_at": b, "frontal_half": round(acc_fh, 5),
                             "frontal_half_auc": round(auc_fh, 6), "lfw": round(acc_l, 5), "lfw_auc": round(auc_l, 6),
                             "errors_fit": round((1 - acc_fh) * len(fh) + (1 - acc_l) * len(lfw)),
                             "frontal_profile": round(acc_fp, 5)})
    ok = [r for r in rows if r["lfw"] >= lfw_floor] or rows
    best = min(ok, key=lambda r: (r["errors_fit"], -r["frontal_half_auc"], -r["lfw_auc"]))
    per_src = {src: min((r for r in ok if r["yaw"] == src),
                        key=lambda r: (r["errors_fit"], -r["frontal_half_auc"], -r["lfw_auc"]), default=None)
               for src in YAW_SOURCES}
    shipped = [r for r in rows if r["faded"] == "y1+dlib" and (r["full_until"], r["zero_at"]) == (30, 60)]
    rule = f"LFW >= {lfw_floor:.4f}, then fewest errors on frontal-half + LFW, then frontal-half AUC, then LFW AUC"
    return {"rule": rule, "best": best, "best_per_yaw_source": per_src, "shipped_fade_30_60": shipped,
            "variants": len(rows), "rows": rows}


FIT_BINS = ((0.0, 30.0), (30.0, 45.0), (45.0, 60.0), (60.0, float("inf")))  # worse FSA-Net |yaw| of the pair
FADE_END = 90.0  # where a fade across the open last bin reaches zero (a full profile)


def model_cosines(plist: list[Any], emb: _Emb, scorer: FusionScorer) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n, models) cosine of each embedder alone, the worse |yaw| and the label of every pair."""
    a, b = emb.rows([p.path1 for p in plist]), emb.rows([p.path2 for p in plist])
    yaw = np.maximum(np.abs(emb.yaw[a]), np.abs(emb.yaw[b]))
    return scorer.block_cosines(emb.vectors[a], emb.vectors[b]), yaw, np.array([p.same for p in plist])


def _bin_name(lo: float, hi: float) -> str:
    return f"{lo:g}-{hi:g}" if np.isfinite(hi) else f"{lo:g}+"


def per_model_fit(base: dict[str, Any], fit_sets: list[tuple[list[Any], _Emb]], n_boot: int = 1000, seed: int = 0,
                  n_se: float = 2.0) -> dict[str, Any]:
    """Fade points for each model of the fusion separately, from its own verification quality by pose.

    Fit data: the pairs of ``fit_sets`` pooled (frontal-half + LFW View 2; never frontal-profile), binned by
    the worse FSA-Net |yaw| of the pair into ``FIT_BINS`` (0-30, 30-45, 45-60, 60+ degrees). In each bin k
    every model m is scored alone (its own cosine): ``AUC[m, k]``. Its gap to the best single model there is
    ``gap[m, k] = max_j AUC[j, k] - AUC[m, k]``, and its *excess* is ``gap[m, k] - gap[m, 0]``: how much further
    behind the best it falls than in the near-frontal bin 0-30, where the profile's weights were fitted (on
    LFW). The noise level delta[m, k] is ``n_se`` (2) bootstrap standard errors of that excess: ``n_boot``
    (1,000) resamples, seed 0, of the fit pairs within each bin x label stratum, the best model and both bins
    re-evaluated in each resample.

    Rule (fixed before frontal-profile is scored): model m keeps its full weight up to the upper edge of the
    last bin k such that ``excess[m, j] <= delta[m, j]`` for every bin j <= k, and fades linearly to zero across
    the first bin where that fails (full at its lower edge, zero at its upper edge; ``FADE_END``, 90 degrees,
    for the open last bin). A model that holds in every bin gets no rule (full weight at any yaw). The caller
    also requires LFW 10-fold accuracy >= 99.60 % of the fitted fusion.
    """
    from facewise.eval import metrics as mt
    from facewise.models.profiles import Profile

    scorer = FusionScorer(Profile.from_dict(base))
    parts = [model_cosines(plist, emb, scorer) for plist, emb in fit_sets]
    cos = np.concatenate([p[0] for p in parts])
    yaw = np.concatenate([p[1] for p in parts])
    lab = np.concatenate([p[2] for p in parts])
    n_models = cos.shape[1]
    bins = [np.flatnonzero((yaw >= lo) & (yaw < hi)) for lo, hi in FIT_BINS]

    def aucs(idx: np.ndarray) -> np.ndarray:
        return np.array([mt.auc(cos[idx, m], lab[idx]) for m in range(n_models)])

    point = np.stack([aucs(ix) for ix in bins])  # (bins, models)
    rng = np.random.default_rng(seed)
    strata = [(ix[lab[ix]], ix[~lab[ix]]) for ix in bins]
    boot = np.empty((n_boot, len(bins), n_models))
    for r in range(n_boot):
        for k, (g, i) in enumerate(strata):
            boot[r, k] = aucs(np.r_[rng.choice(g, g.size), rng.choice(i, i.size)])

    def excess(a: np.ndarray) -> np.ndarray:  # (..., bins, models)
        gap = a.max(-1, keepdims=True) - a
        return gap - gap[..., :1, :]

    ex, ex_boot = excess(point), excess(boot)
    delta = n_se * ex_boot.std(0, ddof=1)
    holds = ex <= delta + 1e-12
    rules, table = [], []
    for m, model in enumerate(scorer.models):
        ok = np.logical_and.accumulate(holds[:, m])
        first_bad = int(np.argmin(ok)) if not ok.all() else None
        if first_bad is not None:
            lo, hi = FIT_BINS[first_bad]
            zero_at = hi if np.isfinite(hi) else FADE_END
            rules.append({"model": model, "on": "yaw", "full_until": lo, "zero_at": zero_at})
        for k, (lo, hi) in enumerate(FIT_BINS):
            table.append({"model": model, "bin": _bin_name(lo, hi), "pairs": int(bins[k].size),
                          "genuine": int(lab[bins[k]].sum()), "auc": round(float(point[k, m]), 5),
                          "best_auc": round(float(point[k].max()), 5), "excess": round(float(ex[k, m]), 5),
                          "delta": round(float(delta[k, m]), 5), "holds": bool(holds[k, m])})
    rule = (f"keep full weight through the last bin where (AUC gap to the best model) - (gap at 0-30) <= "
            f"{n_se:g} bootstrap SE ({n_boot} resamples); fade linearly to zero across the first bin where not")
    return {"rule": rule, "bins": [_bin_name(lo, hi) for lo, hi in FIT_BINS], "table": table,
            "fusion": {"rules": rules}}


def identity_groups(plist: list[Any], size: int = 20) -> np.ndarray:
    """Group id of every pair: the FERET lists draw impostors within ten groups of 20 identities, in list order."""
    order: dict[str, int] = {}
    for p in plist:
        order.setdefault(Path(p.path1).parent.name, len(order))
    return np.array([order[Path(p.path1).parent.name] // size for p in plist])


def group_cv(base: dict[str, Any], fp: list[Any], lfw: list[Any], feret: dict[str, _Emb], lfw_emb: dict[str, _Emb],
             lfw_floor: float = 0.996) -> dict[str, Any]:
    """What fitting the fade on real profiles would give, measured without scoring a pair the fit saw.

    Nested cross-validation over FERET's ten identity groups (no identity in two groups, impostors drawn
    within a group): for each group g, every variant of ``fit_variants`` (yaw source x faded models x fade
    points) with LFW >= ``lfw_floor`` is scored on the frontal-profile pairs of the other nine groups at its
    best threshold there; the best variant (ties: higher AUC there) and that threshold then score group g.
    The result estimates the accuracy of the procedure "fit the fade on frontal-profile pairs" on unseen people.
    """
    from facewise.eval import metrics as mt
    from facewise.models.profiles import Profile

    grp = identity_groups(fp)
    lab = np.array([p.same for p in fp], bool)
    cands: dict[tuple[str, str, float, float], np.ndarray] = {}
    for src in YAW_SOURCES:
        for tag, models in FADED.items():
            for a, b in FADE_GRID:
                d = variant(base, a, b, models)
                if quick(d, lfw, lfw_emb[src])[0] < lfw_floor:
                    continue
                sc, e = FusionScorer(Profile.from_dict(d)), feret[src]
                ia, ib = e.rows([p.path1 for p in fp]), e.rows([p.path2 for p in fp])
                cands[(src, tag, a, b)] = sc.scores(e.vectors[ia], e.vectors[ib], e.yaw[ia], e.yaw[ib],
                                                    e.quality[ia], e.quality[ib])
    right, picks = 0, []
    for g in np.unique(grp):
        tr, te = grp != g, grp == g
        best = max(cands, key=lambda k: (mt.best_accuracy_threshold(cands[k][tr], lab[tr])[0],
                                         mt.auc(cands[k][tr], lab[tr])))
        _, thr = mt.best_accuracy_threshold(cands[best][tr], lab[tr])
        right += int(((cands[best][te] >= thr) == lab[te]).sum())
        picks.append({"group": int(g), "yaw": best[0], "faded": best[1], "full_until": best[2], "zero_at": best[3]})
    return {"rule": f"per held-out identity group: variant with LFW >= {lfw_floor:.4f} and the best accuracy "
                    "(then AUC) on the other groups' frontal-profile pairs, at its best threshold there",
            "variants": len(cands), "groups": int(grp.max()) + 1,
            "frontal_profile_nested_cv": round(right / len(fp), 5), "picks": picks}


def accuracy_by_fit_bin(profile_dict: dict[str, Any], plist: list[Any], emb: _Emb) -> dict[str, Any]:
    """Accuracy at the best global threshold by ``FIT_BINS`` of the worse |yaw| (and errors per bin)."""
    from facewise.models.profiles import Profile

    scorer = FusionScorer(Profile.from_dict(profile_dict))
    v, y, q = emb.vectors, emb.yaw, emb.quality
    fn = None if scorer.plain else (lambda a, b: scorer.scores(v[a], v[b], y[a], y[b], q[a], q[b]))
    ps = PairScores.from_embedded(plist, emb, fn)  # type: ignore[arg-type]
    _, thr = _best_threshold(ps)
    right = (ps.scores >= thr) == ps.labels
    worse = np.abs(ps.yaw).max(1)
    out = {}
    for lo, hi in FIT_BINS:
        m = (worse >= lo) & (worse < hi)
        if m.any():
            out[_bin_name(lo, hi)] = {"pairs": int(m.sum()), "errors": int((~right[m]).sum()),
                                      "accuracy": round(float(right[m].mean()), 4)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="accurate")
    ap.add_argument("--fit", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--cache", type=Path, help="keep the embeddings here (reruns reuse them)")
    ap.add_argument("--lfw", action="store_true", help="also embed LFW (7,701 images) and fit the yaw source, "
                    "faded models and fade points on frontal-half + LFW (frontal-profile is the test)")
    ap.add_argument("--eval-cache", type=Path, help="with --lfw: write LFW's rows for the profile as shipped where "
                    "`facewise calibrate --cache DIR` reads them (no second LFW pass)")
    ap.add_argument("--rows", action="store_true", help="with --lfw: print every variant's row too")
    ap.add_argument("--per-model", action="store_true", help="with --lfw: fit each model's fade separately from "
                    "its own AUC by yaw bin on frontal-half + LFW (per_model_fit), then score it on frontal-profile "
                    "(the test)")
    ap.add_argument("--group-cv", action="store_true", help="with --lfw: nested cross-validation of fitting the "
                    "fade on frontal-profile pairs, over FERET's ten identity groups (group_cv)")
    ap.add_argument("--embed-only", action="store_true", help="only fill the cache")
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
    e = embed(pipe, paths, args.cache, "feret")
    if args.lfw:
        from facewise.eval.pairs import parse_lfw_pairs

        lfw_pairs = parse_lfw_pairs(DATA / "lfw" / "pairs.txt", DATA / "lfw" / "images")
        lfw_paths = list(dict.fromkeys(str(x) for p in lfw_pairs for x in (p.path1, p.path2)))
        e_lfw = embed(pipe, lfw_paths, args.cache, "lfw")
    if args.embed_only:
        return
    base = prof.to_dict()
    result: dict[str, Any] = {"profile": prof.name, "images": len(paths), "no_face_images": int(e["no_face"].sum()),
                              "results": {}}
    if args.lfw:
        feret = {src: _Emb(paths, e, yaw_of(e, src)) for src in YAW_SOURCES}
        lfw_emb = {src: _Emb(lfw_paths, e_lfw, yaw_of(e_lfw, src)) for src in YAW_SOURCES}
        if args.group_cv:
            cv = group_cv(base, lists[LISTS[1]], lfw_pairs, feret, lfw_emb)
            print(json.dumps({"profile": prof.name, "group_cv": cv}, indent=1))
            return
        if args.per_model:
            fh, fp = lists[LISTS[0]], lists[LISTS[1]]
            pm = per_model_fit(base, [(fh, feret["fsanet"]), (lfw_pairs, lfw_emb["fsanet"])])
            d = json.loads(json.dumps(base))
            d["yaw"], d["fusion"] = "fsanet", pm["fusion"]
            acc_l, auc_l = quick(d, lfw_pairs, lfw_emb["fsanet"])
            pm["lfw"], pm["lfw_auc"], pm["lfw_ok"] = round(acc_l, 5), round(auc_l, 6), acc_l >= 0.996
            pm["frontal_half"] = round(quick(d, fh, feret["fsanet"])[0], 5)
            pm["frontal_half_by_bin"] = accuracy_by_fit_bin(d, fh, feret["fsanet"])
            # the test, scored once with the fitted rules
            pm["frontal_profile"] = score(d, fp, feret["fsanet"])
            pm["frontal_profile_by_bin"] = accuracy_by_fit_bin(d, fp, feret["fsanet"])
            print(json.dumps({"profile": prof.name, "per_model_fit": pm}, indent=1))
            return
        fit = fit_variants(base, lists[LISTS[0]], lists[LISTS[1]], lfw_pairs, feret, lfw_emb)
        rows = fit.pop("rows")
        if args.rows:
            fit["rows"] = rows
        b = fit["best"]
        d = variant(base, b["full_until"], b["zero_at"], FADED[b["faded"]])
        fit["best_by_bin"] = {name: score(d, plist, feret[b["yaw"]]) for name, plist in lists.items()}
        fit["lfw_no_face_images"] = int(e_lfw["no_face"].sum())
        fit["lfw_found_by"] = {str(k): int(c) for k, c in zip(*np.unique(e_lfw["found_by"], return_counts=True),
                                                               strict=True)}
        acc, auc = quick(base, lfw_pairs, lfw_emb[prof.yaw])
        fit["as_shipped"] = {"yaw": prof.yaw, "fusion": base.get("fusion"), "lfw": round(acc, 5),
                             "lfw_auc": round(auc, 6),
                             **{name: score(base, plist, feret[prof.yaw]) for name, plist in lists.items()}}
        result["lfw_fit"] = fit
        if args.eval_cache:
            from facewise.eval.embed import EmbeddedImages, cache_path, save_cache

            args.eval_cache.mkdir(parents=True, exist_ok=True)
            rows = EmbeddedImages(lfw_paths, e_lfw["vec"], yaw_of(e_lfw, prof.yaw), e_lfw["quality"], e_lfw["no_face"],
                                  np.zeros(len(lfw_paths), bool), e_lfw["found_by"])
            save_cache(cache_path(Pipeline(prof), args.eval_cache), rows)
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
