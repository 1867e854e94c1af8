"""The peer: the face_recognition library through facewise's evaluation harness, on the same pairs.

    make bench-peer      # or: python bench/peer_face_recognition.py [--limit N]

face_recognition 1.3 defaults: HOG detector with one upsample, 5-point landmarks, ResNet 128-d,
no jitter. Face choice and the no-face rule are the harness's own (central face; centred box
when none is found), so the only difference from facewise's `default` profile is the pipeline.
"""

from __future__ import annotations

import argparse
import json
import os
import warnings
from pathlib import Path

import numpy as np

from facewise.eval.embed import EmbeddedImages
from facewise.eval.pairs import limit_per_fold, parse_lfw_pairs
from facewise.eval.verification import PairScores, evaluate

DATA = Path(os.environ.get("FACEWISE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=0, help="first N same + N different pairs per fold")
    ap.add_argument("--cache", default=str(Path.home() / ".cache" / "facewise" / "eval" / "peer-face_recognition.npz"))
    args = ap.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import face_recognition

    pairs = parse_lfw_pairs(DATA / "lfw" / "pairs.txt", DATA / "lfw" / "images")
    pairs = limit_per_fold(pairs, args.limit)
    paths = list(dict.fromkeys(str(x) for p in pairs for x in (p.path1, p.path2)))
    cache = Path(args.cache)
    done: dict[str, tuple[np.ndarray, bool]] = {}
    if cache.exists():
        z = np.load(cache)
        done = {str(k): (v, bool(n)) for k, v, n in zip(z["paths"], z["vectors"], z["no_face"], strict=True)}
    vec = np.zeros((len(paths), 128), np.float32)
    noface = np.zeros(len(paths), bool)
    for i, path in enumerate(paths):
        if path in done:
            vec[i], noface[i] = done[path]
            continue
        img = face_recognition.load_image_file(path)
        h, w = img.shape[:2]
        locs = face_recognition.face_locations(img)  # (top, right, bottom, left)
        if locs:
            def off(loc: tuple[int, int, int, int], w: int = w, h: int = h) -> float:
                t, r, b, left = loc
                return ((left + r) / 2 - w / 2) ** 2 + ((t + b) / 2 - h / 2) ** 2

            big = max((r - left) * (b - t) for t, r, b, left in locs)
            loc = min((x for x in locs if (x[1] - x[3]) * (x[2] - x[0]) >= 0.5 * big), key=off)
        else:
            noface[i] = True
            loc = (h // 4, 3 * w // 4, 3 * h // 4, w // 4)
        enc = face_recognition.face_encodings(img, [loc])[0]
        vec[i] = enc / np.linalg.norm(enc)
        if i % 500 == 0:
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.savez(cache, paths=np.array(paths), vectors=vec, no_face=noface)
    np.savez(cache, paths=np.array(paths), vectors=vec, no_face=noface)
    emb = EmbeddedImages(paths, vec, np.zeros(len(paths), np.float32), np.ones(len(paths), np.float32), noface,
                         np.zeros(len(paths), bool))
    report = evaluate(PairScores.from_embedded(pairs, emb))
    report.no_face["images"] = int(noface.sum())
    d = report.to_dict()
    d.pop("breakdown")
    print(json.dumps({"peer": "face_recognition 1.3", **d}))


if __name__ == "__main__":
    main()
