"""JSON errors: ``{"error": {"code": ..., "message": ...}}`` with a stable code and an HTTP status."""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from facewise.errors import EnrollmentError, FacewiseError, QualityError

log = logging.getLogger(__name__)

HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 409: "conflict", 413: "payload_too_large",
              415: "unsupported_media_type", 422: "invalid_request", 429: "rate_limited",
              503: "unavailable"}


class ApiError(Exception):
    """An error the service answers with: HTTP status, stable code, message (and optional headers)."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/])/(?:[^\s/'\"]+/)+([^\s/'\"]+)")


def without_paths(message: str) -> str:
    """A message for a client: absolute file paths of the server reduced to their last part."""
    return _ABSOLUTE_PATH.sub(r"\1", message)


# the library's names of what was refused, as the REST API calls them (form fields, query parameters)
_FIELD = {"db": "gallery", "target_far": "target_far", "target_fpir": "target_fpir", "face": "face",
          "profile": "profile"}


def rest_hint(exc: FacewiseError) -> str | None:
    """How to fix ``exc`` in a request, from its structured fields (``None``: nothing to add)."""
    what = getattr(exc, "what", None)
    if exc.code == "invalid_setting":
        return "set a valid target_fpir, target_far or threshold with PATCH on the collection"
    if exc.code == "multiple_faces" or any(getattr(r, "code", None) == "multiple_faces"
                                           for r in getattr(exc, "results", [])):
        return "send face=largest or face=N (for the second image: other_face)"
    if what in _FIELD and exc.valid:
        return f"{_FIELD[what]}: {exc.valid}"
    return None


def status_of(exc: FacewiseError) -> int:
    """The HTTP status of a library error: the one its class carries (facewise/errors.py)."""
    return exc.http_status


def install_error_handlers(app: FastAPI) -> None:
    """Every error leaves the service as the same JSON shape, never as a traceback."""

    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, without_paths(exc.message)), exc.status, headers=exc.headers)

    @app.exception_handler(FacewiseError)
    async def _lib(_: Request, exc: FacewiseError) -> JSONResponse:
        extra: dict[str, Any] = {"reasons": exc.reasons} if isinstance(exc, QualityError) else {}
        if exc.details:  # what was refused, the value, the valid range: the client phrases its own hint
            extra["details"] = {**exc.details, **({"what": _FIELD.get(str(exc.what), exc.what)}
                                                  if "what" in exc.details else {})}
        if isinstance(exc, EnrollmentError):  # each file's outcome, with its reason
            extra["results"] = [r.to_dict() if hasattr(r, "to_dict") else str(r) for r in exc.results]
        hint = rest_hint(exc)
        message = f"{exc} (hint: {hint})" if hint else str(exc)
        return JSONResponse(error_body(exc.code, without_paths(message), **extra), status_of(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [{"loc": [str(x) for x in e.get("loc", ())], "message": e.get("msg", "")} for e in exc.errors()]
        first = details[0] if details else {"loc": [], "message": "invalid request"}
        message = f"{'.'.join(first['loc'])}: {first['message']}"
        return JSONResponse(error_body("invalid_request", message, details=details), 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = HTTP_CODES.get(exc.status_code, "http_error")
        return JSONResponse(error_body(code, str(exc.detail)), exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error in %s %s", request.method, request.url.path)
        return JSONResponse(error_body("internal_error", "internal error (see the server log)"), 500)
