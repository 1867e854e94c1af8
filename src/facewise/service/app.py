"""The FastAPI application: routes, middleware, the web page, health, readiness and metrics."""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles

from facewise import __version__
from facewise.service.auth import BusyLimiter, KeyStore, RateLimiter, bootstrap_admin
from facewise.service.config import ServiceConfig
from facewise.service.deps import Ctx, ServiceContext
from facewise.service.engine import Engines, Thumbnails
from facewise.service.erasure import prepare_file
from facewise.service.errors import error_body, install_error_handlers
from facewise.service.gate import FRAMEWORK, RequestGate, public, route_rules
from facewise.service.jobs import JobManager, VideoRunner, video_runner
from facewise.service.live import LiveSessions
from facewise.service.metrics import Metrics, MetricsMiddleware
from facewise.service.redact_jobs import redact_runner
from facewise.service.schemas import Health, Readiness, contract_openapi, operation_id
from facewise.service.server import lock_gallery, unlock_gallery

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"

DESCRIPTION = """
Face recognition as a service: collections of people, enrolment from uploaded photos, identification,
verification, detection and analysis, and video jobs.

**Keys.** Every `/v1` route needs an API key in `Authorization: Bearer <key>` or `X-API-Key: <key>`.
Scopes: `admin`, `enroll`, `recognize`, `read`; each key is bound to collections (or `*`).
Errors are JSON: `{"error": {"code": "...", "message": "..."}}` with a stable `code`.
"""

