"""The varied-input tier: in one process per profile, photos of many sizes, modes, orientations, crowds, video
frames and faceless scenes through every door of the library (detect, analyze with every attribute, identify,
a live session's frame), then a sample through the CLI and the REST service.

Every input must give a result or a :class:`FacewiseError` with a message (a clear refusal); any other exception
is a failure, listed with its seed and input. The inputs are generated from the shared data (``varied_inputs``),
a different sample per profile.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from conftest import KNN
from varied_inputs import collage, faceless, modes, orientations, shared_ready, size_sweep, varied_inputs

PROFILES = ["default", "fast", "balanced", "accurate", "accurate-commercial"]
# every shipped profile runs the library doors; two of them only in the slow tier (`pytest -m slow`), so the test
# command stays inside CI's 30 minutes on 2 cores: `default` and `fast` (the shipped ones), `accurate` (the
# OpenVINO detector path) always run
SLOW_PROFILES = {"balanced", "accurate-commercial"}
SWEEP = 40  # distinct padded shapes, five times the detectors' shape cache


def _need_shared() -> None:
    missing = shared_ready()
    if missing is not None:
        pytest.skip(f"{missing} is not available (set FACEWISE_DATA to the shared data folder)")


def _need_profile(profile: str) -> None:
    from facewise.models.profiles import load_profile

    if not load_profile(profile).available():
        pytest.skip(f"models of {profile} are not on the model path (set FACEWISE_MODEL_PATH)")


@pytest.mark.parametrize("profile", [pytest.param(p, marks=pytest.mark.slow) if p in SLOW_PROFILES else p
                                     for p in PROFILES])
def test_varied_inputs_through_every_library_door(profile: str, tmp_path: Path) -> None:
    from facewise.api import FaceWise
    from facewise.core.analysis import Analyzer
    from facewise.core.imageio import load_image
    from facewise.errors import FacewiseError
    from facewise.service.config import LiveLimits
    from facewise.service.live import LiveSessions, new_challenge, process_frame

    _need_shared()
    _need_profile(profile)
    seed = PROFILES.index(profile) + 1
    failures: list[str] = []
    refusals: Counter[str] = Counter()
    with FaceWise(db=tmp_path / "g.db", profile=profile) as fw:
        fw.enroll("obama", [KNN / "train" / "obama" / "obama.jpg"])
        # more image shapes than the detector keeps compiled, in one process (the OpenVINO shape cache crashed)
        for i, pixels in enumerate(size_sweep(seed, SWEEP)):
            try:
                fw.detect(pixels)
            except Exception as exc:
                failures.append(f"seed {seed} sweep #{i} {pixels.shape}: {type(exc).__name__}: {exc}")
        analyzer = Analyzer()
        session = LiveSessions(LiveLimits()).open("key", "default", new_challenge(analyzer, None, 2, 60.0))
        inputs = varied_inputs(seed)
        for item in inputs:
            doors = {
                "detect": lambda d=item.data: fw.detect(d),
                "analyze": lambda d=item.data: fw.analyze(d),
                "identify": lambda d=item.data: fw.identify(d),
                "live frame": lambda d=item.data: process_frame(session, fw.coll, load_image(d), LiveLimits(),
                                                                with_map=True),
            }
            for door, call in doors.items():
                try:
                    call()
                except FacewiseError as exc:
                    assert str(exc).strip(), f"{item.label} / {door}: a refusal without a message"
                    refusals[f"{door}: {type(exc).__name__}"] += 1
                except Exception as exc:
                    failures.append(f"seed {seed} {item.label} / {door}: {type(exc).__name__}: {exc}")
        assert not failures, "\n".join(failures)
        print(f"{profile}: {len(inputs)} inputs x 4 doors + {SWEEP} sizes; refusals {dict(refusals)}")

        # the answers are right, not only free of exceptions: EXIF applied, crowds found, nothing in empty scenes
        upright = [len(fw.detect(item.data)) for item in orientations()]
        assert upright[0] >= 2 and len(set(upright)) == 1, f"faces per EXIF orientation 1..8: {upright}"
        crowd = collage(__import__("random").Random(seed), 5, 3, 200)
        assert len(fw.detect(crowd.data)) >= 13, crowd.label
        for item in faceless()[:3]:  # flat, noise, gradient
            assert fw.detect(item.data) == [], item.label


def test_varied_inputs_through_the_cli(tmp_path: Path) -> None:
    """A sample through ``facewise analyze --json``: exit 0 or 3, one JSON object per line, an error object for
    each refused file, never a traceback."""
    from typer.testing import CliRunner

    from facewise.cli import app

    _need_shared()
    files = []
    for i, item in enumerate(modes(__import__("random").Random(11)) + faceless() + orientations()[4:6]):
        path = tmp_path / f"{i:02d}.img"
        path.write_bytes(item.data)
        files.append(str(path))
    result = CliRunner().invoke(app, ["analyze", *files, "--json"])
    assert result.exit_code in (0, 3), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert rows and all("file" in r for r in rows)
    analysed = {r["file"] for r in rows if "error" not in r}
    assert len(analysed) >= len(modes(__import__("random").Random(11))) - 1, rows


def test_varied_inputs_through_rest(tmp_path: Path) -> None:
    """The same kinds of input through ``/v1/detect`` and ``/v1/analyze`` on one keep-alive connection: 200 or a
    4xx with a stable code, never a 500; the server's log holds no traceback."""
    from service_helpers import start_server

    _need_shared()
    server = start_server(tmp_path)
    try:
        inputs = varied_inputs(21, n_sizes=4)
        with server.client() as client:
            statuses: Counter[int] = Counter()
            for item in inputs:
                for route in ("/v1/detect", "/v1/analyze"):
                    r = client.post(route, files={"image": ("upload", item.data, "application/octet-stream")})
                    statuses[r.status_code] += 1
                    assert r.status_code < 500, f"{route} {item.label}: {r.status_code} {r.text[:300]}"
                    if r.status_code >= 400:
                        assert r.json()["error"]["code"], r.text
            assert client.get("/healthz").status_code == 200
        assert statuses[200] >= len(inputs), statuses
        assert "Traceback" not in server.log_tail(200_000), server.log_tail()
    finally:
        server.stop()
