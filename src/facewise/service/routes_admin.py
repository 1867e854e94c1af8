"""Who am I, profiles, API keys, the audit log and collections."""

from __future__ import annotations

from importlib.util import find_spec
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from facewise import __version__
from facewise.errors import InvalidSettingError
from facewise.service.auth import ALL, BURST_RANGE, RATE_RANGE, ApiKey, AuditEvent, KeySpec
from facewise.service.deps import Admin, AnyKey, Ctx, GlobalAdmin, Reader, page
from facewise.service.errors import ApiError
from facewise.service.schemas import (
    AuditEntry,
    Collection,
    CollectionDetail,
    ContractRoute,
    CreatedKey,
    Me,
    ProfileInfo,
    auth_errors,
)

router = APIRouter(prefix="/v1", route_class=ContractRoute)


class KeyCreate(BaseModel):
    # the rules (name, collection names, finite ranges) are KeySpec.validate's: one 422 invalid_value for every door
    name: str = Field(..., max_length=1000, examples=["kiosk-lobby"], description="1..100 characters")
    scopes: list[str] = Field(..., max_length=8, examples=[["recognize"]], description="admin, enroll, recognize, read")
    collections: list[str] = Field(default=[ALL], max_length=1000, examples=[["staff"]],
                                   description="collection names, or *")
    rate: float | None = Field(None, description=f"requests per second in {RATE_RANGE[0]:g}..{RATE_RANGE[1]:g} "
                                                  "(default: the server's)")
    burst: float | None = Field(None, description=f"bucket size, an integer in {BURST_RANGE[0]}..{BURST_RANGE[1]} "
                                                   "(default: the server's)")


class CollectionCreate(BaseModel):
    name: str = Field(..., max_length=64, examples=["staff"])
    profile: str | None = Field(None, examples=["default"], description="default: the server's --profile")


class CollectionSettings(BaseModel):
    threshold: float | None = Field(None, description="decide at this raw score, in [-1, 1]")
    target_far: float | None = Field(None, description="decide at this false-accept rate per comparison, inside the "
                                                       "collection's calibration (the 422 names the valid range)")
    target_fpir: float | None = Field(None, description="identify at this chance that a stranger gets a name from a "
                                      "search of the whole collection (default 0.01); the threshold follows the "
                                      "number of persons (the 422 names the range reachable at today's size)")


@router.get("/me", tags=["service"], summary="The calling key and what the server can do", name="get_me",
            response_model=Me, responses=auth_errors())
def me(ctx: Ctx, principal: AnyKey) -> dict[str, Any]:
    lim = ctx.config.limits
    return {"key": principal.to_dict(), "version": __version__, "default_profile": ctx.engines.default_profile,
            "limits": {"max_image_bytes": lim.max_image_bytes, "max_pixels": lim.max_pixels,
                       "max_files": lim.max_files, "max_video_bytes": lim.max_video_bytes},
            "analysis": ctx.engines.analysers.available(), "video": find_spec("facewise.video") is not None}


@router.get("/profiles", tags=["service"], summary="Profiles this server can use for new collections",
            name="list_profiles", response_model=list[ProfileInfo], responses=auth_errors())
def profiles(ctx: Ctx, _: Reader) -> list[dict[str, Any]]:
    return ctx.engines.profiles()


# -- keys -------------------------------------------------------------------------------------------
@router.post("/keys", tags=["keys"], status_code=201, summary="Create an API key (the token is shown once)",
             response_model=CreatedKey, responses=auth_errors(400))
def create_key(body: KeyCreate, request: Request, ctx: Ctx, principal: GlobalAdmin) -> dict[str, Any]:
    info, token = ctx.keys.create(KeySpec(body.name, tuple(body.scopes), tuple(body.collections), body.rate,
                                          body.burst), created_by=principal.key_id)
    return {"key": info.to_dict(), "token": token}


@router.get("/keys", tags=["keys"], summary="List API keys (never their tokens)", response_model=list[ApiKey],
            responses=auth_errors())
def list_keys(ctx: Ctx, _: GlobalAdmin, include_revoked: bool = True) -> list[dict[str, Any]]:
    return [k.to_dict() for k in ctx.keys.list_keys(include_revoked)]


