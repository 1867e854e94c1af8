"""The HTTP server of ``facewise serve``: uvicorn (h11) with a deadline for request heads, a connection cap and
bounded heads; bodies are timed by the request gate (:mod:`facewise.service.gate`). One server per gallery file:
:func:`lock_gallery`."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

from facewise.errors import GalleryInUseError
from facewise.service.config import ConnectionLimits

log = logging.getLogger(__name__)


def guarded_protocol(limits: ConnectionLimits) -> type[Any]:
    """uvicorn's h11 protocol, closing a connection whose request head does not arrive within
    ``limits.header_timeout`` seconds (from its opening or from its previous answer), and any connection beyond
    ``limits.max_connections`` at once. uvicorn alone waits for a head forever."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11Protocol(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None
        _waiting_after: object = None  # the request cycle before the head we wait for

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > limits.max_connections:
                log.warning("%d connections open: closing a new one from %s (--max-connections)",
                            len(self.connections), self.client[0] if self.client else "?")
                transport.close()
                return
            self._arm()

        def _arm(self) -> None:
            self._disarm()
            self._waiting_after = self.cycle
            self._head_timer = self.loop.call_later(limits.header_timeout, self._head_too_late)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_arrived(self) -> None:
            if self._head_timer is not None and self.cycle is not self._waiting_after:
                self._disarm()

        def _head_too_late(self) -> None:
            self._head_timer = None
            if not self.transport.is_closing():
                self.transport.close()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._head_arrived()

        def on_response_complete(self) -> None:
            self._arm()  # the next request's head has the same deadline (keep-alive closes an idle one sooner)
            super().on_response_complete()
            self._head_arrived()  # a pipelined request may have started already

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return GuardedH11Protocol


def uvicorn_options(limits: ConnectionLimits) -> dict[str, Any]:
    return {"http": guarded_protocol(limits), "timeout_keep_alive": max(1, round(limits.keep_alive)),
            "limit_concurrency": limits.max_connections, "h11_max_incomplete_event_size": limits.max_header_bytes}


def raise_open_file_limit() -> None:
    """The soft limit of open files up to the hard one: connections, models and the gallery all take some."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else max(soft, 65536),
                                                        hard))
        except (ValueError, OSError):
            log.debug("could not raise the open-file limit from %d", soft)


def lock_gallery(db: Path) -> int | None:
    """Hold ``<db>.lock`` (an advisory ``flock``) for as long as the returned descriptor stays open; raise
    :class:`GalleryInUseError` when another server holds it. ``None`` where there is no ``flock`` (not POSIX)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        log.warning("no advisory locks on this system: make sure one server at most serves %s", db)
        return None
    path = db.with_name(db.name + ".lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise GalleryInUseError(f"{db}: another facewise server is serving this gallery (it holds {path.name}); "
                                "stop it first or serve another gallery file: two servers would remove each "
                                "other's video-job files") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def unlock_gallery(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)
