"""Throughput of facewise's profiles against the face_recognition library, in one run.

    make bench            # or: python bench/pipeline.py --images 200 [--json]

Every method processes the same LFW images: decode, detect, landmarks, align, embed every face.
The images are cut into chunks and every method runs each chunk in turn (chunk by chunk, so load
from other processes hits all methods alike). Two ways per profile: ``NAME`` = ``Pipeline.analyze``
one image at a time, ``NAME/batch`` = ``Pipeline.analyze_many`` on the chunk (the throughput path of
enrolment, evaluation and batch jobs: decode and detection overlapped on worker threads, embeddings
batched across images). Peer: face_recognition 1.3 (dlib HOG, upsample 1, 5-point landmarks,
ResNet 128-d), installed with --no-deps on the same dlib; it runs one image at a time on one core,
as the library does.

``--json`` prints one JSON object: ``speed_vs_face_recognition`` (method -> ratio in this run),
``images_per_s``, ``ms_per_face`` and ``lfw_accuracy`` per profile (from the ``facewise eval pairs``
cache when it holds every LFW pair image, otherwise the figure documented in docs/ACCURACY.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from facewise.core.imageio import load_image
from facewise.core.pipeline import Pipeline
from facewise.models.profiles import load_profile, profile_names

DATA = Path(os.environ.get("FACEWISE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
# LFW View-2 10-fold accuracy as documented (docs/ACCURACY.md / README), used when no eval cache holds it
DOCUMENTED_LFW = {"default": 0.9905, "fast": 0.9957, "balanced": 0.9960, "accurate": 0.9972,
                  "accurate-commercial": 0.9962}

Method = Callable[[list[Path]], int]


def lfw_accuracy(pipe: Pipeline) -> dict[str, Any]:
    """10-fold LFW accuracy from `facewise eval pairs`' embedding cache, else the documented figure."""
    from facewise.cli.evaluate import _cache_default, fused_score_fn
    from facewise.eval.embed import _cache_key, _file_key, embed_images
    from facewise.eval.pairs import parse_lfw_pairs
    from facewise.eval.verification import PairScores, evaluate

    name = pipe.profile.name
    cache = _cache_default()
    pairs_txt = DATA / "lfw" / "pairs.txt"
    cache_file = cache / f"{name}-{_cache_key(pipe, 'center')}.npz"
    if pairs_txt.is_file() and cache_file.is_file():
        plist = parse_lfw_pairs(pairs_txt, DATA / "lfw" / "images")
        paths = list(dict.fromkeys(str(x) for p in plist for x in (p.path1, p.path2)))
        with np.load(cache_file, allow_pickle=False) as z:
            keys = set(z["keys"].tolist())
        if all(_file_key(p) in keys for p in paths):  # complete: no embedding happens below
            emb = embed_images(pipe, paths, cache_dir=cache, no_face="center")
            rep = evaluate(PairScores.from_embedded(plist, emb, fused_score_fn(pipe, emb)), n_boot=10)
            return {"accuracy": round(rep.accuracy, 5), "std": round(rep.accuracy_std, 5),
                    "source": f"eval cache {cache_file.name}"}
    if name in DOCUMENTED_LFW:
        return {"accuracy": DOCUMENTED_LFW[name], "source": "docs/ACCURACY.md"}
    return {"accuracy": None, "source": "not measured: run facewise eval pairs"}


def peer_method() -> Method | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import face_recognition
    except ImportError:
        return None

    def peer(paths: list[Path]) -> int:
        n = 0
        for path in paths:
            img = face_recognition.load_image_file(str(path))
            locs = face_recognition.face_locations(img)  # HOG, upsample 1 (the library's defaults)
            n += len(face_recognition.face_encodings(img, locs))
        return n

    return peer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--profiles", default=",".join(profile_names()))
    ap.add_argument("--threads", type=int, default=0, help="inference threads per model (0: automatic)")
    ap.add_argument("--workers", type=int, default=2, help="worker threads of the batch path")
    ap.add_argument("--chunk", type=int, default=20, help="images per interleaved chunk")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = ap.parse_args()
    info = sys.stderr if args.json else sys.stdout
    files = sorted((DATA / "lfw" / "images").glob("*/*.jpg"))
    files = [files[i] for i in np.linspace(0, len(files) - 1, args.images).astype(int)]

    methods: dict[str, Method] = {}
    peer = peer_method()
    if peer is None:
        print("face_recognition is not installed: `make bench` installs it (no ratios without the peer)", file=info)
    else:
        methods["face_recognition"] = peer
    pipes: dict[str, Pipeline] = {}
    for name in args.profiles.split(","):
        prof = load_profile(name)
        if not prof.available():
            print(f"profile {name}: models not on FACEWISE_MODEL_PATH, skipped", file=info)
            continue
        name = prof.name  # a profile given as a JSON path is keyed by its own name
        pipe = pipes[name] = Pipeline(prof, threads=args.threads).load()

        def one(paths: list[Path], pipe: Pipeline = pipe) -> int:
            return sum(len(pipe.analyze(load_image(p))[1]) for p in paths)

        def many(paths: list[Path], pipe: Pipeline = pipe) -> int:
            res = pipe.analyze_many([str(p) for p in paths], workers=args.workers)
            return sum(len(r[1]) for r in res if not isinstance(r, Exception))

        methods[name] = one
        methods[f"{name}/batch"] = many

    for fn in methods.values():  # warm-up
        fn(files[:2])
    spent = dict.fromkeys(methods, 0.0)
    faces = dict.fromkeys(methods, 0)
    for start in range(0, len(files), args.chunk):
        chunk = files[start : start + args.chunk]
        for name, fn in methods.items():
            t = time.perf_counter()
            faces[name] += fn(chunk)
            spent[name] += time.perf_counter() - t
    base = spent.get("face_recognition")
    ratio = {name: round(base / s, 2) for name, s in spent.items()} if base else {}
    if args.json:
        result = {
            "images": len(files), "image_size": "250x250 (LFW)", "threads": args.threads or "auto",
            "workers": args.workers, "load_average": [round(x, 2) for x in os.getloadavg()],
            "speed_vs_face_recognition": ratio,
            "images_per_s": {n: round(len(files) / s, 1) for n, s in spent.items()},
            "ms_per_face": {n: round(1000 * s / max(faces[n], 1), 2) for n, s in spent.items()},
            "faces": faces,
            "lfw_accuracy": {n: lfw_accuracy(p) for n, p in pipes.items()},
        }
        print(json.dumps(result, indent=1))
        return
    print(f"{len(files)} LFW images (250x250), threads={args.threads or 'auto'}, load {os.getloadavg()[0]:.1f}")
    print("| method | images/s | ms per image | ms per face | faces | speed vs face_recognition |")
    print("|---|---|---|---|---|---|")
    for name in methods:
        r = f"{ratio[name]:.1f}x" if ratio else "n/a"
        print(f"| {name} | {len(files) / spent[name]:.1f} | {1000 * spent[name] / len(files):.1f} | "
              f"{1000 * spent[name] / max(faces[name], 1):.1f} | {faces[name]} | {r} |")


if __name__ == "__main__":
    main()
