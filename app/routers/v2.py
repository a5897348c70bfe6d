"""Open Inference Protocol v2 (KServe, MLServer and Triton clients work unchanged)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.responses import Response

from app.auth import Protected
from app.errors import NotFound, UnsupportedMediaType
from app.inputs import parse_json
from app.oip import (
    available_outputs,
    check_outputs,
    metadata,
    request_to_matrix,
    response_outputs,
)
from app.routers import get_service
from app.routing import answer, stamp
from app.schemas import (
    ERROR_RESPONSES,
    ErrorResponse,
    InferenceRequest,
    InferenceResponse,
    LiveResponse,
    ModelMetadata,
    ServerMetadata,
    V2ReadyResponse,
)
from app.service import Service
from app.transport import (
    JSON,
    json_response,
    off_loop,
    read_body,
    require_content_type,
)
from core.errors import InvalidInput

health = APIRouter(prefix="/v2", tags=["v2"])
models = APIRouter(
    prefix="/v2/models",
    tags=["v2"],
    dependencies=[Protected],
    responses={status: ERROR_RESPONSES[status] for status in (401, 403, 503)},
)
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "Unknown model or version"}
}


def _server_version() -> str:
    try:
        return version("mlship")
    except PackageNotFoundError:
        return "0+unknown"


@health.get("", response_model=ServerMetadata)
async def server_metadata() -> ServerMetadata:
    """Server metadata."""
    return ServerMetadata(name="mlship", version=_server_version(), extensions=[])


@health.get("/health/live", response_model=LiveResponse)
async def live() -> LiveResponse:
    """Liveness: the server is up."""
    return LiveResponse(live=True)


@health.get("/health/ready", response_model=V2ReadyResponse, responses={503: ERROR_RESPONSES[503]})
async def ready(request: Request) -> V2ReadyResponse:
    """Readiness: 200 once the model is loaded, 503 before."""
    get_service(request)
    return V2ReadyResponse(ready=True)


def _model(request: Request, name: str, model_version: str | None) -> Service:
    service = get_service(request)
    model = service.model
    if name != model.name:
        raise NotFound(
            f"Model {name[:64]!r} is not served here; this server serves {model.name!r}."
        )
    challenger = service.rollout.challenger.model if service.rollout is not None else None
    if challenger is not None and model_version == challenger.version:
        return service
    if model_version is not None and model_version != model.version:
        raise NotFound(
            f"Model {name!r} has no version {model_version[:64]!r}; the served version is "
            f"{model.version!r}."
        )
    return service


@models.get("/{name}", response_model=ModelMetadata, responses=NOT_FOUND)
async def model_metadata(request: Request, name: str) -> ModelMetadata:
    """Model metadata: input and output tensors."""
    return metadata(_model(request, name, None).model)


@models.get("/{name}/versions/{model_version}", response_model=ModelMetadata, responses=NOT_FOUND)
async def model_version_metadata(request: Request, name: str, model_version: str) -> ModelMetadata:
    """Model metadata of one version."""
    return metadata(_model(request, name, model_version).model)


@models.get("/{name}/ready", response_model=V2ReadyResponse, responses=NOT_FOUND)
async def model_ready(request: Request, name: str) -> V2ReadyResponse:
    """Model readiness."""
    _model(request, name, None)
    return V2ReadyResponse(ready=True)


@models.get(
    "/{name}/versions/{model_version}/ready", response_model=V2ReadyResponse, responses=NOT_FOUND
)
async def model_version_ready(request: Request, name: str, model_version: str) -> V2ReadyResponse:
    """Readiness of one model version."""
    _model(request, name, model_version)
    return V2ReadyResponse(ready=True)


_INFER: dict[str, Any] = {
    "responses": {200: {"model": InferenceResponse}, **ERROR_RESPONSES, **NOT_FOUND},
    "openapi_extra": {
        "requestBody": {
            "required": True,
            "content": {JSON: {"schema": {"$ref": "#/components/schemas/InferenceRequest"}}},
        }
    },
}


@models.post("/{name}/infer", **_INFER)
async def infer(request: Request, name: str) -> Response:
    """Inference: one [rows, features] FP64 tensor, or one tensor per feature."""
    return await _infer(request, _model(request, name, None), None)


@models.post("/{name}/versions/{model_version}/infer", **_INFER)
async def infer_version(request: Request, name: str, model_version: str) -> Response:
    """Inference on one model version."""
    return await _infer(request, _model(request, name, model_version), model_version)


BINARY_HEADER = "inference-header-content-length"


async def _infer(request: Request, service: Service, pin: str | None) -> Response:
    if BINARY_HEADER in request.headers:
        raise UnsupportedMediaType(
            "The binary tensor data extension (Inference-Header-Content-Length) is not "
            "supported; send tensor data as JSON (tritonclient: binary_data=False)."
        )
    # A request without Content-Type is JSON, the protocol's only body (tritonclient sends none).
    require_content_type(request, (JSON,), default=JSON)
    body = await read_body(request, service.settings.max_body_bytes)
    parsed, outputs, X = await off_loop(body, _request_matrix, body, service)
    prediction, model = await answer(service, request, X, pin)
    answer_json = {
        "model_name": model.name,
        "model_version": model.version,
        "id": parsed.id if parsed.id is not None else request.state.request_id,
        "parameters": {"content_type": "np"},
        "outputs": response_outputs(prediction, outputs),
    }
    return stamp(await off_loop(body, json_response, answer_json), model)


def _request_matrix(
    body: bytes, service: Service
) -> tuple[InferenceRequest, list[str], np.ndarray]:
    """The inference request in ``body``, the outputs to answer (those it asks for, checked,
    else all), and its inputs as a matrix."""
    try:
        parsed = InferenceRequest.model_validate(parse_json(body))
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"]) or "body"
        raise InvalidInput(f"{loc}: {err['msg']}") from None
    available = available_outputs(service.model)
    requested = [o.name for o in parsed.outputs] if parsed.outputs is not None else None
    check_outputs(requested, available)
    return parsed, requested or available, request_to_matrix(parsed, service.schema)
