"""``facewise serve`` (the REST API and web page) and ``facewise keys create|list|revoke``."""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from facewise.cli.common import (
    DEFAULT_GALLERY,
    DbOpt,
    GalleryOpt,
    JsonOpt,
    ProfileOpt,
    _emit_json,
    app,
    choice,
    err,
    handled,
    out,
)
from facewise.errors import FacewiseError, NotFoundError, install_hint

log = logging.getLogger(__name__)

keys_app = typer.Typer(help="API keys of the service: create, list, revoke.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")

DEFAULT_DB = Path("facewise.db")


def _need_service_extra() -> None:
    try:
        import fastapi  # noqa: F401
        import multipart  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise FacewiseError(f"the service needs the 'service' extra ({exc}): {install_hint('service')}") from None


@app.command()
def serve(
    db: GalleryOpt = DEFAULT_GALLERY,
    host: Annotated[str, typer.Option(help="Address to listen on (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port.")] = 8000,
    profile: ProfileOpt = "default",
    max_upload_mb: Annotated[float, typer.Option(min=0.001, help="Largest image upload, MiB.")] = 16.0,
    max_pixels: Annotated[int, typer.Option(min=1, help="Largest image, pixels (width x height).")] = 40_000_000,
    max_request_pixels: Annotated[int, typer.Option(
        min=1, help="All images of one request together, pixels.")] = 80_000_000,
    max_decode_mb: Annotated[float, typer.Option(
        min=1.0, help="Memory one image may take while it is decoded (estimated from its header), MiB.")] = 400.0,
    max_faces: Annotated[int, typer.Option(min=1, help="Faces analysed per image (the largest).")] = 40,
    max_video_mb: Annotated[float, typer.Option(min=0.001, help="Largest video upload, MiB.")] = 200.0,
    max_video_pixels: Annotated[int, typer.Option(min=1, help="Largest video frame, pixels.")] = 3840 * 2160,
    max_video_seconds: Annotated[float, typer.Option(min=0.1, help="Longest video, seconds.")] = 3600.0,
    busy_per_key: Annotated[int, typer.Option(
        min=0, help="Image requests one key may run at once (0 = half the CPU workers); more wait in line.")] = 0,
    busy_waiting: Annotated[int, typer.Option(
        min=0, help="Image requests of one key that may wait in line (429 beyond).")] = 16,
    jobs_per_key: Annotated[int, typer.Option(min=1, help="Video jobs queued or running per key.")] = 2,
    jobs_total: Annotated[int, typer.Option(min=1, help="Video jobs queued or running in all.")] = 16,
    job_timeout: Annotated[float, typer.Option(min=1.0, help="Longest a video job may run, seconds.")] = 1800.0,
    live_per_key: Annotated[int, typer.Option(min=1, help="Live camera sessions open per key.")] = 2,
    live_total: Annotated[int, typer.Option(min=1, help="Live camera sessions open in all.")] = 32,
    live_max_seconds: Annotated[float, typer.Option(min=1.0, help="Longest a live session lives, seconds.")]
    = 600.0,
    live_idle_seconds: Annotated[float, typer.Option(min=1.0, help="A live session without frames this long "
                                                     "ends, seconds.")] = 60.0,
    header_timeout: Annotated[float, typer.Option(
        min=0.5, help="Seconds a request's head may take to arrive (from the connection or the previous answer); "
                      "then the connection is closed.")] = 10.0,
    body_timeout: Annotated[float, typer.Option(
        min=0.5, help="Seconds a request body may go without a byte (408 and the connection is closed).")] = 30.0,
    keep_alive: Annotated[float, typer.Option(min=1.0, help="Seconds an idle keep-alive connection stays open.")]
    = 5.0,
    max_connections: Annotated[int, typer.Option(
        min=1, help="Open connections at most: a request arriving while that many are open gets 503, a "
                    "connection beyond them is closed at once.")] = 200,
    trusted_proxy: Annotated[list[str] | None, typer.Option(
        "--trusted-proxy", help="Believe X-Forwarded-For from this address or network (repeatable). Default: none."
    )] = None,
    rate: Annotated[float, typer.Option(min=0.001, help="Requests per second per key (token bucket).")] = 10.0,
    burst: Annotated[int, typer.Option(min=1, help="Burst size per key.")] = 40,
    cors_origin: Annotated[list[str] | None, typer.Option(
        "--cors-origin", help="Allow browser calls from this origin (repeatable). Default: no CORS.")] = None,
    workers: Annotated[int, typer.Option(min=0, help="CPU threads for image work (0 = one per core).")] = 0,
    thumbnails: Annotated[bool, typer.Option(help="Keep a small JPEG of each enrolled face.")] = True,
    key_file: Annotated[Path | None, typer.Option(
        help="Where the first-start admin key goes without a terminal (default <db>.admin-key).")] = None,
    state: Annotated[Path, typer.Option(
        help="With a server gallery (postgresql://, milvus://): the service's own SQLite file (API keys, audit "
             "log, thumbnails; video uploads go to <state>.jobs/). A SQLite gallery keeps them in itself.")]
        = Path("facewise-service.db"),
) -> None:
    """Run the REST API and the web page (http://HOST:PORT/, API docs at /docs)."""
    from facewise.service.config import (
        MIB,
        ConnectionLimits,
        JobLimits,
        Limits,
        LiveLimits,
        RateLimit,
        ServiceConfig,
    )

    with handled():
        _need_service_extra()
        import uvicorn

        from facewise.gallery.open import is_server_address
        from facewise.service.app import create_app
        from facewise.service.server import raise_open_file_limit, uvicorn_options

        server_gallery = is_server_address(db)
        config = ServiceConfig(
            db=(state if server_gallery else Path(db)).resolve(), gallery=db if server_gallery else None,
            profile=profile, cors_origins=tuple(cors_origin or ()), workers=workers,
            thumbnails=thumbnails, key_file=key_file,
            limits=Limits(max_image_bytes=int(max_upload_mb * MIB), max_pixels=max_pixels,
                          max_request_pixels=max_request_pixels, max_decode_bytes=int(max_decode_mb * MIB),
                          max_faces=max_faces,
                          max_video_bytes=int(max_video_mb * MIB), max_video_pixels=max_video_pixels,
                          max_video_seconds=max_video_seconds, busy_per_key=busy_per_key,
                          busy_waiting=busy_waiting),
            rate=RateLimit(rate=rate, burst=burst),
            jobs=JobLimits(per_key=jobs_per_key, total=jobs_total, max_seconds=job_timeout),
            live=LiveLimits(per_key=live_per_key, total=live_total, max_seconds=live_max_seconds,
                            idle_seconds=live_idle_seconds),
            trusted_proxies=tuple(trusted_proxy or ()),
            connections=ConnectionLimits(header_timeout=header_timeout, body_timeout=body_timeout,
                                         keep_alive=keep_alive, max_connections=max_connections))
        logging.getLogger("facewise").setLevel(min(logging.getLogger("facewise").getEffectiveLevel(), logging.INFO))
        if not _is_loopback(host):
            log.warning("listening on %s: put a TLS-terminating proxy in front; API keys travel in headers", host)
        _return_big_buffers_to_the_os()
        raise_open_file_limit()
        application = create_app(config)  # GalleryInUseError (exit 2) while another server holds the gallery
        where = _redacted(db) if server_gallery else str(config.db)
        err.print(f"facewise service on http://{host}:{port}/  (API docs: /docs, gallery {where})")
        # X-Forwarded-For / -Proto are believed only from the proxies named with --trusted-proxy (uvicorn's own
        # default would trust them from loopback)
        uvicorn.run(application, host=host, port=port, log_level="warning", access_log=False,
                    server_header=False, timeout_graceful_shutdown=10, proxy_headers=bool(config.trusted_proxies),
                    forwarded_allow_ips=list(config.trusted_proxies) or None, **uvicorn_options(config.connections))


