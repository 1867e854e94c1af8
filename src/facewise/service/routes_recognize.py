"""Identify, verify, detect and analyse uploaded images."""

from __future__ import annotations

import functools
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, UploadFile

from facewise.collection import Collection
from facewise.core.analysis import Gate
from facewise.core.imageio import DecodedImage
from facewise.decision.matching import Decision
from facewise.service.deps import MAX_OFFSET, BusyRecognizer, Ctx, ServiceContext, face_choice, need_liveness
from facewise.service.errors import ApiError
from facewise.service.gate import body_budget
from facewise.service.schemas import (
    ContractRoute,
    DetectResponse,
    IdentifyResponse,
    VerifyResponse,
    auth_errors,
)
from facewise.service.uploads import decode_upload, read_images
from facewise.types import Identification

router = APIRouter(prefix="/v1", route_class=ContractRoute)

ImageFile = Annotated[UploadFile, File(description="an image (JPEG, PNG, WebP, BMP, GIF, TIFF, PPM)")]


async def _one_image(ctx: ServiceContext, upload: UploadFile) -> DecodedImage:
    (name, data), = await read_images([upload], ctx.config.limits)
    return await ctx.engines.run(decode_upload, data, name, ctx.config.limits)


def _size(img: DecodedImage) -> dict[str, int]:
    w, h = img.size
    return {"width": w, "height": h}


def _identify(coll: Collection, img: DecodedImage, top_k: int) -> tuple[Decision, list[Identification]]:
    """Identify with one snapshot of the collection's decision: the threshold reported is the one used."""
    decision = coll.decision()
    return decision, coll.identify(img, top_k, decision)


@router.post("/collections/{collection}/identify", tags=["recognition"],
             summary="Name every face of an image, or say unknown", openapi_extra=body_budget("image"),
             response_model=IdentifyResponse,
             responses=auth_errors(400, 404, 409, 413, 415, 503))
async def identify(collection: str, ctx: Ctx, _: BusyRecognizer, image: ImageFile,
                   top_k: Annotated[int, Form(ge=1, le=20)] = 1) -> dict[str, Any]:
    coll = ctx.engines.collection(collection)
    img = await _one_image(ctx, image)
    decision, results = await ctx.engines.run(_identify, coll, img, top_k)
    return {"image": _size(img), "profile": coll.profile.name, "threshold": round(decision.threshold, 4),
            "threshold_source": decision.source, "faces": [r.to_dict() for r in results]}


@router.post("/collections/{collection}/verify", tags=["recognition"],
             summary="Same person? Two images, or an image against an enrolled person",
             openapi_extra=body_budget("image_pair"),
             description="Send `image` and either `other` (a second image) or `person_id`. Each image must "
                         "show one face (else 422 multiple_faces) unless `face` (and `other_face`) say which: "
                         "only, largest or "
                         "an index in the order detect gives; the collection's threshold decides.",
             response_model=VerifyResponse, responses=auth_errors(400, 404, 409, 413, 415, 503))
async def verify(collection: str, ctx: Ctx, _: BusyRecognizer, image: ImageFile,
                 other: Annotated[UploadFile | None, File()] = None,
                 person_id: Annotated[int | None, Form(ge=0, le=MAX_OFFSET)] = None,
                 require_live: Annotated[bool, Form(description="answer not same if the probe `image` is "
                                                    "not live")] = False,
                 face: Annotated[str, Form(description="the face of `image`: only, largest or an index")]
                 = "only",
                 other_face: Annotated[str | None, Form(description="the face of `other` (default: as `face`)")]
                 = None) -> dict[str, Any]:
    if (other is None) == (person_id is None):
        raise ApiError(422, "invalid_request", "send either a second image (other) or a person_id")
    which = face_choice(face)
    other_which = face_choice(other_face) if other_face is not None else which
    coll = ctx.engines.collection(collection)
    need_liveness(ctx, require_live)
    gate = Gate(require_live=True) if require_live else None
    a = await _one_image(ctx, image)
    if person_id is not None:
        person = coll.person(person_id)
        v = await ctx.engines.run(functools.partial(coll.verify_person, a, person.id, which, gate=gate))
        return {**v.to_dict(), "person": person.to_dict()}
    b = await _one_image(ctx, other) if other is not None else a
    v = await ctx.engines.run(functools.partial(coll.verify, a, b, which, gate=gate, other_face=other_which))
    return v.to_dict()


def _detect(ctx: ServiceContext, img: DecodedImage, profile: str,
            what: tuple[str, ...] | None = None) -> DetectResponse:
    """Detection by the profile's engine (as the library's ``detect``); with ``what``, analysis too (the
    attributes named, as the library's ``analyze(what=...)``)."""
    engine = ctx.engines.engine(profile)
    _, faces = engine.detect_image(img)
    answer: dict[str, Any] = {"image": _size(img), "profile": engine.profile.name}
    if what is not None:
        answer["modules"] = ctx.engines.analysers.analyse(img.pixels, faces, what or None)
    return DetectResponse.model_validate({**answer, "faces": faces})  # the faces' records, analysed


@router.post("/detect", tags=["recognition"], summary="Faces with boxes, landmarks, yaw and quality reasons",
openapi_extra=body_budget("image"),
             response_model=DetectResponse, responses=auth_errors(400, 413, 415, 503))
async def detect(ctx: Ctx, _: BusyRecognizer, image: ImageFile, profile: str | None = None) -> DetectResponse:
    img = await _one_image(ctx, image)
    return await ctx.engines.run(_detect, ctx, img, profile or ctx.engines.default_profile)


@router.post("/analyze", tags=["recognition"],
             summary="Detect, then the registered face attributes (liveness, head pose, expression as shipped) "
                     "whose models are installed",
             openapi_extra=body_budget("image"),
             response_model=DetectResponse, responses=auth_errors(400, 413, 415, 503))
async def analyze(ctx: Ctx, _: BusyRecognizer, image: ImageFile, profile: str | None = None,
                  what: Annotated[str | None, Form(description="the face attributes to measure, comma-separated "
                                                   "(default: every registered one; live_map adds liveness's "
                                                   "occlusion map); `modules` says which ran")] = None,
                  ) -> DetectResponse:
    wanted = tuple(w.strip() for w in (what or "").split(",") if w.strip())
    img = await _one_image(ctx, image)
    return await ctx.engines.run(_detect, ctx, img, profile or ctx.engines.default_profile, wanted)
