"""The request gate: the matched route's key check and body budget before any byte of the body is read.

Every route declares, with the route, what the gate checks (:class:`RouteMeta`, read by :func:`route_meta` when
the route is built): its body budget (``openapi_extra=body_budget("image")``; a route that takes no file may leave
it out and gets the small JSON budget, a route that takes a file and declares none cannot be built) and its key
check (a :class:`~facewise.service.deps.KeyCheck` dependency, ``Reader`` and the like, or
``openapi_extra=public()`` for a route that needs no key; a route with neither cannot be built).
:class:`RequestGate` (ASGI middleware) finds the route a request is for (method and path template, as the
router will), runs that route's :class:`~facewise.service.deps.KeyCheck` (401/403/429) and refuses a declared
length over the budget (413) before the body is received; a body that arrives anyway is counted while it streams
(413 past the budget, chunked or not) and must keep arriving (408 after ``body_timeout`` seconds without a byte).
JSON bodies are parsed in a worker thread, nested at most :data:`MAX_JSON_DEPTH` deep (422 ``json_too_deep``).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import params
from fastapi.exceptions import RequestValidationError
from fastapi.security.utils import get_authorization_scheme_param
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.routing import BaseRoute, Match

from facewise.service.config import MIB, Limits
from facewise.service.errors import ApiError, error_body, without_paths

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

BUDGET_KEY = "x-facewise-body-budget"
AUTH_KEY = "x-facewise-auth"  # the scope a key needs ("any": any valid key), or "public"
PUBLIC = "public"
BUDGETS = ("json", "image", "image_pair", "images", "video")
MAX_JSON_DEPTH = 32


def body_budget(kind: str) -> dict[str, Any]:
    """A route's ``openapi_extra`` declaring its body budget: ``json`` (the default), ``image`` (one image file),
    ``image_pair`` (two), ``images`` (a request's worth of files) or ``video``."""
    if kind not in BUDGETS:
        raise ValueError(f"unknown body budget {kind!r}; one of {', '.join(BUDGETS)}")
    return {BUDGET_KEY: kind}


def public(budget: str = "json") -> dict[str, Any]:
    """``openapi_extra`` of a route that needs no key (health, readiness, metrics, the web page)."""
    return {**body_budget(budget), AUTH_KEY: PUBLIC}


class UndeclaredRouteError(TypeError):
    """A route that does not declare its body budget or its key check."""


@dataclass(frozen=True)
class RouteMeta:
    """What a route declares for the gate: its body budget (one of :data:`BUDGETS`) and its key check
    (a :class:`~facewise.service.deps.KeyCheck`; ``None`` only for a route declared :func:`public`)."""

    budget: str
    check: Any

    @property
    def auth(self) -> str:
        """The scope a key needs, ``any`` (any valid key) or ``public``."""
        if self.check is None:
            return PUBLIC
        scope = self.check.scope or "any"
        return f"{scope} on *" if self.check.global_admin else str(scope)


def _takes_files(route: Any) -> bool:
    body = getattr(route, "body_field", None)
    return body is not None and isinstance(body.field_info, params.Form)


def route_meta(route: Any) -> RouteMeta:
    """The metadata ``route`` declares (see the module's note); :class:`UndeclaredRouteError` where it lacks some.
    The declaration is also written into the route's OpenAPI operation (``x-facewise-body-budget``,
    ``x-facewise-auth``), so clients read the budget and the scope each operation needs."""
    extra = route.openapi_extra = dict(getattr(route, "openapi_extra", None) or {})
    where = f"{'/'.join(sorted(getattr(route, 'methods', None) or ()))} {getattr(route, 'path', route)}"
    kind = extra.get(BUDGET_KEY)
    if kind is None:
        if _takes_files(route):
            raise UndeclaredRouteError(f"{where} takes a file but declares no body budget: add "
                                       "openapi_extra=body_budget(...)")
        kind = "json"
    if kind not in BUDGETS:
        raise UndeclaredRouteError(f"{where}: unknown body budget {kind!r}")
    check = _key_check(getattr(route, "dependant", None))
    if check is None and extra.get(AUTH_KEY) != PUBLIC:
        raise UndeclaredRouteError(f"{where} declares no key check: give it a KeyCheck dependency (Reader, ...) or "
                                   "openapi_extra=public()")
    if check is not None and extra.get(AUTH_KEY) == PUBLIC:
        raise UndeclaredRouteError(f"{where} is declared public but checks a key")
    meta = RouteMeta(kind, check)
    extra.update({BUDGET_KEY: kind, AUTH_KEY: meta.auth})
    return meta


#: what the framework's own routes (/openapi.json, /docs, /redoc, the static files) are: pages, no key, no body
FRAMEWORK = RouteMeta("json", None)


def meta_of(route: BaseRoute) -> RouteMeta:
    """A route's :class:`RouteMeta`: the one it declared (a FastAPI route; :data:`FRAMEWORK` for the pages the
    framework adds, marked so by ``create_app``), :data:`FRAMEWORK` for a mount (the static files);
    :class:`UndeclaredRouteError` for anything else."""
    from fastapi.routing import APIRoute

    meta = getattr(route, "meta", None)
    if isinstance(meta, RouteMeta):
        return meta
    if isinstance(route, APIRoute):
        return route_meta(route)
    if getattr(route, "methods", None) is None:  # a Mount: the static files
        return FRAMEWORK
    raise UndeclaredRouteError(f"{getattr(route, 'path', route)}: a route the gate knows nothing about")


def budget_bytes(kind: str, limits: Limits) -> int:
    return {"json": limits.max_json_bytes, "image": limits.max_image_bytes + MIB,
            "image_pair": 2 * limits.max_image_bytes + MIB, "images": limits.max_request_bytes,
            "video": limits.max_video_bytes + MIB}[kind]


@dataclass(frozen=True)
class RouteRule:
    """What the gate checks for one route (its :class:`RouteMeta`): its body budget in bytes and its key check
    (``None``: no key). ``matcher.matches(scope)`` is the router's own test (path template and method)."""

    matcher: Any
    budget: int
    check: Any  # a KeyCheck, or None
    route: Any = None  # the route itself: named in ``scope["route"]`` for what the gate answers (metrics' label)


def _key_check(dependant: Any) -> Any:
    from facewise.service.deps import KeyCheck

    for dep in getattr(dependant, "dependencies", ()):
        if isinstance(dep.call, KeyCheck):
            return dep.call
        found = _key_check(dep)
        if found is not None:
            return found
    return None


def _flat(routes: Sequence[BaseRoute]) -> list[tuple[Any, BaseRoute]]:
    """(matcher, route) for every route, included routers flattened (FastAPI >= 0.160 nests them)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI: app.routes is already flat
        return [(r, r) for r in routes]
    return [(c, c.original_route) for c in iter_route_contexts(routes)]


def flat_routes(routes: Sequence[BaseRoute]) -> list[BaseRoute]:
    """Every route of an app, included routers flattened."""
    return [route for _, route in _flat(routes)]


def route_rules(routes: Sequence[BaseRoute], limits: Limits) -> list[RouteRule]:
    """The gate's rule for every route (:func:`meta_of`: an undeclared route is an error, at start-up)."""
    rules = []
    for matcher, route in _flat(routes):
        meta = meta_of(route)
        rules.append(RouteRule(matcher, budget_bytes(meta.budget, limits), meta.check, route))
    return rules


def _token(headers: dict[bytes, bytes]) -> str | None:
    """The key as the route's security schemes read it: ``Authorization: Bearer``, else ``X-API-Key``."""
    auth = headers.get(b"authorization")
    if auth:
        scheme, credentials = get_authorization_scheme_param(auth.decode("latin-1"))
        if scheme.lower() == "bearer" and credentials:
            return credentials
    key = headers.get(b"x-api-key")
    return key.decode("latin-1") if key else None


class BodyTooLargeError(Exception):
    pass


class BodyTimeoutError(Exception):
    pass


class RequestGate:
    """ASGI middleware; see the module's note. ``routes`` gives the app's routes (read once, at the first request)."""

    def __init__(self, app: Callable[..., Awaitable[None]], routes: Callable[[], Sequence[BaseRoute]], ctx: Any,
                 body_timeout: float = 30.0) -> None:
        self.app, self.routes, self.ctx, self.body_timeout = app, routes, ctx, body_timeout
        self._rules: list[RouteRule] | None = None

    def _match(self, scope: Scope) -> tuple[RouteRule | None, dict[str, Any]]:
        if self._rules is None:
            self._rules = route_rules(self.routes(), self.ctx.config.limits)
        for rule in self._rules:
            match, child = rule.matcher.matches(scope)
            if match is Match.FULL:
                return rule, child
        return None, {}  # no route (404) or another method (405): the small default budget, no key to check

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rule, child = self._match(scope)
        if rule is not None:
            scope.setdefault("route", rule.route)  # a refusal here is still labelled by its route template
        limit = rule.budget if rule is not None else self.ctx.config.limits.max_json_bytes
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        has_body = (length is not None and length != b"0") or b"transfer-encoding" in headers
        if rule is not None and rule.check is not None:
            collection = (child.get("path_params") or {}).get("collection")
            try:
                scope["facewise.principal"] = await run_in_threadpool(rule.check.authorize, self.ctx,
                                                                      _token(headers), collection)
            except ApiError as exc:
                await _answer(send, exc.status, exc.code, without_paths(exc.message), exc.headers, close=has_body)
                return
        if length is not None and length.isdigit() and int(length) > limit:
            await _too_large(send, limit)
            return
        await self._guarded(scope, receive, send, limit, has_body)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send, limit: int, has_body: bool) -> None:
        seen = 0
        state = {"started": False, "failed": "", "body_done": not has_body}

        async def gated_receive() -> Message:
            nonlocal seen
            if state["body_done"]:  # the body is in: the app waits for a disconnect, as long as it likes
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.body_timeout)
            except TimeoutError:
                state["failed"] = "timeout"
                raise BodyTimeoutError from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    state["failed"] = "too_large"
                    raise BodyTooLargeError
                state["body_done"] = not message.get("more_body", False)
            return message

        async def guarded_send(message: Message) -> None:
            # FastAPI turns an error while reading the body into a 400: answer 413 / 408 in its place.
            if state["failed"]:
                if message["type"] == "http.response.start" and not state["started"]:
                    state["started"] = True
                    await self._refuse(send, str(state["failed"]), limit)
                return
            state["started"] = state["started"] or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, gated_receive, guarded_send)
        except (BodyTooLargeError, BodyTimeoutError):
            if not state["started"]:
                await self._refuse(send, str(state["failed"]), limit)

    async def _refuse(self, send: Send, why: str, limit: int) -> None:
        if why == "too_large":
            await _too_large(send, limit)
        else:
            await _answer(send, 408, "request_timeout", f"no byte of the request body arrived for "
                          f"{self.body_timeout:g} s; the connection is closed", close=True)


