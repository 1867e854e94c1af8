"""Pipeline-level behaviour: batch analysis keeps order and reports bad images in place."""

from __future__ import annotations

import numpy as np

from facewise.errors import ImageError


def test_analyze_many_keeps_order_and_reports_bad_images(default_pipeline, knn, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"nope")
    images = [knn / "test" / "obama1.jpg", bad, knn / "test" / "kit_with_rose.jpg"]
    res = default_pipeline.analyze_many(images, workers=2)
    assert len(res) == 3
    assert isinstance(res[1], ImageError) and "bad.jpg" in str(res[1])
    img0, faces0 = res[0]
    _, faces2 = res[2]
    assert len(faces0) == 1 and len(faces2) == 2
    single = default_pipeline.analyze(images[0])[1][0]
    assert np.allclose(single.embedding, faces0[0].embedding, atol=1e-5)
    assert img0.name.endswith("obama1.jpg")


def test_flip_can_be_set_per_embedder(models_dir, knn):
    """A model's own "flip" overrides the profile's: its block is the mirrored-crop average or the plain crop
    exactly as a whole-profile flip would give, and the profile signature tells the layouts apart."""
    from facewise.core.pipeline import Pipeline
    from facewise.models.profiles import Profile

    def pipe(flip: bool, model_flip: bool | None = None) -> Pipeline:
        emb = {"model": "reid-0095"} | ({} if model_flip is None else {"flip": model_flip})
        return Pipeline(Profile.from_dict({"name": "t", "detector": "yunet-2023mar", "flip": flip,
                                           "embedders": [emb]})).load()

    image = knn / "test" / "obama1.jpg"
    flipped = pipe(True).analyze(image)[1][0].embedding
    plain = pipe(False).analyze(image)[1][0].embedding
    assert not np.allclose(flipped, plain, atol=1e-3)
    only_model = pipe(False, model_flip=True)
    assert np.allclose(only_model.analyze(image)[1][0].embedding, flipped, atol=1e-6)
    assert np.allclose(pipe(True, model_flip=False).analyze(image)[1][0].embedding, plain, atol=1e-6)
    assert only_model.profile.signature != pipe(False).profile.signature
    assert Profile.from_dict(only_model.profile.to_dict()) == only_model.profile


def test_analyze_many_batches_faces_of_several_images_with_the_same_vectors(fast_pipeline, knn):
    """analyze_many embeds the faces of several images per inference call (batch smaller than the
    face count, so it flushes more than once); every face gets the vector analyze gives it alone."""
    images = sorted((knn / "test").glob("*.jpg"))
    many = fast_pipeline.analyze_many(images, workers=2, batch=3)
    n = 0
    for path, res in zip(images, many, strict=True):
        _, faces = res
        alone = fast_pipeline.analyze(path)[1]
        assert len(faces) == len(alone) > 0
        for a, b in zip(faces, alone, strict=True):
            assert a.embedding is not None and np.allclose(a.embedding, b.embedding, atol=1e-4)
            n += 1
    assert n > len(images)  # some photos hold several faces
