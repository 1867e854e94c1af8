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
