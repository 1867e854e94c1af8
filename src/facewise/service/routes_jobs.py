"""Video jobs: upload a video, poll the job, read its timeline and thumbnails."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, Response, UploadFile
from fastapi.responses import StreamingResponse

from facewise.service.auth import Principal
from facewise.service.deps import Ctx, Recognizer, ServiceContext
from facewise.service.errors import ApiError
from facewise.service.gate import body_budget
from facewise.service.jobs import Job, QueueFullError, new_job
from facewise.service.schemas import ContractRoute, auth_errors, binary
from facewise.service.schemas import Job as JobModel
from facewise.service.uploads import CHUNK, safe_name, sniff_video

router = APIRouter(prefix="/v1", route_class=ContractRoute)


async def _save_video(ctx: ServiceContext, upload: UploadFile, dest: Path) -> None:
    """Stream the upload to ``dest`` under the size limit; the type is sniffed from the first bytes."""
    limit = ctx.config.limits.max_video_bytes
    name = safe_name(upload.filename, "video")
    head = await upload.read(64 * 1024)
    sniff_video(head, name)
    total = len(head)
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(head)
            while chunk := await upload.read(CHUNK):
                total += len(chunk)
                if total > limit:
                    raise ApiError(413, "payload_too_large", f"{name}: video exceeds the {limit}-byte limit")
                f.write(chunk)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise


def _probe(path: Path, name: str, max_pixels: int, max_seconds: float) -> None:
    """Refuse a video whose frames are too large or which is too long (413), from its header; a video that
    cannot be opened at all is left to its job, which fails with the reason."""
    from facewise.video import DecodeOptions, VideoError, VideoLimitError, VideoReader

    try:
        with VideoReader(path, DecodeOptions(max_pixels=max_pixels, max_duration_s=max_seconds)):
            pass
    except VideoLimitError as exc:
        path.unlink(missing_ok=True)
        raise ApiError(413, exc.code, str(exc).replace(str(path), name)) from None
    except VideoError:
        pass


def _queue_full(exc: QueueFullError) -> ApiError:
    return ApiError(429, "queue_full", str(exc), headers={"Retry-After": "30"})


def _visible(job: Job, principal: Principal) -> Job:
    if not principal.can_access(job.collection):
        raise ApiError(404, "not_found", f"job {job.id!r} does not exist")
    return job


@router.post("/collections/{collection}/videos", tags=["video"], status_code=202,
             summary="Upload a video; a job identifies the faces in it (poll GET /v1/jobs/{id})",
             openapi_extra=body_budget("video"),
             response_model=JobModel, responses=auth_errors(404, 413, 415, 503))
async def submit_video(collection: str, request: Request, ctx: Ctx, principal: Recognizer,
                       video: Annotated[UploadFile, File(description="MP4/MOV, WebM/MKV, AVI or MPEG-TS")],
                       fps: Annotated[float, Form(gt=0, le=30, description="frames processed per second "
                                                  "(at least 0.01)")] = 5.0,
                       ) -> dict[str, Any]:
    from facewise.video import DecodeOptions

    DecodeOptions(fps=fps)  # 422 invalid_value below the sampling floor, before the upload is stored
    return await _submit(ctx, principal, collection, video, fps)


async def _submit(ctx: ServiceContext, principal: Principal, collection: str, video: UploadFile, fps: float,
                  kind: str = "video", options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Store the upload (after the checks that need no upload) and queue its job."""
    stamp = ctx.engines.face_wise(collection).info.created_at  # 404 before the upload is stored
    try:
        ctx.jobs.check_room(principal.key_id)  # 429 before the upload is stored
    except QueueFullError as exc:
        raise _queue_full(exc) from None
    job = new_job(collection, principal.key_id, safe_name(video.filename, "video"), fps, stamp, kind, options)
    ctx.config.video_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = ctx.config.video_dir / f"{job.id}.video"
    await _save_video(ctx, video, path)
    limits = ctx.config.limits
    await ctx.engines.run(_probe, path, job.filename, limits.max_video_pixels, limits.max_video_seconds)
    try:
        ctx.jobs.submit(job, path)
    except QueueFullError as exc:
        raise _queue_full(exc) from None
    return job.to_dict(with_result=False)


@router.post("/collections/{collection}/redactions", tags=["video"], status_code=202,
             summary="Upload a video; a job hides its faces (poll GET /v1/jobs/{id}, download GET /v1/jobs/{id}/video)",
             openapi_extra=body_budget("video"),
             response_model=JobModel, responses=auth_errors(404, 413, 415, 503))
