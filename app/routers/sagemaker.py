"""The SageMaker serving contract: ``GET /ping`` and ``POST /invocations`` on one port."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from app.answers import npy_answer
from app.auth import require_api_key_on_invocations
from app.bodies import body_matrix
from app.routers import get_service
from app.routing import answer, stamp
from app.schemas import (
    ERROR_RESPONSES,
    INVOCATIONS_CSV,
    INVOCATIONS_JSONLINES,
    PREDICT_REQUEST,
    ExecutionParameters,
    InvocationsResponse,
    StatusResponse,
)
from app.transport import (
    CSV,
    JSON,
    JSONLINES,
    NPY,
    csv_response,
    json_response,
    jsonable,
    negotiate,
    off_loop,
    read_body,
    require_content_type,
)
from core.transform import MIB, concurrent_transforms

router = APIRouter(tags=["sagemaker"])


@router.get("/ping", response_model=StatusResponse, responses={503: ERROR_RESPONSES[503]})
async def ping(request: Request) -> StatusResponse:
    """SageMaker health check: 200 only when the model is loaded and ready."""
    get_service(request)
    return StatusResponse(status="ok")


@router.post(
    "/invocations",
    dependencies=[Depends(require_api_key_on_invocations)],
    responses={
        200: {
            "model": InvocationsResponse,
            "content": {
                CSV: {"schema": {"type": "string"}},
                JSONLINES: {"schema": {"type": "string"}},
                NPY: {"schema": {"type": "string", "format": "binary"}},
            },
            "description": "JSON; with Accept: text/csv one line per row (the prediction, then "
            "the class probabilities for classifiers); with Accept: application/jsonlines one "
            "JSON answer per row; with Accept: application/x-npy the predictions as a NumPy "
            ".npy array (as the SageMaker scikit-learn container answers).",
        },
        **ERROR_RESPONSES,
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                JSON: {"schema": {"$ref": f"#/components/schemas/{PREDICT_REQUEST}"}},
                CSV: {"schema": {"$ref": f"#/components/schemas/{INVOCATIONS_CSV}"}},
                JSONLINES: {"schema": {"$ref": f"#/components/schemas/{INVOCATIONS_JSONLINES}"}},
                NPY: {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
)
async def invocations(request: Request) -> Response:
    """SageMaker inference: JSON (every accepted shape), headerless CSV rows, JSON Lines or a
    NumPy array in; JSON, CSV, JSON Lines or a NumPy array out according to Accept."""
    service = get_service(request)
    content_type = require_content_type(request, (JSON, CSV, JSONLINES, NPY))
    out = negotiate(
        request, (JSON, CSV, JSONLINES, NPY), service.settings.default_invocations_accept
    )
    body = await read_body(request, service.settings.max_body_bytes)
    X = await off_loop(body, body_matrix, content_type, body, service.schema, service.slices)
    prediction, model = await answer(service, request, X)
    if out == CSV:
        return stamp(csv_response(await off_loop(body, service.answers.csv, prediction)), model)
    if out == JSONLINES:
        text = await off_loop(body, service.answers.jsonlines, prediction)
        return stamp(Response(text, media_type=JSONLINES), model)
    if out == NPY:
        return stamp(Response(npy_answer(prediction), media_type=NPY), model)
    answer_json = {
        "predictions": jsonable(prediction.labels),
        "probabilities": prediction.probabilities,
        "classes": model.classes,
        "model_version": model.version,
    }
    return stamp(await off_loop(body, json_response, answer_json), model)


@router.get("/execution-parameters", response_model=ExecutionParameters)
async def execution_parameters(request: Request) -> ExecutionParameters:
    """Batch Transform's container query: the concurrency and payload this container takes
    (SageMaker asks when the job leaves MaxConcurrentTransforms unset): a request per worker,
    no more than CreateTransformJob allows in flight (100 MB of mini-batches)."""
    settings = request.app.state.settings
    payload_mb = max(1, settings.max_body_bytes // MIB)
    return ExecutionParameters(
        MaxConcurrentTransforms=concurrent_transforms(settings.workers, payload_mb),
        BatchStrategy="MULTI_RECORD",
        MaxPayloadInMB=payload_mb,
    )
