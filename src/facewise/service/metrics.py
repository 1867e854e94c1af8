"""Request counts and latencies per route, in the Prometheus text format (``GET /metrics``)."""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Label values come from this fixed set only, so no client can grow /metrics: any other method name (h11 accepts
# any token) is "other", any path no route matched (or a method its route does not serve) is "unmatched"; the
# route label is always a template of the API, never a path a client sent.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "other"
UNMATCHED = "unmatched"


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """Thread-safe counters and histograms keyed by (method, route template, status)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count: dict[tuple[str, str, str], int] = {}
        self._hist: dict[tuple[str, str], list[float]] = {}  # bucket counts..., sum, count
        self.started = time.time()
        self.gauges: dict[str, Callable[[], dict[str, float]]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        method = method if method in METHODS else OTHER_METHOD
        status = status if 100 <= status <= 599 else 0
        with self._lock:
            key = (method, route, str(status))
            self._count[key] = self._count.get(key, 0) + 1
            if status == 401:  # refused for its key: counted, not timed (a key-less flood adds no histogram)
                return
            h = self._hist.setdefault((method, route), [0.0] * (len(BUCKETS) + 2))
            i = bisect.bisect_left(BUCKETS, seconds)
            if i < len(BUCKETS):
                h[i] += 1
            h[-2] += seconds
            h[-1] += 1

    def render(self) -> str:
        lines = ["# HELP facewise_http_requests_total HTTP requests by method, route and status.",
                 "# TYPE facewise_http_requests_total counter"]
        with self._lock:
            counts = sorted(self._count.items())
            hists = sorted((k, list(v)) for k, v in self._hist.items())
        for (method, route, status), n in counts:
            lines.append(f'facewise_http_requests_total{{method="{method}",route="{_esc(route)}",'
                         f'status="{status}"}} {n}')
        lines += ["# HELP facewise_http_request_duration_seconds Time to answer, by method and route.",
                  "# TYPE facewise_http_request_duration_seconds histogram"]
        for (method, route), h in hists:
            labels = f'method="{method}",route="{_esc(route)}"'
            cumulative = 0.0
            for le, count in zip(BUCKETS, h, strict=False):
                cumulative += count
                lines.append(f'facewise_http_request_duration_seconds_bucket{{{labels},le="{le}"}} {cumulative:g}')
            lines.append(f'facewise_http_request_duration_seconds_bucket{{{labels},le="+Inf"}} {h[-1]:g}')
            lines.append(f"facewise_http_request_duration_seconds_sum{{{labels}}} {h[-2]:.6f}")
            lines.append(f"facewise_http_request_duration_seconds_count{{{labels}}} {h[-1]:g}")
        lines += ["# HELP facewise_uptime_seconds Seconds since the service started.",
                  "# TYPE facewise_uptime_seconds gauge", f"facewise_uptime_seconds {time.time() - self.started:.1f}"]
        for name, fn in sorted(self.gauges.items()):
            lines += [f"# TYPE {name} gauge"]
            for label, value in sorted(fn().items()):
                lines.append(f'{name}{{{label}}} {value:g}' if label else f"{name} {value:g}")
        return "\n".join(lines) + "\n"


class MetricsMiddleware:
    """Times every HTTP request; the route is the matched template (``/v1/collections/{collection}``)."""

    def __init__(self, app: Callable[..., Awaitable[None]], metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def send_status(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.observe(scope["method"], route_label(scope), status["code"], time.perf_counter() - start)


def route_label(scope: MutableMapping[str, Any]) -> str:
    """The route template that answered (``/v1/collections/{collection}``); ``unmatched`` for a path no route
    matched and for a method the matched route does not serve (a 405: FastAPI still names the route), so the
    series are at most one per route and method the API declares, whatever clients send."""
    route = scope.get("route")  # set by FastAPI for a matched route, also for a partial (wrong method) match
    path = getattr(route, "path", None)
    if isinstance(path, str):
        methods = getattr(route, "methods", None)
        if not methods or scope["method"] in methods or (scope["method"] == "HEAD" and "GET" in methods):
            return path
        return UNMATCHED
    return "/static/*" if scope["path"].startswith("/static/") else UNMATCHED
