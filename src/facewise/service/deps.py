"""The per-process context and the authentication/authorisation dependencies of every route."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator

from facewise.core.pipeline import SMALL_WORK
from facewise.errors import ValidationError
from facewise.service.auth import AuditEvent, BusyLimiter, KeyStore, Principal, RateLimiter
from facewise.service.config import ServiceConfig
from facewise.service.engine import Engines, Thumbnails
from facewise.service.errors import ApiError
from facewise.service.jobs import JobManager
from facewise.service.live import LiveSessions
from facewise.service.metrics import Metrics


@dataclass
class ServiceContext:
    config: ServiceConfig
    engines: Engines
    keys: KeyStore
    limiter: RateLimiter
    metrics: Metrics
    jobs: JobManager
    thumbnails: Thumbnails | None
    busy: BusyLimiter
    live: LiveSessions
    bootstrap: str | None = None  # where the bootstrap key went on first start
    lock: int | None = None  # the held lock on <db>.lock (one server per gallery file)

    def audit(self, request: Request, event: AuditEvent, still_there: Callable[[], bool] | None = None) -> None:
        """Write ``event``. When it names a person, ``still_there`` asks the gallery afterwards whether they
        still exist: a delete that committed before the row was written (its erasure ran before the row
        existed) blanks the row here, so no ordering of the two leaves their name behind."""
        remote = request.client.host if request.client else None
        row = self.keys.audit(AuditEvent(event.actor, event.action, event.collection, event.target, event.detail,
                                         remote))
        if still_there is not None and not still_there():
            self.keys.erase_audit_row(row)


def get_ctx(request: Request) -> ServiceContext:
    ctx: ServiceContext = request.app.state.ctx
    return ctx


Ctx = Annotated[ServiceContext, Depends(get_ctx)]

bearer_scheme = HTTPBearer(auto_error=False, description="`Authorization: Bearer <API key>`")
header_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, description="`X-API-Key: <API key>`")


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": 'Bearer realm="facewise"'})


class KeyCheck:
    """A route's key check: a valid key (401), under its rate limit (429), with ``scope`` (``None``: any) and access
    to the path's ``{collection}`` (403); ``global_admin`` also demands ``admin`` on ``*`` (key management).

    The request gate (:mod:`facewise.service.gate`) finds it among the matched route's dependencies and runs
    :meth:`authorize` before any byte of the body is read; the dependency then takes the principal the gate left in
    the request's scope (one check, one rate-limit token). Without the gate (a bare router) it checks by itself."""

    def __init__(self, scope: str | None, global_admin: bool = False) -> None:
        self.scope, self.global_admin = scope, global_admin

    def authorize(self, ctx: ServiceContext, token: str | None, collection: str | None) -> Principal:
        if not token:
            raise _unauthorized("no API key: send `Authorization: Bearer <key>` or `X-API-Key: <key>`")
        principal = ctx.keys.authenticate(token.strip())
        if principal is None:
            raise _unauthorized("unknown or revoked API key")
        wait = ctx.limiter.take(principal)
        if wait > 0:
            raise ApiError(429, "rate_limited", f"rate limit of key {principal.key_id} reached; retry in {wait:.1f} s",
                           headers={"Retry-After": str(max(1, math.ceil(wait)))})
        if (self.scope is not None and not principal.has(self.scope)) or (self.global_admin
                                                                         and not principal.global_admin):
            need = "admin on all collections" if self.global_admin else f"scope {self.scope!r}"
            raise ApiError(403, "forbidden", f"key {principal.key_id} lacks {need}")
        if collection is not None and not principal.can_access(collection):
            raise ApiError(403, "forbidden", f"key {principal.key_id} has no access to collection {collection!r}")
        return principal

    def __call__(self, request: Request,
                 bearer: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)] = None,
                 api_key: Annotated[str | None, Security(header_scheme)] = None) -> Principal:
        principal = request.scope.get(PRINCIPAL)
        if not isinstance(principal, Principal):
            token = bearer.credentials if bearer is not None else api_key
            principal = self.authorize(request.app.state.ctx, token, request.path_params.get("collection"))
        request.state.principal = principal
        return principal


PRINCIPAL = "facewise.principal"  # the scope key under which the gate leaves the checked key


def require(scope: str | None, global_admin: bool = False) -> KeyCheck:
    """The dependency checking a route's key (see :class:`KeyCheck`)."""
    return KeyCheck(scope, global_admin)


def costly(scope: str) -> Callable[..., AsyncIterator[Principal]]:
    """:func:`require` for an expensive route (image work): also a slot of the key's concurrency budget, held
    until the answer is ready (waiting in line for one first); 429 ``busy`` with Retry-After when the key's line
    is full too."""

    async def dependency(request: Request, principal: Principal = Depends(require(scope))) -> AsyncIterator[Principal]:
        busy: BusyLimiter = request.app.state.ctx.busy
        if not await busy.acquire(principal.key_id):
            raise ApiError(429, "busy", f"key {principal.key_id} already has {busy.per_key} image request(s) in "
                           f"progress and {busy.waiting} waiting; wait for answers before sending more",
                           headers={"Retry-After": "1"})
        try:
            with SMALL_WORK.running():  # the whole request counts: a crowd elsewhere yields to it
                yield principal
        finally:
            busy.release(principal.key_id)

    return dependency


Admin = Annotated[Principal, Depends(require("admin"))]
GlobalAdmin = Annotated[Principal, Depends(require("admin", global_admin=True))]
Enroller = Annotated[Principal, Depends(require("enroll"))]
Recognizer = Annotated[Principal, Depends(require("recognize"))]
BusyRecognizer = Annotated[Principal, Depends(costly("recognize"))]
BusyEnroller = Annotated[Principal, Depends(costly("enroll"))]
Reader = Annotated[Principal, Depends(require("read"))]
AnyKey = Annotated[Principal, Depends(require(None))]


def need_liveness(ctx: ServiceContext, required: bool) -> None:
    if required and not ctx.engines.analysers.available().get("live"):
        raise ApiError(422, "liveness_unavailable", "liveness was required but this server has no anti-spoofing "
                       "model (minifasnet-v2-v1se) on its model path")


MAX_OFFSET = 2**63 - 1  # SQLite's and PostgreSQL's largest integer


def _row_id(value: int) -> int:
    """A person's or face's id in a path: outside 1..2**63-1 no row can have it, so it is not found (404, as the
    library's NotFoundError), never an OverflowError's 500."""
    if not 1 <= value <= MAX_OFFSET:
        raise ApiError(404, "not_found", f"no row has the id {value} (ids are 1..{MAX_OFFSET})")
    return value


RowId = Annotated[int, AfterValidator(_row_id)]


def page(offset: int, limit: int, max_page: int) -> tuple[int, int]:
    if not 0 <= offset <= MAX_OFFSET or limit < 1:
        raise ApiError(422, "invalid_request", f"offset must be 0..{MAX_OFFSET} and limit >= 1")
    return offset, min(limit, max_page)


def face_choice(face: str) -> Any:
    """A form's ``face`` field by the library's rule (:func:`facewise.api.parse_face_choice`); else 422."""
    from facewise.api import parse_face_choice

    try:
        return parse_face_choice(face)
    except ValidationError as exc:
        raise ApiError(422, "invalid_request", str(exc)) from None


def jsonable(obj: Any) -> Any:
    return obj.to_dict() if hasattr(obj, "to_dict") else obj