@router.delete("/keys/{key_id}", tags=["keys"], summary="Revoke an API key", response_model=ApiKey,
               responses=auth_errors(404))
def revoke_key(key_id: str, ctx: Ctx, principal: GlobalAdmin) -> dict[str, Any]:
    return ctx.keys.revoke(key_id, by=principal.key_id).to_dict()


@router.get("/audit", tags=["keys"], summary="The audit log, newest first", name="list_audit",
            response_model=list[AuditEntry], responses=auth_errors())
def audit(ctx: Ctx, _: GlobalAdmin, offset: int = 0, limit: int = 100,
          collection: str | None = None) -> list[dict[str, Any]]:
    offset, limit = page(offset, limit, ctx.config.limits.max_page)
    return ctx.keys.audit_log(offset, limit, collection)


# -- collections ------------------------------------------------------------------------------------
def _collection(ctx: Ctx, name: str) -> CollectionDetail:
    fw = ctx.engines.face_wise(name)
    info = fw.info
    try:
        decision = fw.decision
    except InvalidSettingError as exc:  # the collection still opens and says what is wrong (PATCH sets a valid one)
        return CollectionDetail.of(info, decision={"threshold": None, "source": None,
                                                   "error": {"code": exc.code, "message": str(exc)}})
    v = fw.verification_decision
    return CollectionDetail.of(info, decision={
        "threshold": round(decision.threshold, 4), "source": decision.source, "far": decision.far_at_threshold,
        "fpir": decision.fpir, "persons": decision.searched, "explanation": decision.explain(),
        "verify": {"threshold": round(v.threshold, 4), "source": v.source, "far": v.far_at_threshold}},
        index=fw.index_info())


@router.post("/collections", tags=["collections"], status_code=201, summary="Create a collection bound to a profile",
             response_model=CollectionDetail, responses=auth_errors(400, 409, 503))
async def create_collection(body: CollectionCreate, request: Request, ctx: Ctx, principal: Admin) -> CollectionDetail:
    if not principal.can_access(body.name):
        raise ApiError(403, "forbidden", f"key {principal.key_id} has no access to collection {body.name!r}")
    await ctx.engines.run(ctx.engines.create_collection, body.name, body.profile)
    ctx.audit(request, AuditEvent(principal.key_id, "collection.create", body.name,
                                  detail={"profile": body.profile or ctx.engines.default_profile}))
    return _collection(ctx, body.name)


@router.get("/collections", tags=["collections"], summary="Collections this key may see",
            response_model=list[Collection], responses=auth_errors())
def list_collections(ctx: Ctx, principal: Reader) -> list[Collection]:
    return [Collection.model_validate(c) for c in ctx.engines.store.list_collections() if principal.can_access(c.name)]


@router.get("/collections/{collection}", tags=["collections"], summary="One collection and how it decides",
            response_model=CollectionDetail, responses=auth_errors(404))
def get_collection(collection: str, ctx: Ctx, _: Reader) -> CollectionDetail:
    return _collection(ctx, collection)


@router.patch("/collections/{collection}", tags=["collections"],
              summary="Set the decision threshold (a raw score, a target FAR or a target FPIR)",
              response_model=CollectionDetail, responses=auth_errors(400, 404, 409))
def update_collection(collection: str, body: CollectionSettings, request: Request, ctx: Ctx,
                      principal: Admin) -> CollectionDetail:
    ctx.engines.face_wise(collection).set_threshold(body.threshold, body.target_far, body.target_fpir)
    ctx.audit(request, AuditEvent(principal.key_id, "collection.threshold", collection,
                                  detail=body.model_dump(exclude_none=True)))
    return _collection(ctx, collection)


@router.delete("/collections/{collection}", tags=["collections"], status_code=204,
               summary="Delete a collection with every person and face in it", responses=auth_errors(404))
def delete_collection(collection: str, request: Request, ctx: Ctx, principal: Admin) -> Response:
    ctx.engines.delete_collection(collection)  # the erasure hooks drop its thumbnails, video jobs and their files
    ctx.audit(request, AuditEvent(principal.key_id, "collection.delete", collection))
    return Response(status_code=204)

