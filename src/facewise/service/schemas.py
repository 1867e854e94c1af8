"""The REST contract: response models, the error model, the error statuses of each route, operation ids and the
OpenAPI post-processing that lets client generators read it (file fields as ``format: binary``).

The models describe the JSON the routes already return (the web page and the tests rely on it). What a library
record describes (a person, a face, an identification, a collection, a video track...) is not described again:
its model is made from the record (:func:`facewise.service.records.from_record`) and a route returns the record.
A face carries one field per registered face attribute (:mod:`facewise.models.attributes`, in registry order),
typed by the plug-in's ``result``. Every model allows extra fields, and routes serialise with ``exclude_unset``
(:class:`ContractRoute`), so a field a route does not send is not added as ``null`` and a field added later is
not dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import FastAPI, Request, Response, params
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import Field as Field
from pydantic import GetJsonSchemaHandler, TypeAdapter
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from facewise import types
from facewise.gallery.store import CollectionInfo
from facewise.models import attributes
from facewise.service.auth import ApiKey
from facewise.service.gate import route_meta, with_json_parsed
from facewise.service.records import Model, RecordModel, from_record
from facewise.video.records import TrackSummary


# -- errors -------------------------------------------------------------------------------------------
class FieldError(Model):
    loc: list[str]
    message: str


class RefusedValue(Model):
    what: str = Field(..., description="the field or setting refused")
    value: Any = Field(None, description="the value given")
    valid: str | None = Field(None, description="what would be accepted (a range or the choices)")


class ErrorDetail(Model):
    code: str = Field(..., examples=["not_found"], description="stable, machine-readable")
    message: str = Field(..., description="for people; names the problem")
    reasons: list[str] | None = Field(None, description="quality errors: why the face was refused")
    details: list[FieldError] | RefusedValue | None = Field(
        None, description="invalid_request: every invalid field; invalid_value and other refusals of one value: "
                          "what was refused, the value given and what is valid")
    results: list[dict[str, Any]] | None = Field(None, description="nothing_enrolled: each file's outcome and reason")


class ErrorResponse(Model):
    error: ErrorDetail


ERROR_TEXT = {400: "Bad request", 401: "No API key, or an unknown or revoked one",
              403: "The key lacks the scope or the collection", 404: "Not found (collection, person, face, job)",
              409: "Conflict: it exists already", 413: "Too large (bytes, pixels or files)",
              415: "Not an accepted image or video type (read from the content)",
              422: "Invalid request, or an image without a usable face", 429: "Rate limit reached (see Retry-After)",
              503: "Not ready, or a model is missing"}


RETRY_AFTER = {"Retry-After": {"description": "seconds until the key's bucket has a token again",
                               "schema": {"type": "integer"}}}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for the error statuses a route can answer, each with the error model."""
    out: dict[int | str, dict[str, Any]] = {s: {"model": ErrorResponse, "description": ERROR_TEXT[s]}
                                            for s in statuses}
    if 429 in out:
        out[429]["headers"] = RETRY_AFTER
    return out


