"""Verification on pairs: 10-fold accuracy, ROC/AUC/EER, TAR at FAR with intervals, breakdowns, report."""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from facewise.core.outfiles import csv_row, open_output, write_text
from facewise.errors import install_hint
from facewise.eval import metrics as mt
from facewise.eval.coverage import MissingImagesError, check_files, check_unreadable, coverage
from facewise.eval.embed import EmbeddedImages, NoFace, embed_images
from facewise.eval.pairs import Pair, PairListError

if TYPE_CHECKING:
    from facewise.core.pipeline import Pipeline
    from facewise.eval.pairlist import PairList

log = logging.getLogger(__name__)

FARS = (1e-1, 1e-2, 1e-3, 1e-4)
POSE_BINS = (("frontal", 0.0, 30.0), ("half", 30.0, 60.0), ("profile", 60.0, 181.0))


def pose_bin(yaw: float) -> str:
    a = abs(yaw)
    return next(name for name, lo, hi in POSE_BINS if lo <= a < hi)


@dataclass
class PairScores:
    """Per-pair scores and what is known of both sides."""

    pairs: list[Pair]
    scores: np.ndarray
    labels: np.ndarray
    folds: np.ndarray
    yaw: np.ndarray  # (P, 2)
    quality: np.ndarray  # (P, 2)
    no_face: np.ndarray  # (P, 2) bool
    found_by: np.ndarray | None = None  # (P, 2) str: what found each face (eval/embed.py), when known

    @classmethod
    def from_embedded(cls, pairs: Sequence[Pair], emb: EmbeddedImages,
                      score_fn: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None) -> PairScores:
        a = emb.rows([p.path1 for p in pairs])
        b = emb.rows([p.path2 for p in pairs])
        if score_fn is None:
            scores = np.einsum("ij,ij->i", emb.vectors[a], emb.vectors[b])
        else:
            scores = score_fn(a, b)
        rejected = emb.failed[a] | emb.failed[b] | (~emb.vectors[a].any(1)) | (~emb.vectors[b].any(1))
        scores = np.where(rejected, -1.0, scores).astype(np.float64)
        return cls(list(pairs), scores, np.array([p.same for p in pairs]), np.array([p.fold for p in pairs]),
                   np.stack([emb.yaw[a], emb.yaw[b]], 1), np.stack([emb.quality[a], emb.quality[b]], 1),
                   np.stack([emb.no_face[a], emb.no_face[b]], 1),
                   None if emb.found_by is None else np.stack([emb.found_by[a], emb.found_by[b]], 1))


@dataclass
class PairsReport:
    accuracy: float
    accuracy_std: float
    auc: float
    eer: float
    eer_threshold: float
    tar_at_far: dict[str, dict[str, float]]
    no_face: dict[str, Any]
    n_pairs: int
    n_same: int
    breakdown: dict[str, Any] = field(default_factory=dict)
    fold_thresholds: list[float] = field(default_factory=list)
    coverage: dict[str, Any] = field(default_factory=dict)  # eval/coverage.py: what the numbers cover
    pair_list: dict[str, Any] = field(default_factory=dict)  # PairList.describe(): format, root, folds

    def to_dict(self) -> dict[str, Any]:
        extra = {k: v for k, v in (("coverage", self.coverage), ("pair_list", self.pair_list)) if v}
        return {
            "accuracy": round(self.accuracy, 5), "accuracy_std": round(self.accuracy_std, 5),
            "auc": round(self.auc, 6), "eer": round(self.eer, 5), "eer_threshold": round(self.eer_threshold, 5),
            "tar_at_far": {k: v["tar"] for k, v in self.tar_at_far.items()},
            "tar_at_far_ci": self.tar_at_far, "no_face": self.no_face, "pairs": self.n_pairs,
            "same": self.n_same, "breakdown": self.breakdown,
            "fold_thresholds": [round(t, 5) for t in self.fold_thresholds], **extra,
        }


def _tar_table(scores: np.ndarray, labels: np.ndarray, n_boot: int) -> dict[str, dict[str, float]]:
    n_imp = int((~labels).sum())
    out = {}
    for far in FARS:
        if far * n_imp < 1:  # fewer than one impostor may pass: not measurable
            continue
        est = mt.tar_at_far_with_ci(scores, labels, far, n=n_boot)
        out[f"{far:g}"] = {"tar": round(est.value, 5), "low": round(est.low, 5), "high": round(est.high, 5)}
    return out


def _subset_stats(ps: PairScores, mask: np.ndarray, threshold: float) -> dict[str, Any]:
    lab, sc = ps.labels[mask], ps.scores[mask]
    out: dict[str, Any] = {"pairs": int(mask.sum()), "same": int(lab.sum())}
    if mask.sum():
        out["accuracy_at_global_threshold"] = round(float(((sc >= threshold) == lab).mean()), 5)
    if lab.any() and (~lab).any():
        out["auc"] = round(mt.auc(sc, lab), 5)
    return out


