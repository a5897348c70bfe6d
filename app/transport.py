"""HTTP plumbing the routers share: bounded body reading, content negotiation, fast JSON."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import orjson
from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from app.errors import BadRequest, NotAcceptable, PayloadTooLarge, UnsupportedMediaType
from core.media import BOM, JSONLINES_ALIASES
from core.media import CSV as CSV
from core.media import JSON as JSON
from core.media import JSONLINES as JSONLINES
from core.media import NPY as NPY

_ORJSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY
# A body from this size is parsed, and its answer written, in a worker thread: meanwhile the
# event loop answers /ping (SageMaker waits 2 s for it) and other requests. Parsing a 100 MiB
# Batch Transform mini-batch of JSON Lines on the loop held /ping for up to 1.3 s; below this
# size the work is too short for a thread hand-off to pay.
OFF_LOOP_BYTES = 1024 * 1024

T = TypeVar("T")


async def off_loop(body: bytes, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` for a request with ``body``: in a worker thread when the body is
    :data:`OFF_LOOP_BYTES` or more, else right here on the event loop."""
    if len(body) < OFF_LOOP_BYTES:
        return fn(*args)
    return await run_in_threadpool(fn, *args)


def media_type(header: str | None) -> str:
    """``"Text/CSV; charset=utf-8"`` -> ``"text/csv"``."""
    return (header or "").split(";", 1)[0].strip().lower()


def require_content_type(
    request: Request, accepted: tuple[str, ...], default: str | None = None
) -> str:
    """The request's media type, or a 415 naming the accepted ones.

    Args:
        default: The media type a request without ``Content-Type`` means, where the protocol
            defines one (Open Inference Protocol: JSON; tritonclient sends no header).
    """
    header = request.headers.get("content-type")
    if header is None and default is not None:
        return default
    got = media_type(header)
    if got in JSONLINES_ALIASES:
        got = JSONLINES
    if got in accepted:
        return got
    if got.endswith("+json") and JSON in accepted:
        return JSON
    shown = got or "none"
    raise UnsupportedMediaType(
        f"Content-Type {shown[:100]!r} is not supported here; send {' or '.join(accepted)}."
    )


def negotiate(request: Request, offered: tuple[str, ...], default: str | None = None) -> str:
    """Pick the response media type from ``Accept`` (first offered wins ties), or 406. A JSON
    Lines alias (:data:`JSONLINES_ALIASES`, taken as a Content-Type too) asks for JSON Lines,
    answered as ``application/jsonlines``.

    Args:
        default: The type to answer when ``Accept`` is absent or ``*/*`` (else the first
            offered).
    """
    accept = request.headers.get("accept")
    if default is not None and (not accept or accept.strip() == "*/*"):
        return default
    if not accept:
        return offered[0]
    best: tuple[float, int, str] | None = None
    for part in accept.split(","):
        fields = part.split(";")
        mt = fields[0].strip().lower()
        if mt in JSONLINES_ALIASES:
            mt = JSONLINES
        q = 1.0
        for param in fields[1:]:
            name, _, value = param.strip().partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q <= 0:
            continue
        for rank, candidate in enumerate(offered):
            if mt in (candidate, "*/*", candidate.split("/")[0] + "/*"):
                key = (q, -rank, candidate)
                if best is None or key > best:
                    best = key
    if best is None:
        raise NotAcceptable(
            f"Accept {accept[:100]!r} asks for nothing this route produces; accept "
            f"{' or '.join(offered)}."
        )
    return best[2]


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, decompressed, refused with 413 as soon as it exceeds ``limit`` bytes.

    ``Content-Encoding: gzip`` or ``deflate`` bodies (tritonclient's request compression) are
    decompressed with the same bound on the result; any other encoding is a 415 naming it.
    """
    decoder = _decoder(request.headers.get("content-encoding"))
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise BadRequest("Content-Length is not a number.") from None
        if size > limit:
            raise PayloadTooLarge(_too_large(size, limit))
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        if decoder is not None:
            chunk = _inflate(decoder, chunk, limit - received + 1)
        received += len(chunk)
        if received > limit:
            raise PayloadTooLarge(_too_large(received, limit))
        chunks.append(chunk)
    if decoder is not None and not decoder.eof:
        raise BadRequest("The compressed body ends early; send the whole compressed stream.")
    body = b"".join(chunks)
    # isspace stops at the first other byte (strip copies); a byte order mark alone is no data
    # either (core.media.without_bom)
    if not body or body.isspace() or _only_bom(body):
        raise BadRequest("The request body is empty; send the rows to predict.")
    return body


def _only_bom(body: bytes) -> bool:
    """A byte order mark and nothing but whitespace after it."""
    if not body.startswith(BOM):
        return False
    rest = body[len(BOM) :]
    return not rest or rest.isspace()


# zlib window bits: gzip framing (16 + 15), zlib framing (15) for deflate.
_ENCODINGS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def _decoder(header: str | None) -> Any:
    encoding = (header or "identity").strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding not in _ENCODINGS:
        raise UnsupportedMediaType(
            f"Content-Encoding {encoding[:40]!r} is not supported; send the body uncompressed, "
            "or compressed with gzip or deflate."
        )
    return zlib.decompressobj(_ENCODINGS[encoding])


def _inflate(decoder: Any, chunk: bytes, room: int) -> bytes:
    """Decompress at most ``room`` bytes of ``chunk``: a small body that inflates to gigabytes
    is stopped at the limit, never expanded in memory."""
    try:
        return bytes(decoder.decompress(chunk, max(room, 1)))
    except zlib.error as e:
        raise BadRequest(f"The body is not valid for its Content-Encoding ({e}).") from e


def _too_large(size: int, limit: int) -> str:
    return (
        f"The body is {size} bytes or more; at most {limit} bytes are accepted "
        "(MLSHIP_MAX_BODY_BYTES). Split the batch."
    )


def jsonable(values: np.ndarray) -> np.ndarray | list[Any]:
    """Labels as orjson can write them: numeric arrays as they are (fast), text as a list
    (orjson serialises no numpy string arrays)."""
    return values if values.dtype.kind in "biuf" else values.tolist()


def json_response(content: Any, status: int = 200) -> Response:
    """Serialise with orjson (numpy arrays included) without a per-response model object."""
    return Response(orjson.dumps(content, option=_ORJSON_OPTIONS), status, media_type=JSON)


def csv_response(body: bytes) -> Response:
    return Response(body, 200, media_type=CSV)
