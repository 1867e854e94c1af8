"""Video speed: facewise's video pipeline against a naive loop, on the same clip, in the same run.

    python bench/video.py                       # short_hamilton_clip.mp4, fast profile, every frame
    python bench/video.py --video clip.mp4 --stride 2 --repeat 3 --outputs

* facewise: decode thread -> detect every sampled frame -> track -> embed only when a track needs a vector
  -> fused per-track identity (``facewise.video.VideoProcessor``); ``--outputs`` also writes the annotated
  video, thumbnails and timeline (in a temporary folder).
* naive: read the same frames in the main thread and call ``FaceWise.identify`` on each (detect + embed +
  search every face of every frame, no tracking).

Prints frames per second (processed frames / wall time) and the real-time factor (video seconds per wall
second) for both, and their ratio, plus the machine's load average so that a busy machine shows. Models are
loaded and warmed up before timing. Runs alternate (facewise, naive, facewise, ...) and the median is kept.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facewise import FaceWise
from facewise.video import DecodeOptions, OutputOptions, VideoOptions, VideoProcessor

DATA = Path(os.environ.get("FACEWISE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
EXAMPLES = DATA / "video" / "face_recognition_examples" / "examples"
HAMILTON = EXAMPLES / "short_hamilton_clip.mp4"
STILLS = {"Lin-Manuel Miranda": EXAMPLES / "lin-manuel-miranda.png", "Alex Lacamoire": EXAMPLES / "alex-lacamoire.png"}


@dataclass
class Timing:
    frames: int
    wall_s: float
    video_s: float
    embeddings: int
    cpu_s: float = 0.0  # CPU time of the whole process (all threads) during the run

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s

    @property
    def realtime(self) -> float:
        return self.video_s / self.wall_s


def run_facewise(fw: FaceWise, video: Path, stride: int, outputs: bool) -> Timing:
    proc = VideoProcessor(fw, VideoOptions(decode=DecodeOptions(stride=stride)))
    c0 = time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        res = proc.run(video, OutputOptions(Path(tmp)) if outputs else None)
    s = res.stats
    return Timing(s.frames_processed, s.wall_s, s.video_s, s.embeddings, time.process_time() - c0)


def run_naive(fw: FaceWise, video: Path, stride: int) -> Timing:
    cap = cv2.VideoCapture(str(video))
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    t0, c0 = time.perf_counter(), time.process_time()
    n = i = faces = 0
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        if i % stride == 0:
            faces += len(fw.identify(np.ascontiguousarray(bgr[:, :, ::-1])))
            n += 1
        i += 1
    wall = time.perf_counter() - t0
    cap.release()
    return Timing(n, wall, i / fps, faces, time.process_time() - c0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", type=Path, default=HAMILTON)
    ap.add_argument("--profile", default="fast")
    ap.add_argument("--stride", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--outputs", action="store_true", help="facewise also writes annotated video + thumbnails")
    ap.add_argument("--skip-naive", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    fw = FaceWise(db=None, profile=args.profile)
    if args.video.resolve() == HAMILTON.resolve():
        for name, still in STILLS.items():
            fw.enroll(name, [still])
    fw.pipeline.load()
    # warm-up: first inference of each model (and each OpenVINO batch size) is slow
    run_facewise(fw, args.video, max(args.stride, 10), False)
    if not args.skip_naive:
        fw.identify(np.zeros((360, 640, 3), np.uint8))

    fws, naive = [], []
    for _ in range(args.repeat):
        fws.append(run_facewise(fw, args.video, args.stride, args.outputs))
        if not args.skip_naive:
            naive.append(run_naive(fw, args.video, args.stride))

    def med(ts: list[Timing]) -> Timing:
        return sorted(ts, key=lambda t: t.wall_s)[len(ts) // 2]

    cap = cv2.VideoCapture(str(args.video))
    size = f"{int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))}x{int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))}"
    native = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{args.video.name} ({size}, {native:.2f} fps), profile {args.profile}, stride {args.stride}, "
          f"{os.cpu_count()} CPUs, load average {load}, python {sys.version.split()[0]}")
    print("| pipeline | frames | wall s | fps | x real time | vectors | CPU s |")
    print("|---|---|---|---|---|---|---|")
    rows = [("facewise video" + (" (+outputs)" if args.outputs else ""), med(fws))]
    if naive:
        rows.append(("naive identify() per frame", med(naive)))
    for name, t in rows:
        print(f"| {name} | {t.frames} | {t.wall_s:.2f} | {t.fps:.1f} | {t.realtime:.2f} | {t.embeddings} "
              f"| {t.cpu_s:.1f} |")
    if naive:
        print(f"speed-up (fps ratio facewise / naive): {med(fws).fps / med(naive).fps:.2f}x")
    if len(fws) > 1:
        print(f"facewise fps over runs: {', '.join(f'{t.fps:.1f}' for t in fws)} "
              f"(stdev {statistics.pstdev([t.fps for t in fws]):.1f})")


if __name__ == "__main__":
    main()
