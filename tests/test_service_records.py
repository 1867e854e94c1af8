"""REST models are made from the library's records: each record's model has exactly the fields its ``to_dict()``
sends, and a record goes on the wire as its ``to_dict()`` (no model, route or hand-made dict says it twice)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

pytest.importorskip("fastapi")

from facewise import types
from facewise.gallery.store import CollectionInfo
from facewise.service import schemas
from facewise.service.records import RECORD_MODELS, RecordModel
from facewise.video.records import TrackSummary

FACE = types.Face(index=0, box=types.Box(10.04, 20.0, 110.0, 140.06), landmarks=np.ones((5, 2), np.float32) * 1.234,
                  det_score=0.987654, quality=types.Quality(0.81234, ["blurry"]), yaw=-12.345,
                  embedding=np.ones(4, np.float32), attributes={"pose": {"yaw": 1.0, "pitch": 2.0, "roll": 3.0,
                                                                         "source": "landmarks"}})
RECORDS: list[Any] = [
    types.Person(7, "ada", {"team": "a"}, 2, "2026-01-01T00:00:00"),
    types.Sample(3, 7, "ab" * 32, "a.jpg", [1.0, 2.0, 3.0, 4.0], 0.51234, 3.4567, "2026-01-01T00:00:00"),
    types.Candidate(7, "ada", 0.612345, 1e-4),
    FACE,
    types.Identification(FACE, None, None, 0.2345678, None, 0.41234, [types.Candidate(7, "ada", 0.2345678, 0.1)],
                         fpir=0.5, searched=1),
    types.Verification(0.7, True, 0.41234, 1e-5, "default", faces=[{"index": 0, "box": [1.0, 2.0, 3.0, 4.0]}]),
    types.EnrollResult("a.jpg", "ada", "rejected", reason="no face", code="no_face"),
    CollectionInfo("default", "default", "sig", 512, {"threshold": 0.4}, "2026-01-01T00:00:00", 1, 2),
    TrackSummary(1, "ada", 7, 0.812345, 1e-3, "ada", 0.04, 1500.06, 12, 4, best_frame="t/1.jpg",
                 best_frame_ms=500.04, best_box=[1.0, 2.0, 3.0, 4.0], best_quality=0.7),
]


def test_every_record_model_is_tested() -> None:
    assert set(RECORD_MODELS) == {type(r) for r in RECORDS}


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: type(r).__name__)
def test_a_record_goes_on_the_wire_as_its_to_dict(record: Any) -> None:
    model: type[RecordModel] = RECORD_MODELS[type(record)]
    sent = record.to_dict()
    for never in model.__exclude__:  # a collection's settings; a track's best frame (a job keeps it as a thumbnail)
        sent.pop(never, None)
    wire = json.loads(model.model_validate(record).model_dump_json(exclude_unset=True))
    assert wire == json.loads(json.dumps(sent))
    attrs = set(getattr(record, "attributes", None) or getattr(getattr(record, "face", None), "attributes", {}))
    declared = set(model.model_fields)
    assert set(sent) - attrs <= declared, f"{model.__name__} lacks {sorted(set(sent) - attrs - declared)}"
    required = {n for n, f in model.model_fields.items() if f.is_required()}
    assert required <= set(sent), f"{model.__name__} requires {sorted(required - set(sent))}"


def test_the_video_track_is_the_timeline_record() -> None:
    """The drift that was: the REST track lacked the timeline's expression."""
    assert schemas.VideoTrack.__record__ is TrackSummary
    assert "expression" in schemas.VideoTrack.model_fields and "best_frame" not in schemas.VideoTrack.model_fields


def test_a_model_field_the_record_lacks_is_refused() -> None:
    from facewise.service.records import from_record

    with pytest.raises(TypeError, match="which Person does not have"):
        @from_record(types.Person)
        class Wrong(RecordModel):
            nickname: str
