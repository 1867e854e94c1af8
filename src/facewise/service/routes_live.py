"""Live camera sessions: open one (optionally with an active challenge), send frames, read it, end it."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, UploadFile
from pydantic import BaseModel, ConfigDict, Field

from facewise.core.challenge import STEPS
from facewise.service.deps import BusyRecognizer, Ctx, Recognizer
from facewise.service.errors import ApiError
from facewise.service.gate import body_budget
from facewise.service.live import new_challenge, process_frame
from facewise.service.routes_recognize import _one_image
from facewise.service.schemas import ContractRoute, LiveFrame, LiveSessionInfo, auth_errors

router = APIRouter(prefix="/v1", route_class=ContractRoute)

Step = Literal["left", "right", "up", "closer"]


class LiveStart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    challenge: bool = Field(False, description="ask for head motions (active liveness) on the tracked face")
    steps: list[Step] | None = Field(None, min_length=1, max_length=len(STEPS),
                                     description="the motions, in order; default: random (always with a turn)")
    n_steps: int = Field(2, ge=1, le=len(STEPS), description="how many random steps when `steps` is not given")
    time_limit_s: float = Field(10.0, ge=1.0, le=120.0, description="seconds to complete every step")


@router.post("/collections/{collection}/live", tags=["recognition"], status_code=201,
             summary="Open a live camera session (the web page's webcam view)",
             description="Frames sent to the session are named like identify; the tracked face gets its liveness "
                         "with reasons, and with `challenge` the session asks for random head motions checked "
                         "on the server's clock. Sessions per key and overall are limited (429).",
             response_model=LiveSessionInfo, responses=auth_errors(404, 503))
async def open_live_session(collection: str, ctx: Ctx, principal: Recognizer,
                            body: LiveStart | None = None) -> dict[str, Any]:
    body = body or LiveStart.model_validate({})
    coll = ctx.engines.collection(collection)  # 404 for a missing collection, before a session exists
    challenge = None
    if body.challenge or body.steps:
        analyzer = coll.engine.analyzer
        challenge = await ctx.engines.run(new_challenge, analyzer, list(body.steps or []) or None, body.n_steps,
                                          body.time_limit_s)
    session = ctx.live.open(principal.key_id, collection, challenge)
    return session.describe(ctx.config.live)


@router.get("/collections/{collection}/live/{session_id}", tags=["recognition"],
            summary="A live session's state (and its challenge's)", response_model=LiveSessionInfo,
            responses=auth_errors(404))
async def get_live_session(collection: str, session_id: str, ctx: Ctx, principal: Recognizer) -> dict[str, Any]:
    return ctx.live.get(session_id, principal.key_id, collection).describe(ctx.config.live)


@router.post("/collections/{collection}/live/{session_id}/frames", tags=["recognition"],
             summary="One camera frame of a live session: faces named, liveness, challenge progress",
             openapi_extra=body_budget("image"),
             response_model=LiveFrame, responses=auth_errors(400, 404, 413, 415, 503))
async def send_live_frame(collection: str, session_id: str, ctx: Ctx, principal: BusyRecognizer,
                          image: Annotated[UploadFile, File(description="one camera frame (JPEG, PNG, WebP)")],
                          live_map: Annotated[bool, Form(description="add the liveness occlusion map of the "
                                                         "tracked face (costs about 20 model runs)")] = False
                          ) -> dict[str, Any]:
    session = ctx.live.get(session_id, principal.key_id, collection)  # too old or idle: gone already (404)
    limits = ctx.config.live
    if not session.lock.acquire(blocking=False):
        raise ApiError(429, "session_busy", f"live session {session_id!r} is still working on its previous frame; "
                       "send one frame at a time", headers={"Retry-After": "1"})
    try:
        if session.frames >= limits.max_frames:  # (under the lock: a frame finishing meanwhile is counted)
            ctx.live.end(session)
            raise ApiError(404, "not_found", f"live session {session_id!r} has ended: it used its "
                           f"{limits.max_frames} frames; open a new one")
        img = await _one_image(ctx, image)
        coll = ctx.engines.collection(collection)
        return await ctx.engines.run(process_frame, session, coll, img, limits, live_map)
    finally:
        session.lock.release()


@router.delete("/collections/{collection}/live/{session_id}", tags=["recognition"],
               summary="End a live session; answers its final state", response_model=LiveSessionInfo,
               responses=auth_errors(404))
async def end_live_session(collection: str, session_id: str, ctx: Ctx, principal: Recognizer) -> dict[str, Any]:
    session = ctx.live.get(session_id, principal.key_id, collection)
    ctx.live.end(session)
    return session.describe(ctx.config.live)
