"""Domain exceptions of the service and the one place they become HTTP responses.

Every client mistake is a :class:`ServiceError` subclass with a 4xx status and a message that
names the field and what was expected; anything else that escapes a route is a bug, logged with
its traceback and answered with a 500 that reveals nothing. Every error body is
``{"error": "..."}`` (the Open Inference Protocol's shape, used on every route).
"""

from __future__ import annotations

import logging
from typing import ClassVar

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from core.errors import InvalidInput, MlshipError

log = logging.getLogger("mlship.app")


class ServiceError(MlshipError):
    """A request the service refuses; ``status`` is the HTTP status."""

    status: ClassVar[int] = 400
    headers: ClassVar[dict[str, str] | None] = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(ServiceError):
    """The body cannot be parsed (malformed JSON or CSV)."""

    status = 400


class Unauthorized(ServiceError):
    """No API key was sent."""

    status = 401
    headers: ClassVar[dict[str, str] | None] = {
        "WWW-Authenticate": 'Bearer, ApiKey header="X-API-Key"'
    }


class Forbidden(ServiceError):
    """An API key was sent but it is not one of the configured keys."""

    status = 403


class NotFound(ServiceError):
    """An unknown model name or version (Open Inference Protocol routes)."""

    status = 404


class NotAcceptable(ServiceError):
    """The ``Accept`` header asks for a format the route cannot produce."""

    status = 406


class PayloadTooLarge(ServiceError):
    """The body is larger than ``MLSHIP_MAX_BODY_BYTES``."""

    status = 413


class UnsupportedMediaType(ServiceError):
    """The ``Content-Type`` is not one the route reads."""

    status = 415


class NotReady(ServiceError):
    """The model is not loaded (starting or shutting down)."""

    status = 503


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """The ``{"error": message}`` body every error uses."""
    return Response(
        orjson.dumps({"error": message}),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def _describe_validation(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(x) for x in err.get("loc", ()) if x != "body")
        parts.append(f"{loc}: {err.get('msg', 'invalid')}" if loc else str(err.get("msg")))
    return "; ".join(parts) or "invalid request"


# Errors raised below the service (core's feature rules) that are the client's doing.
_CORE_STATUS: dict[type[MlshipError], int] = {InvalidInput: 422}


def http_status(exc: MlshipError) -> int | None:
    """The HTTP status of a client error, or None for an error that is not the client's."""
    if isinstance(exc, ServiceError):
        return exc.status
    return next((s for t, s in _CORE_STATUS.items() if isinstance(exc, t)), None)


async def _service_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, MlshipError)  # noqa: S101 - registered for this type only
    status = http_status(exc)
    if status is None:
        return await _unexpected(request, exc)
    headers = exc.headers if isinstance(exc, ServiceError) else None
    return error_response(status, str(exc), headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101
    path = request.url.path[:200]
    message = {404: f"No route {path}; see /docs for the API."}.get(
        exc.status_code, str(exc.detail)
    )
    if exc.status_code == 405:
        message = f"{request.method} is not allowed on {path}."
    return error_response(exc.status_code, message, dict(exc.headers or {}))


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)  # noqa: S101
    return error_response(422, _describe_validation(exc))


async def _unexpected(request: Request, exc: Exception) -> Response:
    request_id = getattr(request.state, "request_id", None)
    log.exception("unhandled error", extra={"request_id": request_id})
    return error_response(500, f"Internal error (request id {request_id}); this is a bug.")


def install_error_handlers(app: FastAPI) -> None:
    """Map every exception type to its response, once for the whole app."""
    app.add_exception_handler(MlshipError, _service_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
