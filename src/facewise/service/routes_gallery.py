"""People and their enrolled faces (samples)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, Response, UploadFile
from pydantic import BaseModel, Field

from facewise.api import FaceWise
from facewise.core.analysis import Gate
from facewise.core.imageio import DecodedImage, EncodedImage
from facewise.errors import ImageError, NotFoundError
from facewise.service.auth import AuditEvent
from facewise.service.deps import (
    BusyEnroller,
    Ctx,
    Enroller,
    Reader,
    RowId,
    ServiceContext,
    face_choice,
    need_liveness,
    page,
)
from facewise.service.engine import face_thumbnail
from facewise.service.errors import ApiError
from facewise.service.gate import body_budget
from facewise.service.schemas import (
    ContractRoute,
    EnrollItem,
    EnrollResponse,
    FaceSample,
    Person,
    PersonDeleted,
    PersonDetail,
    PersonPage,
    auth_errors,
    binary,
)
from facewise.service.uploads import read_images
from facewise.types import EnrollResult
from facewise.types import Person as StoredPerson

router = APIRouter(prefix="/v1/collections/{collection}", route_class=ContractRoute)


class PersonCreate(BaseModel):
    name: str = Field(..., max_length=200, examples=["Ada Lovelace"])
    metadata: dict[str, Any] | None = Field(None, examples=[{"employee_id": "E-1815"}])


class PersonUpdate(BaseModel):
    name: str = Field(..., max_length=200)


def still_there(fw: FaceWise, person_id: int, name: str) -> Callable[[], bool]:
    """For an audit row naming a person: do they still exist (the same id under the same name)?"""
    def check() -> bool:
        try:
            return fw.person(person_id).name == name
        except NotFoundError:
            return False

    return check


@router.post("/persons", tags=["persons"], status_code=201, summary="Create a person (no faces yet)",
             response_model=Person, responses=auth_errors(400, 404, 409))
def create_person(collection: str, body: PersonCreate, request: Request, ctx: Ctx,
                  principal: Enroller) -> Person:
    if body.metadata is not None:
        size = len(json.dumps(body.metadata, ensure_ascii=False).encode())
        limit = ctx.config.limits.max_metadata_bytes
        if size > limit:
            raise ApiError(413, "metadata_too_large", f"metadata of {size} bytes exceeds the {limit}-byte limit")
    fw = ctx.engines.face_wise(collection)
    person = fw.add_person(body.name, body.metadata)
    ctx.audit(request, AuditEvent(principal.key_id, "person.create", collection, str(person.id),
                                  {"name": person.name}), still_there(fw, person.id, person.name))
    return Person.model_validate(person)


@router.get("/persons", tags=["persons"], summary="People of a collection, by name, a page at a time",
            response_model=PersonPage, responses=auth_errors(404))
def list_persons(collection: str, ctx: Ctx, _: Reader, offset: int = 0, limit: int = 50) -> PersonPage:
    offset, limit = page(offset, limit, ctx.config.limits.max_page)
    fw = ctx.engines.face_wise(collection)
    return PersonPage(items=[Person.model_validate(p) for p in fw.persons(offset, limit)], offset=offset,
                      limit=limit, total=fw.info.persons)


@router.get("/persons/{person_id}", tags=["persons"], summary="One person with their faces",
            response_model=PersonDetail, responses=auth_errors(404))
def get_person(collection: str, person_id: RowId, ctx: Ctx, _: Reader) -> PersonDetail:
    fw = ctx.engines.face_wise(collection)
    person = fw.person(person_id)
    return PersonDetail.of(person, faces=fw.samples(person.id))


@router.patch("/persons/{person_id}", tags=["persons"], summary="Rename a person", response_model=Person,
              responses=auth_errors(400, 404, 409))
def rename_person(collection: str, person_id: RowId, body: PersonUpdate, request: Request, ctx: Ctx,
                  principal: Enroller) -> Person:
    fw = ctx.engines.face_wise(collection)
    old = fw.person(person_id).name
    person = fw.rename_person(person_id, body.name)
    ctx.audit(request, AuditEvent(principal.key_id, "person.rename", collection, str(person_id),
                                  {"from": old, "to": person.name}), still_there(fw, person_id, person.name))
    return Person.model_validate(person)


@router.delete("/persons/{person_id}", tags=["persons"], summary="Delete a person with all their faces",
               response_model=PersonDeleted, responses=auth_errors(404))
def delete_person(collection: str, person_id: RowId, request: Request, ctx: Ctx,
                  principal: Enroller) -> PersonDeleted:
    fw = ctx.engines.face_wise(collection)
    person = fw.person(person_id)
    n = fw.delete_person(person_id)  # the erasure hooks drop thumbnails and de-identify video jobs
    # the audit keeps that a person was erased, not who: their name is erased with them
    ctx.audit(request, AuditEvent(principal.key_id, "person.delete", collection, str(person_id), {"faces": n}))
    return PersonDeleted(deleted=Person.model_validate(person), faces_deleted=n)


# -- faces ------------------------------------------------------------------------------------------
class _Upload(EncodedImage):
    """An uploaded image that cannot be decoded fails the whole request (422, nothing stored), as when every
    image was decoded up front, though now each is decoded only when its turn comes."""

    def decode(self, limit: int | None = None) -> DecodedImage:
        try:
            return super().decode(limit)
        except ImageError as exc:
            raise ApiError(422, exc.code, str(exc)) from None


def _enroll(ctx: ServiceContext, fw: FaceWise, person: StoredPerson, uploads: list[tuple[str, bytes]],
            options: dict[str, Any]) -> list[EnrollResult]:
    """Enrol (one transaction), keep a thumbnail of each added face. Runs in the CPU pool.

    The images go in encoded: the library decodes one at a time and lets it go before the next, so a request
    holds one decoded image at most; a thumbnail is cut from that image while it is at hand (each upload is
    decoded and hashed once). Faces are stored by the person's id, checked in the storing transaction: a person
    deleted meanwhile stays deleted (NotFoundError → 404, nothing stored)."""
    limits = ctx.config.limits
    thumbs: dict[int, tuple[str, bytes]] = {}

    def keep_thumbnail(i: int, img: DecodedImage, res: EnrollResult) -> None:
        if ctx.thumbnails is not None and res.face is not None:
            thumbs[i] = (img.sha256, face_thumbnail(img.pixels, res.face))

    images = [_Upload(data, file_name, limits.max_pixels) for file_name, data in uploads]
    coll = fw.coll
    results = coll.enroll(person.name, images, face=options["face"], gate=options["gate"], person_id=person.id,
                          on_added=keep_thumbnail)
    if ctx.thumbnails is not None:
        for i, res in enumerate(results):
            if i in thumbs and res.status == "added" and res.sample_id is not None:
                ctx.thumbnails.put(coll.name, res.sample_id, *thumbs[i])
        added = [r.sample_id for r in results if r.status == "added" and r.sample_id is not None]
        gone = set(added) - coll.existing_samples(added)  # deleted before their thumbnails
        if gone:  # came: a later delete erases the thumbnails itself
            ctx.thumbnails.drop(sorted(gone))
    return results


@router.post("/persons/{person_id}/faces", tags=["faces"], summary="Enrol faces of a person from uploaded images",
openapi_extra=body_budget("images"),
             description="Each image must show the person; with several faces say which (`face=largest` or an "
                         "index). Per-image outcomes: added, duplicate or rejected (with the reason).",
             response_model=EnrollResponse, responses=auth_errors(400, 404, 413, 415, 503))
async def enroll_faces(collection: str, person_id: RowId, request: Request, ctx: Ctx, principal: BusyEnroller,
                       files: Annotated[list[UploadFile], File(description="one or more images")],
                       face: Annotated[str, Form()] = "only",
                       min_quality: Annotated[float | None, Form(ge=0, le=1)] = None,
                       require_live: Annotated[bool, Form(description="refuse faces the anti-spoofing model "
                                                          "finds not live")] = False) -> EnrollResponse:
    limits = ctx.config.limits
    need_liveness(ctx, require_live)
    uploads = await read_images(files, limits)
    fw = ctx.engines.face_wise(collection)
    person = fw.person(person_id)
    options = {"face": face_choice(face), "gate": Gate(min_quality=min_quality, require_live=require_live)}
    results = await ctx.engines.run(_enroll, ctx, fw, person, uploads, options)
    added = [r.sample_id for r in results if r.status == "added"]
    ctx.audit(request, AuditEvent(principal.key_id, "face.enroll", collection, str(person_id),
                                  {"name": person.name, "added": added,
                                   "rejected": sum(r.status == "rejected" for r in results)}),
              still_there(fw, person_id, person.name))
    return EnrollResponse(person=Person.model_validate(fw.person(person_id)), added=len(added),
                          results=[EnrollItem.model_validate(r) for r in results])


@router.get("/persons/{person_id}/faces", tags=["faces"], summary="A person's enrolled faces",
            response_model=list[FaceSample], responses=auth_errors(404))
def list_faces(collection: str, person_id: RowId, ctx: Ctx, _: Reader) -> list[FaceSample]:
    return [FaceSample.model_validate(s) for s in ctx.engines.face_wise(collection).samples(person_id)]


@router.get("/persons/{person_id}/faces/{sample_id}/thumbnail", tags=["faces"], summary="A face's thumbnail (JPEG)",
            name="get_face_thumbnail", response_class=Response,
            responses={**binary("image/jpeg"), **auth_errors(404)})
def face_thumbnail_route(collection: str, person_id: RowId, sample_id: RowId, ctx: Ctx, _: Reader) -> Response:
    sample = next((s for s in ctx.engines.face_wise(collection).samples(person_id) if s.id == sample_id), None)
    jpeg = None
    if sample is not None and ctx.thumbnails is not None:
        jpeg = ctx.thumbnails.get(sample.id, sample.image_sha256)
    if jpeg is None:
        raise ApiError(404, "not_found", f"no thumbnail for face {sample_id}")
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})


@router.delete("/faces/{sample_id}", tags=["faces"], status_code=204, summary="Delete one enrolled face",
               responses=auth_errors(404))
def delete_face(collection: str, sample_id: RowId, request: Request, ctx: Ctx, principal: Enroller) -> Response:
    ctx.engines.face_wise(collection).delete_sample(sample_id)  # the erasure hooks drop its thumbnail
    ctx.audit(request, AuditEvent(principal.key_id, "face.delete", collection, str(sample_id)))
    return Response(status_code=204)
