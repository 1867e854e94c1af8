"""The REST contract drives a generated client: ``openapi-python-client`` reads a real server's ``/openapi.json``,
and the client it writes runs enrol -> identify -> verify -> video job -> delete with typed results."""

from __future__ import annotations

import importlib
import io
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from service_helpers import Server, httpx, start_server


def _generator() -> list[str]:
    """The client generator: its own virtual environment (`make install` builds `.venv-openapi`, since the
    generator pins an older Typer than facewise's CLI uses), else one on PATH, else this interpreter's."""
    here = Path(__file__).resolve().parents[1] / ".venv-openapi" / "bin" / "openapi-python-client"
    if here.is_file():
        return [str(here)]
    if shutil.which("openapi-python-client"):
        return ["openapi-python-client"]
    pytest.importorskip("openapi_python_client", reason="run `make install` (it builds .venv-openapi)")
    return [sys.executable, "-m", "openapi_python_client"]

COLLECTION = "rest-client"

# Pinned: a renamed route function or a new route changes a generated client's method names, so it is a
# decision to take here, not an accident.
OPERATION_IDS = sorted([
    "get_me", "list_profiles", "create_key", "list_keys", "revoke_key", "list_audit",
    "list_collections", "create_collection", "get_collection", "update_collection", "delete_collection",
    "create_person", "list_persons", "get_person", "rename_person", "delete_person",
    "enroll_faces", "list_faces", "get_face_thumbnail", "delete_face",
    "identify", "verify", "detect", "analyze",
    "open_live_session", "get_live_session", "send_live_frame", "end_live_session",
    "submit_video", "submit_redaction", "list_jobs", "get_job", "cancel_job", "get_job_thumbnail", "get_job_video",
    "health", "ready", "metrics",
])

