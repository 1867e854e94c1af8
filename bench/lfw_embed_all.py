"""Embed every LFW image with several embedders at once (per-model blocks), for the profile sweep.

    python bench/lfw_embed_all.py --detector yunet-2023mar --models reid-0095,mobilefacenet-y1 [--flip]

Writes the cache used by bench/lfw_sweep.py (in $FACEWISE_EVAL_CACHE or ~/.cache/facewise/eval).
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

from facewise.core.pipeline import Pipeline
from facewise.eval.embed import embed_images
from facewise.eval.pairs import parse_lfw_pairs
from facewise.models.catalogue import cache_dir
from facewise.models.profiles import Profile

DATA = Path(os.environ.get("FACEWISE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def multi_profile(detector: str, models: list[str], flip: bool) -> Profile:
    return Profile.from_dict({"name": f"sweep-{detector}-{'-'.join(models)}-{'flip' if flip else 'noflip'}",
                              "detector": detector, "embedders": [{"model": m, "weight": 1} for m in models],
                              "flip": flip})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--detector", default="yunet-2023mar")
    ap.add_argument("--models", default="reid-0095,mobilefacenet-y1,mobilefacenet-128")
    ap.add_argument("--flip", action="store_true")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO)
    pairs = parse_lfw_pairs(DATA / "lfw" / "pairs.txt", DATA / "lfw" / "images")
    paths = list(dict.fromkeys(str(x) for p in pairs for x in (p.path1, p.path2)))
    prof = multi_profile(args.detector, args.models.split(","), args.flip)
    pipe = Pipeline(prof, threads=args.threads).load()
    t = time.time()
    done = [0]

    def tick(k: int) -> None:
        done[0] += k
        if done[0] % 500 == 0:
            logging.info("%d/%d images, %.1f ms/image", done[0], len(paths), 1000 * (time.time() - t) / done[0])

    cache = Path(os.environ.get("FACEWISE_EVAL_CACHE", cache_dir().parent / "eval"))
    emb = embed_images(pipe, paths, cache_dir=cache, progress=tick)
    logging.info("%s: %d images, %d without a face, %.1f s", prof.name, len(paths), emb.no_face.sum(),
                 time.time() - t)


if __name__ == "__main__":
    main()
