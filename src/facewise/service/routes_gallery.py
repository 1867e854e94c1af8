"""People and their enrolled faces (samples)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, Response, UploadFile
from pydantic import BaseModel, Field

from facewise.api import FaceWise
from facewise.core.analysis import Gate
from facewise.core.imageio import DecodedImage
from facewise.service.auth import AuditEvent
from facewise.service.deps import Ctx, Enroller, Reader, ServiceContext, need_liveness, page
from facewise.service.engine import face_thumbnail
from facewise.service.errors import ApiError
from facewise.service.schemas import (
    ContractRoute,
    EnrollResponse,
    FaceSample,
    Person,
    PersonDeleted,
    PersonDetail,
    PersonPage,
    auth_errors,
    binary,
)
from facewise.service.uploads import decode_upload, read_images
from facewise.types import EnrollResult

router = APIRouter(prefix="/v1/collections/{collection}", route_class=ContractRoute)


class PersonCreate(BaseModel):
    name: str = Field(..., max_length=200, examples=["Ada Lovelace"])
    metadata: dict[str, Any] | None = Field(None, examples=[{"employee_id": "E-1815"}])


class PersonUpdate(BaseModel):
    name: str = Field(..., max_length=200)


@router.post("/persons", tags=["persons"], status_code=201, summary="Create a person (no faces yet)",
             response_model=Person, responses=auth_errors(400, 404, 409))
def create_person(collection: str, body: PersonCreate, request: Request, ctx: Ctx,
                  principal: Enroller) -> dict[str, Any]:
    person = ctx.engines.face_wise(collection).add_person(body.name, body.metadata)
    ctx.audit(request, AuditEvent(principal.key_id, "person.create", collection, str(person.id),
                                  {"name": person.name}))
    return person.to_dict()


@router.get("/persons", tags=["persons"], summary="People of a collection, by name, a page at a time",
            response_model=PersonPage, responses=auth_errors(404))
def list_persons(collection: str, ctx: Ctx, _: Reader, offset: int = 0, limit: int = 50) -> dict[str, Any]:
    offset, limit = page(offset, limit, ctx.config.limits.max_page)
    fw = ctx.engines.face_wise(collection)
    items = fw.persons(offset, limit)
    return {"items": [p.to_dict() for p in items], "offset": offset, "limit": limit, "total": fw.info.persons}


@router.get("/persons/{person_id}", tags=["persons"], summary="One person with their faces",
            response_model=PersonDetail, responses=auth_errors(404))
def get_person(collection: str, person_id: int, ctx: Ctx, _: Reader) -> dict[str, Any]:
    fw = ctx.engines.face_wise(collection)
    person = fw.person(person_id)
    return {**person.to_dict(), "faces": [s.to_dict() for s in fw.samples(person.id)]}


@router.patch("/persons/{person_id}", tags=["persons"], summary="Rename a person", response_model=Person,
              responses=auth_errors(400, 404, 409))
def rename_person(collection: str, person_id: int, body: PersonUpdate, request: Request, ctx: Ctx,
                  principal: Enroller) -> dict[str, Any]:
    fw = ctx.engines.face_wise(collection)
    old = fw.person(person_id).name
    person = fw.rename_person(person_id, body.name)
    ctx.audit(request, AuditEvent(principal.key_id, "person.rename", collection, str(person_id),
                                  {"from": old, "to": person.name}))
    return person.to_dict()


@router.delete("/persons/{person_id}", tags=["persons"], summary="Delete a person with all their faces",
               response_model=PersonDeleted, responses=auth_errors(404))
def delete_person(collection: str, person_id: int, request: Request, ctx: Ctx,
                  principal: Enroller) -> dict[str, Any]:
    fw = ctx.engines.face_wise(collection)
    person = fw.person(person_id)
    n = fw.delete_person(person_id)  # the erasure hooks drop thumbnails and de-identify video jobs
    # the audit keeps that a person was erased, not who: their name is erased with them
    ctx.audit(request, AuditEvent(principal.key_id, "person.delete", collection, str(person_id), {"faces": n}))
    return {"deleted": person.to_dict(), "faces_deleted": n}


# -- faces ------------------------------------------------------------------------------------------
def _enroll(ctx: ServiceContext, fw: FaceWise, name: str, images: list[DecodedImage],
            options: dict[str, Any]) -> list[EnrollResult]:
    """Decode, enrol (one transaction), keep a thumbnail of each added face. Runs in the CPU pool."""
    results = fw.enroll(name, images, face=options["face"], gate=options["gate"])
    if ctx.thumbnails is not None:
        for img, res in zip(images, results, strict=True):
            if res.status == "added" and res.sample_id is not None and res.face is not None:
                ctx.thumbnails.put(fw.collection, res.sample_id, img.sha256, face_thumbnail(img.pixels, res.face))
    return results


def _face_choice(face: str) -> Any:
    if face in ("only", "largest"):
        return face
    if face.isdigit():
        return int(face)
    raise ApiError(422, "invalid_request", f"face must be only, largest or a face index, got {face[:20]!r}")


@router.post("/persons/{person_id}/faces", tags=["faces"], summary="Enrol faces of a person from uploaded images",
             description="Each image must show the person; with several faces say which (`face=largest` or an "
                         "index). Per-image outcomes: added, duplicate or rejected (with the reason).",
             response_model=EnrollResponse, responses=auth_errors(400, 404, 413, 415, 503))
async def enroll_faces(collection: str, person_id: int, request: Request, ctx: Ctx, principal: Enroller,
                       files: Annotated[list[UploadFile], File(description="one or more images")],
                       face: Annotated[str, Form()] = "only",
                       min_quality: Annotated[float | None, Form(ge=0, le=1)] = None,
                       require_live: Annotated[bool, Form(description="refuse faces the anti-spoofing model "
                                                          "finds not live")] = False) -> dict[str, Any]:
    limits = ctx.config.limits
    need_liveness(ctx, require_live)
    uploads = await read_images(files, limits)
    fw = ctx.engines.face_wise(collection)
    person = fw.person(person_id)
    images = [await ctx.engines.run(decode_upload, data, name, limits) for name, data in uploads]
    options = {"face": _face_choice(face), "gate": Gate(min_quality=min_quality, require_live=require_live)}
    results = await ctx.engines.run(_enroll, ctx, fw, person.name, images, options)
    added = [r.sample_id for r in results if r.status == "added"]
    ctx.audit(request, AuditEvent(principal.key_id, "face.enroll", collection, str(person_id),
                                  {"name": person.name, "added": added,
                                   "rejected": sum(r.status == "rejected" for r in results)}))
    return {"person": fw.person(person_id).to_dict(), "added": len(added),
            "results": [r.to_dict() for r in results]}


@router.get("/persons/{person_id}/faces", tags=["faces"], summary="A person's enrolled faces",
            response_model=list[FaceSample], responses=auth_errors(404))
def list_faces(collection: str, person_id: int, ctx: Ctx, _: Reader) -> list[dict[str, Any]]:
    return [s.to_dict() for s in ctx.engines.face_wise(collection).samples(person_id)]


@router.get("/persons/{person_id}/faces/{sample_id}/thumbnail", tags=["faces"], summary="A face's thumbnail (JPEG)",
            name="get_face_thumbnail", response_class=Response,
            responses={**binary("image/jpeg"), **auth_errors(404)})
def face_thumbnail_route(collection: str, person_id: int, sample_id: int, ctx: Ctx, _: Reader) -> Response:
    sample = next((s for s in ctx.engines.face_wise(collection).samples(person_id) if s.id == sample_id), None)
    jpeg = None
    if sample is not None and ctx.thumbnails is not None:
        jpeg = ctx.thumbnails.get(sample.id, sample.image_sha256)
    if jpeg is None:
        raise ApiError(404, "not_found", f"no thumbnail for face {sample_id}")
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})


@router.delete("/faces/{sample_id}", tags=["faces"], status_code=204, summary="Delete one enrolled face",
               responses=auth_errors(404))
def delete_face(collection: str, sample_id: int, request: Request, ctx: Ctx, principal: Enroller) -> Response:
    ctx.engines.face_wise(collection).delete_sample(sample_id)  # the erasure hooks drop its thumbnail
    ctx.audit(request, AuditEvent(principal.key_id, "face.delete", collection, str(sample_id)))
    return Response(status_code=204)