async def _too_large(send: Send, limit: int) -> None:
    await _answer(send, 413, "payload_too_large", f"request body exceeds the {limit}-byte limit of this route",
                  close=True)


async def _answer(send: Send, status: int, code: str, message: str, headers: dict[str, str] | None = None,
                  close: bool = False) -> None:
    body = json.dumps(error_body(code, message)).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    if close:  # the body the client may still be sending is never read
        raw.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


# -- JSON bodies: parsed off the event loop, depth first --------------------------------------------------
_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def json_depth(body: bytes) -> int:
    """How deep the arrays and objects of a JSON text nest (strings skipped), without parsing it."""
    depth = deepest = 0
    for b in _STRING.sub(b"", body).translate(None, _NOT_BRACKETS):
        if b in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def parse_json(body: bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """A request body's JSON value: 422 ``json_too_deep`` past ``max_depth`` levels (checked before parsing),
    FastAPI's own 422 for text that is not JSON."""
    if json_depth(body) > max_depth:
        raise ApiError(422, "json_too_deep", f"the request body's JSON nests more than {max_depth} levels deep")
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        pos = getattr(exc, "pos", getattr(exc, "start", 0))
        raise RequestValidationError([{"type": "json_invalid", "loc": ("body", pos), "msg": "JSON decode error",
                                       "input": {}, "ctx": {"error": str(exc)}}]) from None


def _is_json(request: Request) -> bool:
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return kind.startswith("application/") and (kind.endswith("/json") or kind.endswith("+json"))


_UNPARSED = object()


class JsonRequest(Request):
    """A request whose JSON body was parsed by :func:`parse_json` in a worker thread (FastAPI asks ``json()``)."""

    parsed: Any = _UNPARSED

    async def json(self) -> Any:
        if self.parsed is _UNPARSED:
            self.parsed = await run_in_threadpool(parse_json, await self.body())
        return self.parsed


async def with_json_parsed(request: Request) -> Request:
    """The request to hand to a route with a JSON body: parsed now (its errors answer before the route runs)."""
    if not _is_json(request):
        return request
    wrapped = JsonRequest(request.scope, request.receive)
    body = await wrapped.body()
    if body:
        await wrapped.json()
    return wrapped
