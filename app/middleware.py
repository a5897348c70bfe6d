"""Request ids, the access log and the HTTP metrics, as one pure ASGI middleware (cheaper than
``BaseHTTPMiddleware``, and it sees every response, errors included)."""

from __future__ import annotations

import itertools
import logging
import os
import re
import time

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.logs import request_id_var
from app.metrics import Metrics

log = logging.getLogger("mlship.access")

REQUEST_ID_HEADER = b"x-request-id"
CLIENT_CLOSED_REQUEST = 499
# Honour the caller's id only when it is short and plain, so it is safe to log and echo.
_SAFE_ID = re.compile(rb"^[A-Za-z0-9._:/+=@-]{1,128}$")


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics, access_log: bool = True) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        header = (REQUEST_ID_HEADER, request_id.encode())
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        started = time.perf_counter()
        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_with_id)
        except ClientDisconnect:
            # The client went away mid-request: nothing can be answered, and it is not a
            # server error (counting it as 500 would feed the 5xx alert). 499 is the
            # conventional "client closed request" status (nginx).
            status = CLIENT_CLOSED_REQUEST
        finally:
            elapsed = time.perf_counter() - started
            self.metrics.in_flight.dec()
            template = _route_label(scope)
            method = scope["method"]
            self.metrics.record_request(template, method, status, elapsed)
            if self.access_log:
                log.info(
                    "request",
                    extra={
                        "method": method,
                        "route": template,
                        "path": scope["path"][:200],
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 3),
                    },
                )
            request_id_var.reset(token)


def _route_label(scope: Scope) -> str:
    """The route template (bounded cardinality), never the raw path of an unknown URL."""
    path = getattr(scope.get("route"), "path", None)
    return str(path) if path else "unmatched"


# Generated ids: 32 hex digits, a random per-process prefix and a counter. Unique like a random
# UUID (the prefix is drawn from os.urandom in each worker) without a system call per request.
_ID_PREFIX = os.urandom(8).hex()
_ID_COUNTER = itertools.count(int.from_bytes(os.urandom(6)))


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER and _SAFE_ID.match(value):
            return str(value.decode())
    return f"{_ID_PREFIX}{next(_ID_COUNTER) & 0xFFFFFFFFFFFFFFFF:016x}"


class HeadAsGet:
    """``HEAD`` on a ``GET`` route answers like ``GET`` without the body (RFC 9110 9.3.2).

    FastAPI declares only GET on these routes, so HEAD (load balancers, uptime checks) got a
    405. The response keeps GET's status and headers, Content-Length included.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, without_body)
