"""Liveness, readiness and the Prometheus endpoint (all open, no API key)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from app.routers import get_service
from app.schemas import ERROR_RESPONSES, ReadyResponse, StatusResponse

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=StatusResponse)
async def healthz() -> StatusResponse:
    """Liveness: the process is up and serving HTTP."""
    return StatusResponse(status="ok")


@router.get("/readyz", response_model=ReadyResponse, responses={503: ERROR_RESPONSES[503]})
async def readyz(request: Request) -> ReadyResponse:
    """Readiness: 200 once the model is loaded and verified, 503 before."""
    service = get_service(request)
    return ReadyResponse(
        status="ready", model_name=service.model.name, model_version=service.model.version
    )


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> Response:
    """Prometheus exposition: HTTP, prediction, model, drift and data-quality metrics (only on
    ``MLSHIP_METRICS_PORT`` when it is set)."""
    metrics_port = request.app.state.settings.metrics_port
    server = request.scope.get("server")
    if metrics_port is not None and (server is None or server[1] != metrics_port):
        raise StarletteHTTPException(status_code=404)
    body, content_type = request.app.state.metrics.exposition()
    return Response(body, media_type=content_type)
