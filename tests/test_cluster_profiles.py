"""Clustering on a messy photo library with every profile's own scale (issue 24, part B): LFW photos of 40 people
copied into one flat folder under new names, some downscaled, some upscaled, some greyscale, plus faceless images;
indexed with `default` and with `fast`, clustered at the collection's profile's default (a FAR, converted through
that profile's calibration, never a cosine tuned on another profile)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facewise.batch.cluster import CLUSTER_FAR, Clusterer
from facewise.batch.indexing import IndexOptions, index_tree
from facewise.decision.rates import ScoreScale
from facewise.eval.metrics import bcubed
from facewise.gallery import SQLiteStore
from facewise.models.profiles import load_profile

FLOOR_BCUBED_F = 0.95


@pytest.fixture(scope="module")
def library(lfw: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, tuple[str, tuple[int, int]]]]:
    """(folder, {file name: (true person, image size)})."""
    rng = random.Random(24)
    root = tmp_path_factory.mktemp("messy")
    people = sorted(d for d in (lfw / "images").iterdir() if d.is_dir() and len(list(d.glob("*.jpg"))) >= 4)
    truth: dict[str, tuple[str, tuple[int, int]]] = {}
    n = 0
    for d in people[5::9][:40]:
        for f in sorted(d.glob("*.jpg"))[:5]:
            n += 1
            img = Image.open(f).convert("RGB")
            kind = rng.random()
            if kind < 0.2:
                img = img.resize((160, 160), Image.Resampling.BILINEAR)
            elif kind < 0.35:
                img = img.resize((400, 400), Image.Resampling.BICUBIC)
            elif kind < 0.5:
                img = img.convert("L").convert("RGB")
            name = f"IMG_{n:04d}.{'png' if kind > 0.9 else 'jpg'}"
            img.save(root / name)
            truth[name] = (d.name, img.size)
    for i in range(4):  # faceless: a wall, noise, a gradient, a tiny thumbnail
        arr = [np.full((240, 320, 3), 128, np.uint8), np.random.default_rng(i).integers(0, 255, (200, 200, 3)),
               np.tile(np.linspace(0, 255, 300, dtype=np.uint8)[None, :, None], (200, 1, 3)),
               np.full((16, 16, 3), 60, np.uint8)][i]
        Image.fromarray(arr.astype(np.uint8)).save(root / f"IMG_9{i:03d}.jpg")
    return root, truth


def _measure(store: SQLiteStore, truth: dict[str, tuple[str, tuple[int, int]]]) -> float:
    by_image: dict[str, list] = {}
    for s in store.list_samples("unknown"):
        by_image.setdefault(s.source, []).append(s)
    pred, names = [], []
    for source, faces in by_image.items():
        if source not in truth:
            continue
        person, (w, h) = truth[source]
        c = min(faces, key=lambda s: abs((s.box[0] + s.box[2]) / 2 - w / 2) + abs((s.box[1] + s.box[3]) / 2 - h / 2))
        pred.append(c.person_id)
        names.append(person)
    assert len(names) >= 0.95 * len(truth), (len(names), len(truth))
    b = bcubed(pred, names)
    print(f"  P {b.precision:.3f} R {b.recall:.3f}")
    return b.f


@pytest.mark.parametrize("profile", ["default", "fast"])
def test_messy_library_clusters_on_every_profile(profile: str, library, tmp_path: Path, models_dir) -> None:
    root, truth = library
    store = SQLiteStore(tmp_path / "g.db")
    try:
        rep = index_tree(store, root, IndexOptions(profile=profile, workers=1, layout="photos"))
        assert rep.photos == len(truth) + 4
        c = Clusterer(store, "unknown")
        expected = ScoreScale.of(load_profile(profile)).at_far(CLUSTER_FAR, 0.0)
        assert c.threshold == pytest.approx(expected)  # the profile's own score at the stated FAR
        c.assign()
        f_assign = _measure(store, truth)
        c.recluster()
        f_full = _measure(store, truth)
        print(f"{profile}: threshold {c.threshold:.4f}, BCubed F incremental {f_assign:.3f}, re-clustered {f_full:.3f}")
        assert f_assign >= FLOOR_BCUBED_F and f_full >= FLOOR_BCUBED_F, (profile, f_assign, f_full)
    finally:
        store.close()