def evaluate(ps: PairScores, n_boot: int = 1000) -> PairsReport:
    folds = mt.ten_fold_accuracy(ps.scores, ps.labels, ps.folds)
    e, et = mt.eer(ps.scores, ps.labels)
    _, threshold = mt.best_accuracy_threshold(ps.scores, ps.labels)
    any_nf = ps.no_face.any(1)
    breakdown: dict[str, Any] = {"pose": {}, "quality": {}}
    worst_yaw = np.abs(ps.yaw).max(1)
    for name, lo, hi in POSE_BINS:
        breakdown["pose"][name] = _subset_stats(ps, (worst_yaw >= lo) & (worst_yaw < hi), threshold)
    low_q = ps.quality.min(1)
    for name, lo, hi in (("low", 0.0, 0.5), ("medium", 0.5, 0.9), ("high", 0.9, 1.01)):
        breakdown["quality"][name] = _subset_stats(ps, (low_q >= lo) & (low_q < hi), threshold)
    return PairsReport(
        accuracy=folds.mean, accuracy_std=folds.std, auc=mt.auc(ps.scores, ps.labels), eer=e, eer_threshold=et,
        tar_at_far=_tar_table(ps.scores, ps.labels, n_boot),
        no_face={"images": None, "pairs": int(any_nf.sum()),
                 "accuracy_on_those_pairs": round(float(((ps.scores >= threshold) == ps.labels)[any_nf].mean()), 4)
                 if any_nf.any() else None},
        n_pairs=len(ps.scores), n_same=int(ps.labels.sum()), breakdown=breakdown,
        fold_thresholds=[float(t) for t in folds.thresholds],
    )


def fused_score_fn(pipe: Pipeline, emb: EmbeddedImages) -> Callable[[Any, Any], np.ndarray] | None:
    """The profile's pose/quality-aware pair scorer over embedded rows, or None for plain dot products."""
    from facewise.decision.fusion import FusionScorer

    scorer = FusionScorer(pipe.profile)
    if scorer.plain:
        return None
    v, y, q = emb.vectors, emb.yaw, emb.quality
    return lambda a, b: scorer.scores(v[a], v[b], y[a], y[b], q[a], q[b])


def _check_measurable(pairs: Sequence[Pair], plist: PairList, excluded: int) -> None:
    """Accuracy needs both kinds of pair and two folds among the measured pairs; else no number (bad input)."""
    same = sum(p.same for p in pairs)
    folds = len({p.fold for p in pairs})
    kind = "same" if same else "different"
    why = ("no pair has two readable images" if not pairs
           else f"all {len(pairs)} measured pairs are {kind}-person pairs" if same in (0, len(pairs))
           else f"the {len(pairs)} measured pairs fall in {folds} fold" if folds < 2 else "")
    if not why:
        return
    if excluded:
        raise MissingImagesError(f"{plist.source}: {why} ({excluded} pair(s) left out for unreadable images): "
                                 "no accuracy without data")
    raise PairListError(f"{plist.source}: {why}: accuracy needs same and different pairs in at least two folds")


def measure_pair_list(pipe: Pipeline, plist: PairList, *, allow_missing: float = 0.0, no_face: NoFace = "center",
                      cache_dir: Path | None = None, progress: Callable[[int], None] | None = None,
                      n_boot: int = 1000) -> tuple[PairScores, PairsReport]:
    """Verification on a parsed pair list, with eval/coverage.py's rule: missing files beyond ``allow_missing``
    (a share of the distinct images) fail before any embedding, unreadable ones after it; pairs with an
    unreadable image leave the headline numbers and are named in ``report.coverage``."""
    paths = plist.images()
    check_files(plist, allow_missing)
    emb = embed_images(pipe, paths, cache_dir=cache_dir, no_face=no_face, progress=progress)
    unreadable = [p for p, bad in zip(emb.paths, emb.failed, strict=True) if bad]
    check_unreadable(unreadable, len(paths), allow_missing, plist)
    bad = set(unreadable)
    kept = [p for p in plist.pairs if str(p.path1) not in bad and str(p.path2) not in bad]
    _check_measurable(kept, plist, len(plist.pairs) - len(kept))
    ps = PairScores.from_embedded(kept, emb, fused_score_fn(pipe, emb))
    report = evaluate(ps, n_boot=n_boot)
    faceless = [p for p, nf, bad_ in zip(emb.paths, emb.no_face, emb.failed, strict=True) if nf and not bad_]
    report.no_face.update({"images": len(faceless), "unreadable": len(unreadable),
                           "scored_as": "centre-prior alignment" if no_face == "center" else "score -1 (reject)",
                           "found_by": emb.found_by_counts()})
    report.coverage = coverage(len(plist.pairs), len(kept), len(paths), unreadable, faceless, allow_missing, no_face)
    report.pair_list = plist.describe()
    return ps, report


