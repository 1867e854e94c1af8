"""Throughput of facewise's profiles against the face_recognition library, in one run.

    make bench            # or: python bench/pipeline.py --images 200

Every method processes the same LFW images, interleaved image by image (so load from other
processes hits all methods alike): decode, detect, landmarks, align, embed every face. Prints
images/s and ms per face for each, and the ratio to face_recognition. Peer: face_recognition
1.3 (dlib HOG, upsample 1, 5-point landmarks, ResNet 128-d), installed with --no-deps on the
same dlib.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from facewise.core.imageio import load_image
from facewise.core.pipeline import Pipeline
from facewise.models.profiles import load_profile

DATA = Path(os.environ.get("FACEWISE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--profiles", default="default,fast,accurate")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    files = sorted((DATA / "lfw" / "images").glob("*/*.jpg"))
    files = [files[i] for i in np.linspace(0, len(files) - 1, args.images).astype(int)]

    methods = {}
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import face_recognition

        def peer(path: Path) -> int:
            img = face_recognition.load_image_file(str(path))
            locs = face_recognition.face_locations(img)  # HOG, upsample 1 (the library's defaults)
            return len(face_recognition.face_encodings(img, locs))

        methods["face_recognition"] = peer
    except ImportError:
        print("face_recognition is not installed: `make bench` installs it (no ratios without the peer)")

    for name in args.profiles.split(","):
        prof = load_profile(name)
        if not prof.available():
            print(f"profile {name}: models not on FACEWISE_MODEL_PATH, skipped")
            continue
        pipe = Pipeline(prof, threads=args.threads).load()

        def run(path: Path, pipe: Pipeline = pipe) -> int:
            return len(pipe.analyze(load_image(path))[1])

        methods[f"facewise {name}"] = run

    def batched(name: str, pipe: Pipeline) -> None:
        """Throughput of the batch API (2 worker threads) over all images at once."""
        t = time.perf_counter()
        res = pipe.analyze_many([str(f) for f in files], workers=2)
        batch_rows.append((name, time.perf_counter() - t, sum(len(r[1]) for r in res if not isinstance(r, Exception))))

    batch_rows: list[tuple[str, float, int]] = []

    for fn in methods.values():  # warm-up
        fn(files[0])
    spent = dict.fromkeys(methods, 0.0)
    faces = dict.fromkeys(methods, 0)
    for f in files:
        for name, fn in methods.items():
            t = time.perf_counter()
            faces[name] += fn(f)
            spent[name] += time.perf_counter() - t
    for name in args.profiles.split(","):
        prof = load_profile(name)
        if prof.available():
            batched(f"facewise {name}, analyze_many (2 threads)", Pipeline(prof, threads=1).load())
    base = spent.get("face_recognition")
    print(f"{len(files)} LFW images (250x250), threads={args.threads or 'auto'}")
    print("| method | images/s | ms per image | ms per face | faces | speed vs face_recognition |")
    print("|---|---|---|---|---|---|")
    for name in methods:
        ratio = f"{base / spent[name]:.1f}x" if base else "n/a"
        print(f"| {name} | {len(files) / spent[name]:.1f} | {1000 * spent[name] / len(files):.1f} | "
              f"{1000 * spent[name] / max(faces[name], 1):.1f} | {faces[name]} | {ratio} |")
    for name, secs, n_faces in batch_rows:
        ratio = f"{base / secs:.1f}x" if base else "n/a"
        print(f"| {name} | {len(files) / secs:.1f} | {1000 * secs / len(files):.1f} | "
              f"{1000 * secs / max(n_faces, 1):.1f} | {n_faces} | {ratio} |")


if __name__ == "__main__":
    main()
