"""Video jobs: upload a video, poll the job, read its timeline and thumbnails."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, Response, UploadFile

from facewise.service.auth import Principal
from facewise.service.deps import Ctx, Recognizer, ServiceContext
from facewise.service.errors import ApiError
from facewise.service.jobs import Job, new_job
from facewise.service.uploads import CHUNK, safe_name, sniff_video

router = APIRouter(prefix="/v1")


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


def _visible(job: Job, principal: Principal) -> Job:
    if not principal.can_access(job.collection):
        raise ApiError(404, "not_found", f"job {job.id!r} does not exist")
    return job


@router.post("/collections/{collection}/videos", tags=["video"], status_code=202,
             summary="Upload a video; a job identifies the faces in it (poll GET /v1/jobs/{id})")
async def submit_video(collection: str, request: Request, ctx: Ctx, principal: Recognizer,
                       video: Annotated[UploadFile, File(description="MP4/MOV, WebM/MKV, AVI or MPEG-TS")],
                       fps: Annotated[float, Form(gt=0, le=30, description="frames processed per second")] = 5.0,
                       ) -> dict[str, Any]:
    stamp = ctx.engines.face_wise(collection).info.created_at  # 404 before the upload is stored
    job = new_job(collection, principal.key_id, safe_name(video.filename, "video"), fps, stamp)
    ctx.config.video_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = ctx.config.video_dir / f"{job.id}.video"
    await _save_video(ctx, video, path)
    ctx.jobs.submit(job, path)
    return job.to_dict(with_result=False)


@router.get("/jobs", tags=["video"], summary="Recent video jobs of the collections this key may see")
def list_jobs(ctx: Ctx, principal: Recognizer) -> list[dict[str, Any]]:
    return [j.to_dict(with_result=False) for j in ctx.jobs.jobs() if principal.can_access(j.collection)]


@router.get("/jobs/{job_id}", tags=["video"], summary="A job's state, progress and, when done, its timeline")
def get_job(job_id: str, ctx: Ctx, principal: Recognizer) -> dict[str, Any]:
    return _visible(ctx.jobs.get(job_id), principal).to_dict()


@router.get("/jobs/{job_id}/thumbnails/{index}", tags=["video"], summary="A timeline thumbnail (JPEG)",
            response_class=Response, responses={200: {"content": {"image/jpeg": {}}}})
def job_thumbnail(job_id: str, index: int, ctx: Ctx, principal: Recognizer) -> Response:
    job = _visible(ctx.jobs.get(job_id), principal)
    if not 0 <= index < len(job.thumbnails) or not job.thumbnails[index]:  # b"": erased
        raise ApiError(404, "not_found", f"job {job_id} has no thumbnail {index}")
    return Response(job.thumbnails[index], media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})


@router.get("/jobs/{job_id}/video", tags=["video"], summary="The annotated video (H.264 MP4) of a finished job",
            response_class=Response, responses={200: {"content": {"video/mp4": {}}}})
def job_video(job_id: str, ctx: Ctx, principal: Recognizer) -> Response:
    job = _visible(ctx.jobs.get(job_id), principal)
    if job.video is None:
        raise ApiError(404, "not_found", f"job {job_id} has no annotated video ({job.state})")
    return Response(job.video, media_type="video/mp4", headers={"Cache-Control": "private, max-age=3600"})


@router.delete("/jobs/{job_id}", tags=["video"], summary="Cancel a queued or running job")
def cancel_job(job_id: str, ctx: Ctx, principal: Recognizer) -> dict[str, Any]:
    _visible(ctx.jobs.get(job_id), principal)
    return ctx.jobs.cancel(job_id).to_dict(with_result=False)