def write_outputs(ps: PairScores, report: PairsReport, out_dir: Path, title: str) -> list[Path]:
    """scores.csv, report.json, report.md, roc.png, det.png in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with open_output(out_dir / "scores.csv", text=True, newline="") as fh:  # atomic, never through a link
        w = csv.writer(fh)
        w.writerow(["path1", "path2", "same", "fold", "score", "yaw1", "yaw2", "quality1", "quality2",
                    "no_face1", "no_face2", "found_by1", "found_by2"])
        found = ps.found_by if ps.found_by is not None else np.full((len(ps.pairs), 2), "")
        for i, p in enumerate(ps.pairs):
            w.writerow(csv_row([p.path1, p.path2, int(p.same), p.fold, f"{ps.scores[i]:.6f}", f"{ps.yaw[i, 0]:.1f}",
                        f"{ps.yaw[i, 1]:.1f}", f"{ps.quality[i, 0]:.3f}", f"{ps.quality[i, 1]:.3f}",
                        int(ps.no_face[i, 0]), int(ps.no_face[i, 1]), found[i, 0], found[i, 1]]))
    written.append(out_dir / "scores.csv")
    write_text(out_dir / "report.json", json.dumps(report.to_dict(), indent=2))
    written.append(out_dir / "report.json")
    try:
        from facewise.eval.plots import plot_det, plot_roc

        far, tar, _ = mt.roc_curve(ps.scores, ps.labels)
        plot_roc({title: (far, tar)}, out_dir / "roc.png", title=f"ROC — {title}")
        plot_det({title: (far, 1 - tar)}, out_dir / "det.png", title=f"DET — {title}")
        written += [out_dir / "roc.png", out_dir / "det.png"]
    except ImportError:
        log.warning("matplotlib is not installed: no ROC/DET plots (%s)", install_hint("eval"))
    write_text(out_dir / "report.md", markdown(report, title))
    written.append(out_dir / "report.md")
    return written


def markdown(report: PairsReport, title: str) -> str:
    d = report.to_dict()
    cov, src = d.get("coverage", {}), d.get("pair_list", {})
    listed = f" measured of {cov['listed_pairs']} listed" if cov else ""
    lines = [f"# Verification report — {title}", "",
             f"{d['pairs']} pairs{listed} ({d['same']} same). 10-fold accuracy **{100 * d['accuracy']:.2f} %** "
             f"± {100 * d['accuracy_std']:.2f}; AUC {d['auc']:.5f}; EER {100 * d['eer']:.2f} %.", "",
             "| FAR | TAR | 95 % interval |", "|---|---|---|"]
    for far, v in d["tar_at_far_ci"].items():
        lines.append(f"| {far} | {v['tar']:.4f} | {v['low']:.4f} – {v['high']:.4f} |")
    if src:
        lines += ["", f"List {src['file']} read as {src['format']}; relative image paths joined to {src['root']} "
                  f"({src['root_from']}); {src['folds']} folds by {src['folds_by']}."]
        lines += [f"Warning: {w}" for w in src["warnings"]]
    if cov:
        lines += ["", f"Unreadable images: {cov['unreadable_images']} of {cov['images']} "
                  f"(allowed: {cov['allow_missing']}); {cov['excluded_pairs']} pairs left out: "
                  f"{', '.join(cov['unreadable']) or 'none'}.",
                  f"Images without a detected face ({cov['no_face_scored_as']}): {cov['no_face_images']}: "
                  f"{', '.join(cov['no_face']) or 'none'}."]
    lines += ["", f"Pairs with an image where no face was detected: {d['no_face']}", "",
              "| pose bin (worst of the pair) | pairs | accuracy | AUC |", "|---|---|---|---|"]
    for name, s in d["breakdown"]["pose"].items():
        lines.append(f"| {name} | {s['pairs']} | {s.get('accuracy_at_global_threshold', '–')} | {s.get('auc', '–')} |")
    lines += ["", "| quality bin (worst of the pair) | pairs | accuracy | AUC |", "|---|---|---|---|"]
    for name, s in d["breakdown"]["quality"].items():
        lines.append(f"| {name} | {s['pairs']} | {s.get('accuracy_at_global_threshold', '–')} | {s.get('auc', '–')} |")
    lines += ["", "Plots: roc.png, det.png. Per-pair scores: scores.csv.", ""]
    return "\n".join(lines)
