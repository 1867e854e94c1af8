"""300 real LFW View-2 pairs (15 same + 15 different from each fold), end to end through the harness."""

from __future__ import annotations

import pytest

from facewise.core.pipeline import Pipeline
from facewise.eval.embed import embed_images
from facewise.eval.pairs import limit_per_fold, parse_lfw_pairs
from facewise.eval.verification import PairScores, evaluate
from facewise.models.profiles import load_profile


def subset(lfw, per_fold: int = 15):
    return limit_per_fold(parse_lfw_pairs(lfw / "pairs.txt", lfw / "images"), per_fold)


@pytest.mark.parametrize(("profile", "floor"), [("default", 0.97), ("accurate", 0.985)])
def test_lfw_300_pairs(lfw, profile, floor, tmp_path, caplog):
    prof = load_profile(profile)
    if not prof.available():
        pytest.skip(f"profile {profile} needs models on FACEWISE_MODEL_PATH")
    pairs = subset(lfw)
    assert len(pairs) == 300 and sum(p.same for p in pairs) == 150
    pipe = Pipeline(prof).load()
    paths = [str(x) for p in pairs for x in (p.path1, p.path2)]
    emb = embed_images(pipe, paths, cache_dir=tmp_path)
    report = evaluate(PairScores.from_embedded(pairs, emb), n_boot=200)
    assert report.accuracy > floor, report.to_dict()
    assert report.auc > 0.99
    # a rerun reuses every cached vector
    caplog.set_level("INFO", logger="facewise.eval.embed")
    again = embed_images(pipe, paths, cache_dir=tmp_path)
    assert f"{len(emb.paths)} of {len(emb.paths)} images reused" in caplog.text
    assert (again.vectors == emb.vectors).all()
