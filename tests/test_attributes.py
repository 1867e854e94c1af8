"""Face attributes as plug-ins: the shipped ones give main's values, a new one is one class plus one register call."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import DATA, need
from facewise.api import FaceWise
from facewise.core.analysis import Analyzer
from facewise.core.imageio import load_image
from facewise.errors import ValidationError
from facewise.models import attributes
from facewise.models.attributes import Attribute
from facewise.types import Box, Face, Quality

GOLDEN = json.loads((Path(__file__).parent / "data" / "attribute_golden.json").read_text())


def _close(got: Any, want: Any, where: str) -> None:
    if isinstance(want, dict):
        assert isinstance(got, dict) and list(got) == list(want), f"{where}: keys {list(got)} != {list(want)}"
        for k in want:
            _close(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{where}: {got} != {want}"
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            _close(g, w, f"{where}[{i}]")
    elif isinstance(want, float) or (isinstance(want, int) and not isinstance(want, bool)):
        assert not isinstance(got, bool) and math.isclose(got, want, abs_tol=1e-6), f"{where}: {got} != {want}"
    else:
        assert got == want and type(got) is type(want), f"{where}: {got!r} != {want!r}"


@pytest.fixture(scope="module")
def analyzers() -> dict[str, Analyzer]:
    shipped, minifasnet, no_fsanet = Analyzer(), Analyzer(), Analyzer()
    minifasnet.live_model = minifasnet.antispoof  # what `evaluate liveness --model minifasnet` does
    no_fsanet.headpose = None  # pose from the five landmarks
    return {"shipped": shipped, "minifasnet": minifasnet, "no-fsanet": no_fsanet}


@pytest.mark.parametrize("case", GOLDEN, ids=lambda c: f"{c['variant']}-{Path(c['image']).stem}-{'+'.join(c['what'])}")
def test_shipped_attributes_give_mains_values(case: dict[str, Any], analyzers: dict[str, Analyzer]) -> None:
    pixels = load_image(need(DATA / case["image"])).pixels
    faces = [Face(index=i, box=Box(*f["box"]), landmarks=np.asarray(f["landmarks"], f["landmarks_dtype"]),
                  det_score=f["det_score"],
                  quality=Quality(f["quality"], [r for r in f["reasons"] if not r.startswith("not live")]))
             for i, f in enumerate(case["faces"])]
    analyzers[case["variant"]].analyze(pixels, faces, tuple(case["what"]))
    assert [f.quality.reasons for f in faces] == [f["reasons"] for f in case["faces"]]
    for i, (face, want) in enumerate(zip(faces, case["faces"], strict=True)):
        _close(face.attributes, want["attributes"], f"face {i}")


class Brightness(Attribute):
    """A toy attribute: mean grey level of the face box, and a quality reason when it is dark."""

    name = "brightness"

    def analyze(self, pixels: np.ndarray, faces: list[Face], what: tuple[str, ...]) -> list[dict[str, Any]]:
        grey = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
        return [{"mean": round(float(grey[int(f.box.y1):int(f.box.y2), int(f.box.x1):int(f.box.x2)].mean()), 2)}
                for f in faces]

    def reason(self, result: dict[str, Any]) -> str | None:
        return "dark" if result["mean"] < 100 else None


def _expected_brightness(path: Path, box: list[float]) -> float:
    grey = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2GRAY)
    x1, y1, x2, y2 = (int(max(0.0, v)) for v in box)
    return round(float(grey[y1:y2, x1:x2].mean()), 2)


@pytest.fixture
def brightness():
    attributes.register("brightness", Brightness)
    yield
    attributes.unregister("brightness")


def test_a_registered_attribute_reaches_the_library(brightness: None, knn: Path) -> None:
    photo = knn / "test" / "obama_and_biden.jpg"
    fw = FaceWise(profile="default")
    faces = fw.analyze(photo, what=("brightness",))
    assert len(faces) == 3
    for f in faces:
        assert list(f.attributes) == ["brightness"]  # nothing else was asked for
        assert f.attributes["brightness"]["mean"] == pytest.approx(_expected_brightness(photo, f.box.as_list()),
                                                                   abs=0.011)
        assert ("dark" in f.quality.reasons) == (f.attributes["brightness"]["mean"] < 100)
    both = fw.analyze(photo, what=("pose", "brightness"))
    assert [list(f.attributes) for f in both] == [["pose", "brightness"]] * 3  # registry order
    assert "brightness" in fw.analyze(photo)[0].attributes  # the default is every registered attribute


def test_a_registered_attribute_reaches_the_cli(brightness: None, knn: Path) -> None:
    from facewise.cli.common import app

    photo = knn / "test" / "obama1.jpg"
    r = CliRunner().invoke(app, ["analyze", str(photo), "--json", "--what", "brightness"])
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert len(rows) == 1
    assert "live" not in rows[0] and "pose" not in rows[0]
    lib = FaceWise(profile="default").analyze(photo, what=("brightness",))[0]  # checked against pixels above
    assert rows[0]["brightness"] == lib.attributes["brightness"] and rows[0]["box"] == lib.box.as_list()


def test_unknown_attribute_is_a_clear_error(knn: Path) -> None:
    fw = FaceWise(profile="default")
    known = r"unknown face attribute 'brightness' \(known: live, pose, expression, live_map\)"
    with pytest.raises(ValidationError, match=known):
        fw.analyze(knn / "test" / "obama1.jpg", what=("brightness",))
    from facewise.cli.common import app

    r = CliRunner().invoke(app, ["analyze", str(knn / "test" / "obama1.jpg"), "--json", "--what", "pose,nope"])
    assert r.exit_code == 2 and "unknown face attribute 'nope'" in r.output, r.output


def test_register_refuses_what_is_not_an_attribute() -> None:
    with pytest.raises(ValidationError, match="attribute name"):
        attributes.register("bad name", Brightness)
    attributes.register("notone", "facewise.types:Box")
    try:
        with pytest.raises(ValidationError, match="is not an Attribute subclass"):
            Analyzer().analyze(np.zeros((8, 8, 3), np.uint8), [], ("notone",))
    finally:
        attributes.unregister("notone")


class NeedsFSANet(Brightness):
    """A plug-in that needs the FSA-Net files (the default ``available()`` checks ``model_ids``)."""

    name = "needs_fsanet"
    model_ids = ("fsanet",)


def test_an_attribute_whose_model_is_missing_is_skipped(knn: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    attributes.register("needs_fsanet", NeedsFSANet)
    try:
        analyzer = Analyzer()
        with monkeypatch.context() as m:  # a machine without the FSA-Net files
            m.setenv("FACEWISE_MODEL_PATH", str(tmp_path))
            m.setenv("FACEWISE_CACHE", str(tmp_path))
            assert analyzer.attribute("needs_fsanet") is None
        assert analyzer.available() == {"live": True, "pose": True, "expression": True, "needs_fsanet": False}
        fw = FaceWise(profile="default", analyzer=analyzer)
        faces = fw.analyze(knn / "test" / "obama1.jpg", what=("pose", "needs_fsanet"))
        assert [list(f.attributes) for f in faces] == [["pose"]]
        assert Analyzer().available()["needs_fsanet"] is True  # where the files are, it runs
    finally:
        attributes.unregister("needs_fsanet")


def test_a_registered_attribute_reaches_the_cli_table(brightness: None, knn: Path) -> None:
    from facewise.cli.common import app

    photo = knn / "test" / "obama1.jpg"
    r = CliRunner().invoke(app, ["analyze", str(photo)], env={"COLUMNS": "250"})
    assert r.exit_code == 0, r.output
    header = next(line for line in r.stdout.splitlines() if "quality" in line and "reasons" in line)
    columns = [c.strip() for c in header.strip("┃│ ").replace("┃", "│").split("│")]
    assert columns == ["file", "face", "box", "quality", "live", "yaw/pitch/roll", "expression", "brightness",
                       "reasons"]  # one column per registered attribute, in registry order
    mean = FaceWise(profile="default").analyze(photo, what=("brightness",))[0].attributes["brightness"]["mean"]
    assert f"mean={mean:.2f}" in r.stdout


def test_a_registered_attribute_reaches_the_rest_answer_and_its_schema(brightness: None, knn: Path,
                                                                       tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from reliability_helpers import service_app

    photo = knn / "test" / "obama1.jpg"
    app, token = service_app(tmp_path)
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        schemas = client.get("/openapi.json").json()["components"]["schemas"]
        for face in ("DetectedFace", "IdentifiedFace"):
            props = schemas[face]["properties"]
            assert [p for p in props if p in attributes.names()] == list(attributes.names())
            assert props["brightness"]["anyOf"][0]["type"] == "object"  # no declared result: any JSON object
        live = props["live"]["anyOf"][0]
        live = schemas[live["$ref"].rsplit("/", 1)[1]] if "$ref" in live else live
        assert {"score", "is_live"} <= set(live["required"])  # the plug-in's declared result type

        me = client.get("/v1/me").json()
        assert list(me["analysis"]) == ["live", "pose", "expression", "brightness"] and me["analysis"]["brightness"]

        files = {"image": (photo.name, photo.read_bytes(), "image/jpeg")}
        r = client.post("/v1/analyze", files=files, data={"what": "brightness"})
        assert r.status_code == 200, r.text
        lib = FaceWise(profile="default").analyze(photo, what=("brightness",))[0]
        (face,) = r.json()["faces"]
        assert face["brightness"] == lib.attributes["brightness"] and r.json()["modules"] == ["brightness"]
        assert "live" not in face and "pose" not in face
        every = client.post("/v1/analyze", files=files).json()  # analyze: every registered attribute by default
        assert every["modules"][-1] == "brightness" and "brightness" in every["faces"][0]
        assert "pose" in every["modules"] and "map" not in every["faces"][0].get("live", {})
        r = client.post("/v1/analyze", files=files, data={"what": "nope"})
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_value", r.text
