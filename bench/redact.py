"""Redaction side by side with deface (CenterFace): coverage, flashes and speed on the shared clips, in one run.

    FACEWISE_MODEL_PATH=../shared/models python bench/redact.py [--peer-python /tmp/deface-venv/bin/python] [--json]

Both tools hide faces with a solid black fill (facewise ``--style box``, deface ``--replacewith solid``), so
coverage can be read from the output pixels whatever the codec does:

* reference: SCRFD 2.5g (score >= 0.5, faces >= 12 px high) on every original frame, a stronger detector than
  either tool's;
* a reference face is **covered** when >= 90 % of the middle half of its box is black in the output;
  **coverage** is the share of reference faces covered (all clips pooled);
* reference faces are linked over frames by IoU > 0.3; a **flash** is a run of uncovered frames of one face
  between two covered ones;
* **fps**: frames of all clips / wall-clock seconds of each tool's command (model loading included).

``unknown`` mode (Hamilton clip, the two people of its reference stills enrolled): each reference face is also
named by an oracle (the ``fast`` profile's vector of that very face against the gallery: >= 0.45 enrolled,
< 0.20 a stranger, in between not counted); **strangers spared** counts stranger faces left visible,
**enrolled blurred** enrolled faces hidden.

The peer: ``--peer-python`` (a Python with ``deface`` installed), else ``$FACEWISE_DEFACE_PYTHON``, else a
``deface`` on PATH; without one the deface column says ``missing``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("FACEWISE_DATA", str(REPO.parent / "shared" / "data")))
EXAMPLES = DATA / "video" / "face_recognition_examples" / "examples"
CLIPS = [EXAMPLES / "short_hamilton_clip.mp4", DATA / "video" / "facenet_pytorch_data" / "examples" / "video.mp4",
         *sorted((DATA / "video" / "misc").glob("*.avi"))]
ENROLLED = {"Lin-Manuel Miranda": EXAMPLES / "lin-manuel-miranda.png",
            "Alex Lacamoire": EXAMPLES / "alex-lacamoire.png"}


def peer_command(peer_python: str | None) -> list[str] | None:
    py = peer_python or os.environ.get("FACEWISE_DEFACE_PYTHON")
    if py:
        return [py, "-c", "import sys; from deface.deface import main; sys.argv[0] = 'deface'; main()"]
    exe = shutil.which("deface")
    return [exe] if exe else None


def read_frames(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        out.append(np.ascontiguousarray(bgr[:, :, ::-1]))
    cap.release()
    return out


def covered(redacted: np.ndarray, box: tuple[float, float, float, float]) -> bool:
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    a = (max(0, int(x1 + w / 4)), max(0, int(y1 + h / 4)))
    b = (min(redacted.shape[1], int(x2 - w / 4)), min(redacted.shape[0], int(y2 - h / 4)))
    if b[0] <= a[0] or b[1] <= a[1]:
        return True
    return bool((redacted[a[1]:b[1], a[0]:b[0]].max(axis=2) < 48).mean() >= 0.9)


def reference_faces(detector: Any, frames: list[np.ndarray]) -> list[list[Any]]:
    """Per frame: reference faces (Box) with a link id over frames (IoU > 0.3 with the previous frame)."""
    out: list[list[Any]] = []
    prev: list[tuple[Any, int]] = []
    next_id = 0
    for px in frames:
        cur = []
        for d in detector.detect(px):
            if d.box.height < 12:
                continue
            best = max(prev, key=lambda p: p[0].iou(d.box), default=None)
            if best is not None and best[0].iou(d.box) > 0.3:
                prev.remove(best)
                cur.append((d.box, best[1], d.landmarks))
            else:
                cur.append((d.box, next_id, d.landmarks))
                next_id += 1
        out.append(cur)
        prev = [(b, link) for b, link, _ in cur]
    return out


def score(refs: list[list[Any]], redacted: list[np.ndarray]) -> tuple[int, int, int, list[list[bool]]]:
    """(reference faces, covered, flashes, per frame the covered flags)."""
    if len(redacted) < len(refs):  # a tool that dropped frames: the missing ones count as uncovered
        redacted = redacted + [np.full_like(redacted[0], 255)] * (len(refs) - len(redacted))
    hist: dict[int, str] = {}
    flags: list[list[bool]] = []
    for faces, px in zip(refs, redacted, strict=False):
        row = []
        for box, link, _ in faces:
            hit = covered(px, (box.x1, box.y1, box.x2, box.y2))
            row.append(hit)
            hist[link] = hist.get(link, "") + ("1" if hit else "0")
        flags.append(row)
    total = sum(len(f) for f in flags)
    ok = sum(sum(f) for f in flags)
    flashes = sum(len(re.findall(r"1(0+)(?=1)", h)) for h in hist.values())
    return total, ok, flashes, flags


def timed(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])}... exited {r.returncode}: {r.stderr[-800:]}")
    return wall


def unknown_mode(tmp: Path, env: dict[str, str], profile: str) -> dict[str, Any]:
    from facewise import FaceWise
    from facewise.models.registry import load_detector

    clip = CLIPS[0]
    db = tmp / "gallery.db"
    with FaceWise(db=db, profile=profile) as fw:
        for name, photo in ENROLLED.items():
            fw.enroll(name, [photo])
        fw.set_threshold(0.30)
    out = tmp / "unknown.mp4"
    cmd = [sys.executable, "-m", "facewise", "redact", str(clip), "--out", str(out), "--mode", "unknown", "--db",
           str(db), "-p", profile, "--style", "box"]
    timed(cmd, env)
    frames, redacted = read_frames(clip), read_frames(out)
    refs = reference_faces(load_detector("scrfd-2.5g", score_threshold=0.5), frames)
    _, _, _, flags = score(refs, redacted)
    fw = FaceWise(db=db, profile=profile, create=False)
    counts = {"enrolled_faces": 0, "enrolled_blurred": 0, "stranger_faces": 0, "strangers_spared": 0}
    for px, faces, row in zip(frames, refs, flags, strict=True):
        if not faces:
            continue  # the reference's own landmarks align each face: the oracle sees exactly that face
        vecs = fw.pipeline.embed_landmarks(px, [lm for _, _, lm in faces])
        for hits, hit in zip(fw.store.search(fw.collection, vecs, k=1), row, strict=True):
            s = hits[0].score if hits else -1.0
            if s >= 0.45:
                counts["enrolled_faces"] += 1
                counts["enrolled_blurred"] += hit
            elif s < 0.20:
                counts["stranger_faces"] += 1
                counts["strangers_spared"] += not hit
    fw.close()
    report = json.loads((tmp / "unknown.mp4.json").read_text())
    counts["tracks_spared"] = sorted({t["person"] for t in report["tracks"] if t["frames_shown"]})
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--peer-python", help="a Python with deface installed (default: $FACEWISE_DEFACE_PYTHON, "
                                          "then a deface on PATH)")
    ap.add_argument("--profile", default="fast")
    ap.add_argument("--clips", nargs="*", type=Path, default=None)
    ap.add_argument("--no-unknown", action="store_true", help="skip the unknown-mode measurement")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    from facewise.models.registry import load_detector

    clips = [c for c in (args.clips or CLIPS) if c.is_file()]
    if not clips:
        sys.exit("no clips found (set FACEWISE_DATA)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    peer = peer_command(args.peer_python)
    if peer is None:
        print("deface is missing: give --peer-python or set FACEWISE_DEFACE_PYTHON (its column says missing)",
              file=sys.stderr)
    reference = load_detector("scrfd-2.5g", score_threshold=0.5)
    tools: dict[str, dict[str, Any]] = {"facewise": {"faces": 0, "covered": 0, "flashes": 0, "wall": 0.0},
                                        "deface": {"faces": 0, "covered": 0, "flashes": 0, "wall": 0.0}}
    per_clip = []
    n_frames = 0
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        for clip in clips:
            frames = read_frames(clip)
            n_frames += len(frames)
            refs = reference_faces(reference, frames)
            row: dict[str, Any] = {"clip": clip.name, "frames": len(frames), "faces": sum(len(f) for f in refs)}
            runs = {"facewise": [sys.executable, "-m", "facewise", "redact", str(clip), "--out",
                                 str(tmp / f"fw-{clip.stem}.mp4"), "-p", args.profile, "--style", "box"]}
            if peer is not None:
                runs["deface"] = [*peer, str(clip), "-o", str(tmp / f"df-{clip.stem}.mp4"), "--replacewith", "solid",
                                  "--keep-audio"]
            for tool, cmd in runs.items():
                wall = timed(cmd, env)
                out = Path(cmd[cmd.index("--out" if tool == "facewise" else "-o") + 1])
                total, ok, flashes, _ = score(refs, read_frames(out))
                t = tools[tool]
                t["faces"] += total
                t["covered"] += ok
                t["flashes"] += flashes
                t["wall"] += wall
                row[tool] = {"coverage": round(ok / total, 4) if total else None, "flashes": flashes,
                             "fps": round(len(frames) / wall, 2)}
            per_clip.append(row)
            print(json.dumps(row), file=sys.stderr)
        unknown = None if args.no_unknown else unknown_mode(tmp, env, args.profile)
    result: dict[str, Any] = {}
    for tool, t in tools.items():
        if tool == "deface" and peer is None:
            result[tool] = {"coverage": None, "flashes": None, "fps": None, "missing": True}
            continue
        result[tool] = {"coverage": round(t["covered"] / t["faces"], 4) if t["faces"] else None,
                        "flashes": t["flashes"], "fps": round(n_frames / t["wall"], 2) if t["wall"] else None}
    if args.json:
        print(json.dumps(result))
        print(json.dumps({"clips": per_clip, "unknown_mode": unknown}), file=sys.stderr)
        return
    print(f"{'clip':<32}{'frames':>7}{'faces':>7}  {'facewise cov/flash/fps':>24}  {'deface cov/flash/fps':>24}")
    for row in per_clip:
        cells = []
        for tool in ("facewise", "deface"):
            c = row.get(tool)
            cells.append(f"{c['coverage']:.2%} / {c['flashes']} / {c['fps']:.1f}" if c else "missing")
        print(f"{row['clip']:<32}{row['frames']:>7}{row['faces']:>7}  {cells[0]:>24}  {cells[1]:>24}")
    print(json.dumps(result))
    if unknown is not None:
        print("unknown mode:", json.dumps(unknown))


if __name__ == "__main__":
    main()