CSP = ("default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; style-src 'self'; script-src 'self'; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


class SecurityHeaders:
    """nosniff and no-referrer everywhere; a strict CSP on the web page (not on /docs and /redoc: inline scripts)."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        page = not scope["path"].startswith(("/docs", "/redoc"))

        async def with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                headers += [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
                if page:
                    headers += [(b"content-security-policy", CSP.encode()), (b"x-frame-options", b"DENY")]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


def _fastapi(**kwargs: Any) -> FastAPI:
    """FastAPI whose /docs and /redoc use packaged Swagger UI / ReDoc assets (`fastapi-offline`), so they render
    with no network; plain FastAPI (assets from a CDN) when that package is missing."""
    try:
        from fastapi_offline import FastAPIOffline
    except ImportError:
        log.warning("fastapi-offline is not installed: /docs and /redoc load their scripts from a CDN")
        return FastAPI(**kwargs)
    return FastAPIOffline(static_url="/static/docs", **kwargs)


def build_context(config: ServiceConfig, runner: VideoRunner | None = None) -> ServiceContext:
    """Open the gallery and key store, create the bootstrap key on first start, set up jobs."""
    if not config.db.exists():  # a new gallery holds biometric vectors and key hashes: owner-only
        config.db.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(config.db, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    lock = lock_gallery(config.db)  # before the job sweep: another server's running jobs are not stale
    try:
        return _context(config, runner, lock)
    except BaseException:
        unlock_gallery(lock)
        raise


def _context(config: ServiceConfig, runner: VideoRunner | None, lock: int | None) -> ServiceContext:
    engines = Engines(config.gallery_address, config.profile, config.cpu_workers)
    engines.max_faces = config.limits.max_faces
    engines.ensure_default_collection()
    keys = KeyStore(config.db)
    where = bootstrap_admin(keys, config.bootstrap_key_file, tty=sys.stderr.isatty())
    limits = config.limits
    jobs = JobManager(runner or video_runner, engines.face_wise, video_dir=config.video_dir, gallery=engines,
                      per_key=config.jobs.per_key, total=config.jobs.total, max_seconds=config.jobs.max_seconds,
                      video_limits=(limits.max_video_pixels, limits.max_video_seconds),
                      runners={"redact": redact_runner})
    beside = config.gallery is None  # the service tables share the gallery's SQLite file
    sealer = engines.store if "encryption" in engines.store.capabilities else None  # may be encrypted at rest
    thumbs = Thumbnails(str(config.db), sealer, beside_gallery=beside) if config.thumbnails else None
    if beside:
        prepare_file(str(config.db))  # erasure triggers on the gallery's tables for the service tables beside them
    engines.erasure.subscribe(jobs.erase)
    engines.erasure.subscribe(keys.erase)  # audit payloads, wherever the gallery is kept
    if thumbs is not None:
        engines.erasure.subscribe(thumbs.erase)
    live = LiveSessions(config.live)
    engines.erasure.subscribe(live.erase)
    metrics = Metrics()
    metrics.gauges["facewise_video_jobs"] = jobs.counts
    metrics.gauges["facewise_live_sessions"] = lambda: {"": float(live.count())}
    return ServiceContext(config, engines, keys, RateLimiter(config.rate.rate, config.rate.burst), metrics, jobs,
                          thumbs, BusyLimiter(config.busy_per_key, config.limits.busy_waiting), live, where, lock)


def create_app(config: ServiceConfig, runner: VideoRunner | None = None) -> FastAPI:
    """The service over ``config.db``. ``runner`` replaces the video-job runner (tests, other pipelines)."""
    ctx = build_context(config, runner)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        ctx.jobs.start()
        threading.Thread(target=_warm_up, args=(ctx,), name="facewise-warmup", daemon=True).start()
        yield
        ctx.jobs.stop()
        ctx.engines.close()
        ctx.keys.close()
        if ctx.thumbnails is not None:
            ctx.thumbnails.close()
        unlock_gallery(ctx.lock)

    # redirect_slashes off: Starlette's 307 to the path without its "/" echoes the request's Host in Location
    app = _fastapi(title="facewise", version=__version__, description=DESCRIPTION, lifespan=lifespan,
                  redirect_slashes=False,
                  generate_unique_id_function=operation_id,
                  openapi_tags=[{"name": n} for n in ("collections", "persons", "faces", "recognition", "video",
                                                       "keys", "service")])
    app.state.ctx = ctx
    for route in app.router.routes:  # the framework's own pages (/openapi.json, /docs, /redoc): no key, no body
        route.meta = FRAMEWORK  # type: ignore[attr-defined]
    install_error_handlers(app)
    _install_storage_handlers(app)
    from facewise.service import routes_admin, routes_gallery, routes_jobs, routes_live, routes_recognize

    for module in (routes_admin, routes_gallery, routes_recognize, routes_live, routes_jobs):
        app.include_router(module.router)
    _service_routes(app)
    app.openapi = contract_openapi(app)  # type: ignore[method-assign]
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    route_rules(app.router.routes, config.limits)  # every route declares its budget and key check, or no start

    # Middleware: the last added runs first. Metrics see every answer, 401s and 413s of the gate included; CORS
    # answers preflights before the gate and adds its headers to the gate's refusals.
    app.add_middleware(RequestGate, routes=lambda: app.router.routes, ctx=ctx,
                       body_timeout=config.connections.body_timeout)
    if config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins), allow_credentials=False,
                           allow_methods=["GET", "POST", "PATCH", "DELETE"],
                           allow_headers=["Authorization", "X-API-Key", "Content-Type"])
    app.add_middleware(SecurityHeaders)
    app.add_middleware(MetricsMiddleware, metrics=ctx.metrics)
    return app


def _storage_full(exc: BaseException) -> bool:
    """Is ``exc`` (or what it was raised while handling: a failed rollback hides the cause) a full disk?"""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, sqlite3.Error) and "database or disk is full" in str(seen):
            return True
        if isinstance(seen, OSError) and seen.errno == errno.ENOSPC:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _install_storage_handlers(app: FastAPI) -> None:
    async def storage_error(request: Request, exc: Exception) -> JSONResponse:
        if _storage_full(exc):
            log.error("%s %s: the disk is full (database or disk is full); nothing was stored", request.method,
                      request.url.path)
            return JSONResponse(error_body("storage_full", "the server's disk is full: nothing was stored; "
                                           "try again after an operator has made room"), 507)
        log.exception("unhandled error in %s %s", request.method, request.url.path)
        return JSONResponse(error_body("internal_error", "internal error (see the server log)"), 500)

    app.add_exception_handler(sqlite3.Error, storage_error)
    app.add_exception_handler(OSError, storage_error)


def gallery_problem(ctx: ServiceContext) -> str | None:
    """Why the gallery cannot serve requests now (no server paths in the answer), or ``None``."""
    store = ctx.engines.store
    try:
        store.list_collections()
    except Exception:  # any failure means not ready
        log.warning("readiness: the gallery cannot be read", exc_info=True)
        return "the gallery cannot be read"
    if store.locked:
        return "the gallery is encrypted at rest and this server has no key for it (FACEWISE_KEY_FILE)"
    return None


def _warm_up(ctx: ServiceContext) -> None:
    try:
        ctx.engines.warm_up()
        ctx.engines.analysers.available()
        log.info("models of profile %s loaded; ready", ctx.engines.default_profile)
    except Exception:
        log.exception("loading the models of profile %s failed", ctx.engines.default_profile)


def _service_routes(app: FastAPI) -> None:
    @app.get("/", include_in_schema=False, openapi_extra=public())
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/healthz", tags=["service"], summary="Liveness: the process answers", name="health",
             response_model=Health, openapi_extra=public())
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["service"], summary="Readiness: gallery readable and models loaded", name="ready",
             response_model=Readiness, responses={503: {"model": Readiness, "description": "not ready"}},
             openapi_extra=public())
    def readyz(ctx: Ctx) -> JSONResponse:
        problem = gallery_problem(ctx)
        checks = {"models": ctx.engines.ready(), "gallery": problem is None}
        ok = all(checks.values())
        body: dict[str, Any] = {"status": "ready" if ok else "not ready", "checks": checks}
        if problem:
            body["problem"] = problem
        return JSONResponse(body, 200 if ok else 503)

    @app.get("/metrics", tags=["service"], summary="Prometheus metrics (text format)",
             response_class=PlainTextResponse, name="metrics", openapi_extra=public())
    def metrics(ctx: Ctx) -> PlainTextResponse:
        return PlainTextResponse(ctx.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