def binary(media_type: str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` of a route answering bytes (a JPEG, an MP4): a binary string, as generators expect."""
    return {200: {"description": media_type, "content": {media_type: {"schema": {"type": "string",
                                                                                  "format": "binary"}}}}}


AUTH = (401, 403, 429)  # every /v1 route: a key, its scope and collections, its rate


def auth_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The errors of a /v1 route: :data:`AUTH`, 422 (dropped from the document for a route that takes no
    parameters and no body, see :func:`contract_openapi`) and ``statuses``."""
    return errors(*sorted({*AUTH, 422, *statuses}))


class ContractRoute(APIRoute):
    """Routes serialise only the fields they set (no ``null`` for a key the route leaves out); a JSON body is
    parsed in a worker thread with a depth limit (:func:`facewise.service.gate.with_json_parsed`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["response_model_exclude_unset"] = True
        super().__init__(*args, **kwargs)
        self.meta = route_meta(self)  # its body budget and key check, declared (or a route that cannot be built)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None or isinstance(self.body_field.field_info, params.Form):
            return handler

        async def parse_then_handle(request: Request) -> Response:
            return await handler(await with_json_parsed(request))

        return parse_then_handle


def operation_id(route: APIRoute) -> str:
    """Short, stable operation ids: the route's name (its function's, or ``name=``)."""
    return route.name


# -- service --------------------------------------------------------------------------------------------
class Health(Model):
    status: str = Field(..., examples=["ok"])


class Readiness(Model):
    status: str = Field(..., examples=["ready"], description="ready | not ready")
    checks: dict[str, bool]


class KeyRef(Model):
    key_id: str
    name: str
    scopes: list[str]
    collections: list[str]


class Limits(Model):
    max_image_bytes: int
    max_pixels: int
    max_files: int
    max_video_bytes: int


class Me(Model):
    key: KeyRef
    version: str
    default_profile: str
    limits: Limits
    analysis: dict[str, bool] = Field(..., description="each registered face attribute (live, pose, expression "
                                      "as shipped): does it run here?")
    video: bool


class ProfileInfo(Model):
    name: str
    description: str
    available: bool
    commercial_use: bool | str
    default: bool


# -- keys and audit -------------------------------------------------------------------------------------
class CreatedKey(Model):
    key: ApiKey
    token: str = Field(..., description="shown once; never stored")


class AuditEntry(Model):
    id: int
    ts: str
    actor: str
    action: str
    collection: str | None
    target: str | None
    detail: Any
    remote: str | None


# -- collections, persons, faces ------------------------------------------------------------------------
@from_record(CollectionInfo, exclude=("settings",))
class Collection(RecordModel):
    """A collection of people."""


class Decision(Model):
    threshold: float | None = Field(..., description="the identification threshold in force")
    source: str | None = Field(..., description="why: explicit, far=… or fpir=… at N persons (default: FPIR 0.01)")
    far: float | None = Field(None, description="the threshold's estimated false-accept rate per comparison")
    fpir: float | None = Field(None, description="the threshold's estimated FPIR: the chance that a stranger gets "
                               "a name from a search of the collection's persons")
    persons: int | None = Field(None, description="persons an identification searches")
    explanation: str | None = None
    verify: dict[str, Any] | None = Field(None, description="the one-to-one decision: threshold, source, far")
    error: ErrorDetail | None = Field(None, description="the stored setting is invalid (PATCH sets a valid one)")


class CollectionDetail(Collection):
    decision: Decision
    index: dict[str, Any] | None = Field(None, description="the search in force and why: index (exact, hnsw or "
                                         "store), setting (auto by default), reason")


@from_record(types.Person, rename={"n_samples": "samples"})
class Person(RecordModel):
    """A person of a collection."""

    samples: int = Field(..., description="enrolled faces")


class PersonPage(Model):
    items: list[Person]
    offset: int
    limit: int
    total: int


BOX = "x1, y1, x2, y2 in the image's pixels"


@from_record(types.Sample)
class FaceSample(RecordModel):
    """An enrolled face."""

    box: list[float] = Field(..., description=BOX)


class PersonDetail(Person):
    faces: list[FaceSample]


class PersonDeleted(Model):
    deleted: Person
    faces_deleted: int


@from_record(types.EnrollResult, exclude=("face",), extra=("quality_reasons",))
class EnrollItem(RecordModel):
    """One uploaded file's outcome."""

    source: str = Field(..., description="the uploaded file's name")
    status: str = Field(..., examples=["added"], description="added | duplicate | rejected")
    code: str | None = Field(..., description="why a photo was rejected, as an error code (bad_image, no_face, "
                             "multiple_faces, invalid_name, or rejected: the quality or liveness gate)")
    quality_reasons: list[str]


class EnrollResponse(Model):
    person: Person
    added: int
    results: list[EnrollItem]


# -- recognition ----------------------------------------------------------------------------------------
class FaceRecord(RecordModel):
    """A face: its registered attributes (:mod:`facewise.models.attributes`, in registry order) are fields of the
    schema, each typed by its plug-in's ``result`` and present when the route analysed (analyze, and enrolment
    or verification with liveness)."""

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        schema = handler(core_schema)
        target = handler.resolve_ref_schema(schema)
        props = target.setdefault("properties", {})
        for name in attributes.names():
            plugin = attributes.attribute_class(name)
            value = handler(TypeAdapter(plugin.result).core_schema)
            props[name] = {"anyOf": [value, {"type": "null"}], "description": f"the {name} attribute, when analysed"}
        return schema


@from_record(types.Face, exclude=("embedding", "attributes"), extra=("quality_reasons",))
class DetectedFace(FaceRecord):
    """A face found in an image."""

    box: list[float] = Field(..., description=BOX)
    quality_reasons: list[str]


@from_record(types.Candidate, rename={"name": "person"})
class Candidate(RecordModel):
    """A person the face resembles."""


@from_record(types.Identification, flatten="face")
class IdentifiedFace(DetectedFace):
    """A face and who it is."""

    person: str = Field(..., description="a name, or unknown")
    far: float | None = Field(..., description="estimated false-accept rate of the score, per comparison")
    fpir: float | None = Field(..., description="estimated chance that a stranger scores this high against "
                               "someone among the persons searched (false-positive identification rate)")
    searched: int = Field(..., description="persons searched")


class ImageSize(Model):
    width: int
    height: int


class IdentifyResponse(Model):
    image: ImageSize
    profile: str
    threshold: float
    threshold_source: str
    faces: list[IdentifiedFace]


class ComparedFace(Model):
    index: int
    box: list[float]


@from_record(types.Verification, extra=("person",))
class VerifyResponse(RecordModel):
    """Whether two faces are the same person."""

    reason: str | None = Field(..., description="why not same was forced (e.g. the probe is not live)")
    faces: list[ComparedFace] = Field(..., description="the probe's face, then the other image's")
    person: Person | None = Field(None, description="verify against person_id: that person")


class DetectResponse(Model):
    image: ImageSize
    profile: str
    faces: list[DetectedFace]
    modules: list[str] | None = Field(None, description="analyze: the face attributes that ran (registry names)")


# -- live sessions --------------------------------------------------------------------------------------
class ChallengeStep(Model):
    step: str
    t: float = Field(..., description="seconds from the session's first frame")


class ChallengeState(Model):
    steps: list[str] = Field(..., description="the motions asked for, in order")
    current: str | None = Field(None, description="the step asked for now (none once finished)")
    prompt: str | None = Field(None, description="what to tell the person for the current step")
    done: list[ChallengeStep]
    finished: bool
    passed: bool | None = Field(None, description="once finished: every step seen in time and the passive "
                                "score passed")
    reason: str = Field("", description="once finished and failed: why")
    passive_live: float | None = Field(None, description="mean P(live) of the tracked face so far")
    passive_threshold: float | None = None
    time_limit_s: float


class LiveSessionInfo(Model):
    session_id: str
    collection: str
    frames: int
    age_s: float
    max_seconds: float
    idle_seconds: float
    max_frames: int
    challenge: ChallengeState | None = None


class LiveFrame(Model):
    session_id: str
    frame: int = Field(..., description="this frame's number in the session")
    t: float = Field(..., description="seconds since the session opened (the server's clock)")
    image: ImageSize
    profile: str
    threshold: float
    threshold_source: str
    tracked: int | None = Field(None, description="index in `faces` of the tracked face (it carries `live`)")
    faces: list[IdentifiedFace]
    challenge: ChallengeState | None = None
    frames_left: int


# -- video jobs -----------------------------------------------------------------------------------------
@from_record(TrackSummary, exclude=("best_frame",), extra=("thumbnail", "erased"))
class VideoTrack(RecordModel):
    """One line of a video's timeline (the job keeps the track's best frame as a thumbnail)."""

    person: str = Field(..., description="a name, or unknown")
    score: float | None = Field(..., description="null once the person was erased")
    thumbnail: int | None = Field(None, description="index for GET /v1/jobs/{job_id}/thumbnails/{index}")
    erased: bool | None = Field(None, description="true: the person was erased; the track is de-identified")


class VideoEvent(Model):
    event: str
    track: int
    person: str
    score: float | None
    t_ms: float


class Timeline(Model):
    """The result of a finished job (fields beyond tracks and events depend on the video runner)."""

    source: str | None = None
    profile: str | None = None
    collection: str | None = None
    complete: bool | None = None
    error: str | None = None
    stats: dict[str, Any] | None = None
    tracks: list[VideoTrack] = []  # noqa: RUF012 - pydantic copies a default
    events: list[VideoEvent] = []  # noqa: RUF012 - pydantic copies a default


class RedactedTrack(Model):
    track: int
    action: str = Field(..., description="blurred | spared | blurred, then spared | blurred until checked, then shown")
    reason: str
    person: str = Field(..., description="a name, or unknown")
    person_id: int | None
    score: float | None
    first_frame: int
    last_frame: int
    first_ms: float
    last_ms: float
    frames_detected: int
    frames_hidden: int
    frames_shown: int
    predicted_frames: list[list[int]] = Field(..., description="[first, last] frame ranges masked by prediction")
    lookahead_frames: list[list[int]] = Field(..., description="frame ranges masked before the first detection")
    erased: bool | None = Field(None, description="true: the person was erased; the track is de-identified")


class Redaction(Model):
    """The report of a finished redaction job (its video: GET /v1/jobs/{job_id}/video)."""

    format: str = Field(..., description="facewise-redaction")
    kind: str
    source: str | None = None
    options: dict[str, Any]
    profile: str | None = None
    complete: bool | None = None
    error: str | None = None
    stats: dict[str, Any] | None = None
    audio: str | None = None
    tracks: list[RedactedTrack] = []  # noqa: RUF012 - pydantic copies a default


class JobError(Model):
    code: str
    message: str


class Job(Model):
    id: str
    collection: str
    filename: str
    state: str = Field(..., description="queued | running | done | failed | cancelled")
    progress: float
    fps: float
    created_at: str
    started_at: str | None
    finished_at: str | None
    error: JobError | None
    thumbnails: int
    annotated_video: bool
    kind: str = Field("video", description="video (identify) | redact")
    result: Redaction | Timeline | None = Field(None, description="GET /v1/jobs/{job_id} of a done job")


# -- the schema document ----------------------------------------------------------------------------------
def _binary_files(node: Any) -> None:
    """OpenAPI 3.1 file fields (``contentMediaType``) as ``type: string, format: binary``, which generators read."""
    if isinstance(node, dict):
        if node.get("type") == "string" and "contentMediaType" in node:
            del node["contentMediaType"]
            node["format"] = "binary"
        for value in node.values():
            _binary_files(value)
    elif isinstance(node, list):
        for value in node:
            _binary_files(value)


def _no_input_no_422(schema: dict[str, Any]) -> None:
    """A route with no parameters and no body cannot answer 422: leave it out of that route's errors."""
    for item in schema.get("paths", {}).values():
        for op in item.values():
            if not op.get("parameters") and "requestBody" not in op:
                op.get("responses", {}).pop("422", None)


def contract_openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """``app.openapi``: FastAPI's document, file fields rewritten, built once."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, openapi_version=app.openapi_version,
                                 description=app.description, routes=app.routes, tags=app.openapi_tags,
                                 servers=app.servers)
            _binary_files(schema)
            _no_input_no_422(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    return openapi