def _return_big_buffers_to_the_os() -> None:
    """glibc keeps freed large buffers in per-thread arenas once its mmap threshold has adapted upwards: after a
    few big images the server would stay hundreds of MB larger for good. A fixed 1 MiB threshold (the same as
    MALLOC_MMAP_THRESHOLD_=1048576) maps every large buffer, so a decoded image goes back to the OS when freed."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        if libc is not None and hasattr(libc, "mallopt"):
            libc.mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD
    except OSError:  # not glibc: nothing to tune
        log.debug("mallopt is not available")


def _redacted(address: str) -> str:
    """A store address without its password or token, for the console."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(address)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    user = parts.username
    return urlunsplit((parts.scheme, f"{user}@{netloc}" if user else netloc, parts.path, "", ""))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _keystore(db: Path, create: bool = False) -> Any:
    """The key table of ``db``; only ``keys create`` may create a missing gallery file (exit 5 otherwise)."""
    from facewise.gallery import SQLiteStore
    from facewise.service.auth import KeyStore

    if not create and not db.is_file():
        raise NotFoundError(f"{db}: no such gallery file (nothing was created; give --db an existing gallery)")
    SQLiteStore(db).close()  # create the schema if new
    return KeyStore(db)


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option("--name", "-n", help="What the key is for.")],
    scope: Annotated[list[str], typer.Option("--scope", "-s", help="admin | enroll | recognize | read (repeat)")],
    collection: Annotated[list[str] | None, typer.Option(
        "--collection", "-c", help="Collection the key may use (repeat); default *")] = None,
    rate: Annotated[float | None, typer.Option(
        help="Requests/second for this key, 0.001..100000 (default: server's).")] = None,
    burst: Annotated[int | None, typer.Option(help="Burst for this key, 1..1000000 (default: server's).")] = None,
    db: DbOpt = DEFAULT_DB, as_json: JsonOpt = False,
) -> None:
    """Create a key and print its token (shown once; only its hash is stored)."""
    from facewise.service.auth import SCOPES, KeySpec

    with handled(as_json):
        for s in scope:
            choice(s, "--scope", tuple(SCOPES))
        spec = KeySpec(name, tuple(scope), tuple(collection or ["*"]), rate, burst).validate()  # before any file
        keys = _keystore(db, create=True)
        info, token = keys.create(spec, created_by="cli")
        keys.close()
        if as_json:
            _emit_json({"key": info.to_dict(), "token": token})
            return
        err.print(f"key {info.id} ({info.name}): scopes {', '.join(info.scopes)}; collections "
                  f"{', '.join(info.collections)}. The token is shown once:")
        out.print(token, soft_wrap=True, highlight=False)


@keys_app.command("list")
def keys_list(db: DbOpt = DEFAULT_DB, as_json: JsonOpt = False) -> None:
    """Every key with its scopes, collections and last use (never the tokens)."""
    with handled(as_json):
        keys = _keystore(db)
        items = keys.list_keys()
        keys.close()
        if as_json:  # one key per line
            for k in items:
                _emit_json(k.to_dict())
            return
        t = Table("id", "name", "scopes", "collections", "created", "last used", "revoked")
        for k in items:
            t.add_row(k.id, k.name, ",".join(k.scopes), ",".join(k.collections), k.created_at,
                      k.last_used_at or "", k.revoked_at or "")
        out.print(t)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(metavar="KEY_ID",
                                                      help="The key's id (see `facewise keys list`).")],
                db: DbOpt = DEFAULT_DB, as_json: JsonOpt = False) -> None:
    """Revoke a key at once (a running server refuses it on its next request)."""
    with handled(as_json):
        keys = _keystore(db)
        keys.revoke(key_id, by="cli")
        keys.close()
        if as_json:
            _emit_json({"revoked": key_id})
        else:
            out.print(f"revoked {key_id}", markup=False)