async def submit_redaction(
        collection: str, request: Request, ctx: Ctx, principal: Recognizer,
        video: Annotated[UploadFile, File(description="MP4/MOV, WebM/MKV, AVI or MPEG-TS")],
        mode: Annotated[str, Form(description="all | unknown (enrolled people stay visible) | only (the names)")]
        = "all",
        names: Annotated[list[str] | None, Form(description="mode only: the people to hide (repeat the field)")]
        = None,
        style: Annotated[str, Form(description="gaussian | pixelate | box")] = "gaussian",
        strength: Annotated[float, Form(ge=0.1, le=10)] = 1.0,
        shape: Annotated[str, Form(description="ellipse | box")] = "ellipse",
        margin: Annotated[float, Form(ge=0, le=2)] = 0.3,
        lookahead: Annotated[int, Form(ge=0, le=120)] = 10,
        duration: Annotated[float | None, Form(gt=0, description="redact only the first seconds")] = None,
) -> dict[str, Any]:
    from facewise.service.redact_jobs import redact_options

    options: dict[str, Any] = {"mode": mode, "names": list(names or []), "style": style, "strength": strength,
                               "shape": shape, "margin": margin, "lookahead": lookahead, "duration": duration}
    redact_options(options)  # 422 for a bad option, before the upload is stored
    if names:
        fw = ctx.engines.face_wise(collection)
        for name in names:
            fw.person(name)  # 404 for a name the collection does not hold
    return await _submit(ctx, principal, collection, video, 0.0, "redact", options)


@router.get("/jobs", tags=["video"], summary="Recent video jobs of the collections this key may see",
            response_model=list[JobModel], responses=auth_errors())
def list_jobs(ctx: Ctx, principal: Recognizer) -> list[dict[str, Any]]:
    return [j.to_dict(with_result=False) for j in ctx.jobs.jobs() if principal.can_access(j.collection)]


@router.get("/jobs/{job_id}", tags=["video"], summary="A job's state, progress and, when done, its timeline",
            response_model=JobModel, responses=auth_errors(404))
def get_job(job_id: str, ctx: Ctx, principal: Recognizer) -> dict[str, Any]:
    return _visible(ctx.jobs.get(job_id), principal).to_dict()


@router.get("/jobs/{job_id}/thumbnails/{index}", tags=["video"], summary="A timeline thumbnail (JPEG)",
            name="get_job_thumbnail", response_class=Response,
            responses={**binary("image/jpeg"), **auth_errors(404)})
def job_thumbnail(job_id: str, index: int, ctx: Ctx, principal: Recognizer) -> Response:
    job = _visible(ctx.jobs.get(job_id), principal)
    if not 0 <= index < len(job.thumbnails) or not job.thumbnails[index]:  # b"": erased
        raise ApiError(404, "not_found", f"job {job_id} has no thumbnail {index}")
    return Response(job.thumbnails[index], media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})


@router.get("/jobs/{job_id}/video", tags=["video"], summary="The annotated video (H.264 MP4) of a finished job",
            name="get_job_video", response_class=Response,
            responses={**binary("video/mp4"), **auth_errors(404)})
def job_video(job_id: str, ctx: Ctx, principal: Recognizer) -> Response:
    job = _visible(ctx.jobs.get(job_id), principal)
    video = job.video
    try:
        if video is None:
            raise FileNotFoundError
        f = video.open("rb")  # opened now: an erasure meanwhile unlinks the file, this read still ends
    except FileNotFoundError:
        raise ApiError(404, "not_found", f"job {job_id} has no annotated video ({job.state})") from None
    size = os.fstat(f.fileno()).st_size

    def chunks() -> Iterator[bytes]:
        with f:
            while chunk := f.read(CHUNK):
                yield chunk

    return StreamingResponse(chunks(), media_type="video/mp4",
                             headers={"Cache-Control": "private, max-age=3600", "Content-Length": str(size)})


@router.delete("/jobs/{job_id}", tags=["video"], summary="Cancel a queued or running job",
               response_model=JobModel, responses=auth_errors(404))
def cancel_job(job_id: str, ctx: Ctx, principal: Recognizer) -> dict[str, Any]:
    _visible(ctx.jobs.get(job_id), principal)
    return ctx.jobs.cancel(job_id).to_dict(with_result=False)
