"""Does rejecting low-quality faces lower false matches at a fixed threshold? (LFW View 2)

    python bench/quality_gate.py --profile fast

The threshold is fixed at the profile's FAR = 1e-3 operating point measured on ALL pairs; then the
false-match rate (impostor pairs accepted) and false-non-match rate are reported on all pairs and on
the pairs whose two faces pass the quality gate at several minimum quality scores. Uses the same
embedding cache as `facewise eval pairs`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from facewise.core.pipeline import Pipeline
from facewise.eval import metrics as mt
from facewise.eval.embed import embed_images
from facewise.eval.pairs import parse_lfw_pairs
from facewise.models.catalogue import cache_dir

DATA = Path(os.environ.get("FACEWISE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="fast")
    ap.add_argument("--far", type=float, default=1e-3)
    args = ap.parse_args()
    pairs = parse_lfw_pairs(DATA / "lfw" / "pairs.txt", DATA / "lfw" / "images")
    pipe = Pipeline(args.profile).load()
    paths = list(dict.fromkeys(str(x) for p in pairs for x in (p.path1, p.path2)))
    emb = embed_images(pipe, paths, cache_dir=Path(os.environ.get("FACEWISE_EVAL_CACHE",
                                                                   cache_dir().parent / "eval")))
    a, b = emb.rows([p.path1 for p in pairs]), emb.rows([p.path2 for p in pairs])
    s = np.einsum("ij,ij->i", emb.vectors[a], emb.vectors[b]).astype(np.float64)
    labels = np.array([p.same for p in pairs])
    thr = mt.threshold_at_far(s[~labels], args.far)
    q = np.minimum(emb.quality[a], emb.quality[b])
    print(f"profile {args.profile}; threshold {thr:.4f} = FAR {args.far:g} on all {len(pairs)} pairs")
    print("| gate (min quality of both faces) | pairs kept | impostors kept | false matches | FMR | FNMR |")
    print("|---|---|---|---|---|---|")
    for gate in (0.0, 0.5, 0.7, 0.9):
        keep = q >= gate
        imp, gen = keep & ~labels, keep & labels
        fm = int((s[imp] >= thr).sum())
        fnm = float((s[gen] < thr).mean()) if gen.any() else float("nan")
        print(f"| {'none' if gate == 0 else f'>= {gate}'} | {keep.sum()} | {imp.sum()} | {fm} | "
              f"{fm / max(imp.sum(), 1):.2e} | {fnm:.4f} |")


if __name__ == "__main__":
    main()