GENERATOR_CONFIG = """\
package_name_override: fwclient
post_hooks: []
content_type_overrides:
  image/jpeg: application/octet-stream
  video/mp4: application/octet-stream
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("service-client"), "--rate", "1000", "--burst", "1000")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def spec(server: Server) -> dict[str, Any]:
    return httpx.get(server.url + "/openapi.json").json()


@pytest.fixture(scope="module")
def fwclient(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The client generated from the live schema, imported as ``fwclient``."""
    out = tmp_path_factory.mktemp("generated")
    config = out / "config.yaml"
    config.write_text(GENERATOR_CONFIG)
    res = subprocess.run([*_generator(), "generate", "--url",
                          server.url + "/openapi.json", "--meta", "none", "--config", str(config),
                          "--output-path", str(out / "fwclient")], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    # every operation generated, none dropped for a schema the generator could not read
    assert "WARNING" not in res.stdout + res.stderr, res.stdout[-3000:] + res.stderr[-3000:]
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module("fwclient")
    finally:
        sys.path.remove(str(out))
        for name in [m for m in sys.modules if m == "fwclient" or m.startswith("fwclient.")]:
            del sys.modules[name]


def _api(pkg: Any, tag: str, operation: str) -> Any:
    return importlib.import_module(f"fwclient.api.{tag}.{operation}")


# -- the schema ----------------------------------------------------------------------------------------
def test_operation_ids_are_short_and_pinned(spec: dict[str, Any]) -> None:
    ids = sorted(op["operationId"] for item in spec["paths"].values() for op in item.values())
    assert ids == OPERATION_IDS


def test_every_route_declares_its_response_and_errors(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    assert set(schemas["ErrorResponse"]["properties"]) == {"error"}
    assert {"code", "message"} <= set(schemas["ErrorDetail"]["required"])
    for path, item in spec["paths"].items():
        for method, op in item.items():
            where = f"{method.upper()} {path}"
            ok = [s for s in op["responses"] if s.startswith("2")]
            assert len(ok) == 1, where
            content = op["responses"][ok[0]].get("content", {})
            if ok[0] != "204" and path != "/metrics":
                (media, body), = content.items()
                schema = body["schema"]
                typed = "$ref" in schema or "$ref" in schema.get("items", {}) or schema.get("format") == "binary"
                assert typed, f"{where}: untyped {media} response {schema}"
            if path.startswith("/v1/"):
                takes_input = bool(op.get("parameters")) or "requestBody" in op
                assert ("422" in op["responses"]) == takes_input, where
                for status in [s for s in op["responses"] if s.startswith("4")]:
                    ref = op["responses"][status]["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/ErrorResponse"), where
                assert {"401", "403", "429"} <= set(op["responses"]), where
                assert "Retry-After" in op["responses"]["429"]["headers"], where
            if "{collection}" in path or "{job_id}" in path or "{key_id}" in path:
                assert "404" in op["responses"], where
            if "multipart/form-data" in op.get("requestBody", {}).get("content", {}):
                assert {"413", "415"} <= set(op["responses"]), where
    text = str(spec)
    assert "contentMediaType" not in text
    enroll = schemas["Body_enroll_faces"]["properties"]["files"]
    assert enroll == {**enroll, "type": "array", "items": {"type": "string", "format": "binary"}}
    assert schemas["Body_identify"]["properties"]["image"]["format"] == "binary"


def test_answers_match_the_declared_statuses_and_schemas(tmp_path: Path) -> None:
    """Generated requests to every operation (in process, an admin key): each answer's status is one the route
    declares and its body matches the declared schema (an undeclared 400 or a missing field fails)."""
    schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is in the fuzz extra")
    from hypothesis import HealthCheck, given, settings
    from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

    from reliability_helpers import service_app

    app, token = service_app(tmp_path)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app).exclude(path="/readyz")  # 503 until warm
    failures: dict[str, str] = {}
    operations = 0
    for result in schema.get_all_operations():
        op = result.ok()
        operations += 1

        @given(case=op.as_strategy())
        @settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def run(case: Any) -> None:
            response = case.call(headers={"Authorization": f"Bearer {token}"})
            case.validate_response(response, checks=(status_code_conformance, response_schema_conformance))

        try:
            run()
        except Exception as exc:  # collect every operation's failure, then report them all
            failures[op.label] = " ".join(str(exc).split())[:400]
    assert operations == len(OPERATION_IDS) - 1
    assert not failures, failures


# -- the generated client, end to end ------------------------------------------------------------------
def test_generated_client_round_trip(server: Server, fwclient: Any, knn: Path) -> None:
    from fwclient import AuthenticatedClient
    from fwclient.models import (
        BodyAnalyze,
        BodyEnrollFaces,
        BodyIdentify,
        BodySubmitVideo,
        BodyVerify,
        CollectionCreate,
        CollectionDetail,
        DetectResponse,
        EnrollResponse,
        ErrorResponse,
        IdentifyResponse,
        Job,
        Person,
        PersonCreate,
        PersonDeleted,
        VerifyResponse,
    )
    from fwclient.types import File

    def photo(path: Path) -> File:
        return File(payload=io.BytesIO(path.read_bytes()), file_name=path.name, mime_type="image/jpeg")

    train, test, examples = knn / "train", knn / "test", knn.parent
    with AuthenticatedClient(base_url=server.url, token=server.key, timeout=httpx.Timeout(120.0)) as client:
        created = _api(fwclient, "collections", "create_collection").sync(
            client=client, body=CollectionCreate(name=COLLECTION))
        assert isinstance(created, CollectionDetail), created
        assert created.name == COLLECTION and created.persons == 0 and created.decision.threshold is not None

        people: dict[str, Person] = {}
        for name, files in (("obama", sorted((train / "obama").iterdir())),
                            ("biden", sorted((train / "biden").iterdir())),
                            ("lin-manuel", [examples / "lin-manuel-miranda.png"])):
            person = _api(fwclient, "persons", "create_person").sync(collection=COLLECTION, client=client,
                                                                     body=PersonCreate(name=name))
            assert isinstance(person, Person) and person.name == name and person.samples == 0, person
            enrolled = _api(fwclient, "faces", "enroll_faces").sync(
                collection=COLLECTION, person_id=person.id, client=client,
                body=BodyEnrollFaces(files=[photo(f) for f in files]))
            assert isinstance(enrolled, EnrollResponse), enrolled
            assert enrolled.added == len(files) and [r.status for r in enrolled.results] == ["added"] * len(files)
            assert enrolled.person.samples == len(files)
            people[name] = enrolled.person

        ident = _api(fwclient, "recognition", "identify").sync(
            collection=COLLECTION, client=client, body=BodyIdentify(image=photo(test / "obama_and_biden.jpg")))
        assert isinstance(ident, IdentifyResponse), ident
        assert (ident.image.width, ident.image.height) == (2000, 1428)
        assert {f.person for f in ident.faces} >= {"obama", "biden"}
        for face in ident.faces:
            known = face.person != "unknown"
            assert len(face.box) == 4 and (face.score >= ident.threshold) == known == (face.person_id is not None)

        same = _api(fwclient, "recognition", "verify").sync(
            collection=COLLECTION, client=client, body=BodyVerify(image=photo(test / "obama1.jpg"),
                                                                 person_id=people["obama"].id))
        assert isinstance(same, VerifyResponse), same
        assert same.same is True and same.score >= same.threshold and same.person.name == "obama"
        other = _api(fwclient, "recognition", "verify").sync(
            collection=COLLECTION, client=client, body=BodyVerify(image=photo(test / "obama1.jpg"),
                                                                 other=photo(train / "biden" / "biden.jpg")))
        assert isinstance(other, VerifyResponse) and other.same is False and len(other.faces) == 2, other

        analysed = _api(fwclient, "recognition", "analyze").sync(
            client=client, body=BodyAnalyze(image=photo(test / "obama1.jpg")))
        assert isinstance(analysed, DetectResponse) and len(analysed.faces) == 1, analysed
        face = analysed.faces[0]
        assert face.pose.source in ("fsanet", "landmarks") and "pose" in analysed.modules
        if "live" in analysed.modules:
            assert isinstance(face.live.is_live, bool) and 0.0 <= face.live.score <= 1.0
        if "expression" in analysed.modules:
            assert face.expression.label in face.expression.probs.additional_properties

        clip = examples / "short_hamilton_clip.mp4"
        job = _api(fwclient, "video", "submit_video").sync(
            collection=COLLECTION, client=client,
            body=BodySubmitVideo(video=File(payload=io.BytesIO(clip.read_bytes()), file_name=clip.name,
                                            mime_type="video/mp4"), fps=2.0))
        assert isinstance(job, Job) and job.state in ("queued", "running"), job
        deadline = time.monotonic() + 120
        while job.state in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(0.5)
            job = _api(fwclient, "video", "get_job").sync(job_id=job.id, client=client)
            assert isinstance(job, Job), job
        assert job.state == "done" and job.progress == 1.0, job
        assert "lin-manuel" in {t.person for t in job.result.tracks}, job.result.tracks
        named = next(t for t in job.result.tracks if t.person == "lin-manuel")
        assert named.person_id == people["lin-manuel"].id and named.last_ms >= named.first_ms
        thumb = _api(fwclient, "video", "get_job_thumbnail").sync_detailed(
            job_id=job.id, index=named.thumbnail, client=client)
        assert thumb.status_code == 200 and thumb.content[:2] == b"\xff\xd8"  # a JPEG

        gone = _api(fwclient, "persons", "delete_person").sync(collection=COLLECTION, person_id=people["obama"].id,
                                                               client=client)
        assert isinstance(gone, PersonDeleted) and gone.deleted.name == "obama" and gone.faces_deleted == 2, gone
        missing = _api(fwclient, "persons", "get_person").sync(collection=COLLECTION, person_id=people["obama"].id,
                                                               client=client)
        assert isinstance(missing, ErrorResponse) and missing.error.code == "not_found", missing
        after = _api(fwclient, "recognition", "identify").sync(
            collection=COLLECTION, client=client, body=BodyIdentify(image=photo(test / "obama1.jpg")))
        assert [f.person for f in after.faces] == ["unknown"]

        dropped = _api(fwclient, "collections", "delete_collection").sync_detailed(collection=COLLECTION,
                                                                                  client=client)
        assert dropped.status_code == 204
        absent = _api(fwclient, "collections", "get_collection").sync(collection=COLLECTION, client=client)
        assert isinstance(absent, ErrorResponse) and absent.error.code == "not_found", absent

    with AuthenticatedClient(base_url=server.url, token="fw_not_a_key") as stranger:
        refused = _api(fwclient, "service", "get_me").sync(client=stranger)
        assert isinstance(refused, ErrorResponse) and refused.error.code == "unauthorized", refused
