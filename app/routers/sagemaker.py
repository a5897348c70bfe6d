"""The SageMaker serving contract: ``GET /ping`` and ``POST /invocations`` on one port."""

from __future__ import annotations

import numpy as np
import orjson
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from app.auth import require_api_key_on_invocations
from app.inputs import csv_to_matrix, json_to_matrix, jsonlines_to_matrix, parse_json
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
    csv_response,
    json_response,
    jsonable,
    negotiate,
    read_body,
    require_content_type,
)
from core.model import Prediction

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
            },
            "description": "JSON; with Accept: text/csv one line per row (the prediction, then "
            "the class probabilities for classifiers); with Accept: application/jsonlines one "
            "JSON answer per row.",
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
            },
        }
    },
)
async def invocations(request: Request) -> Response:
    """SageMaker inference: JSON (every accepted shape) or headerless CSV rows in; JSON or CSV
    out according to Accept."""
    service = get_service(request)
    content_type = require_content_type(request, (JSON, CSV, JSONLINES))
    out = negotiate(request, (JSON, CSV, JSONLINES))
    body = await read_body(request, service.settings.max_body_bytes)
    if content_type == CSV:
        X = csv_to_matrix(body, service.schema)
    elif content_type == JSONLINES:
        X = jsonlines_to_matrix(body, service.schema)
    else:
        X = json_to_matrix(parse_json(body), service.schema)
    prediction, model = await answer(service, request, X)
    if out == CSV:
        return stamp(csv_response(_csv_lines(prediction)), model)
    if out == JSONLINES:
        return stamp(Response(_jsonlines(prediction), media_type=JSONLINES), model)
    response = json_response(
        {
            "predictions": jsonable(prediction.labels),
            "probabilities": prediction.probabilities,
            "classes": model.classes,
            "model_version": model.version,
        }
    )
    return stamp(response, model)


def _jsonlines(prediction: Prediction) -> bytes:
    """One line per row: the JSON answer that row alone would get (labels, probabilities)."""
    labels = _label_fields(prediction)
    if prediction.probabilities is None:
        lines = [b'{"predictions":[' + label + b"]}" for label in labels]
    else:
        rows = _probability_rows(prediction.probabilities)
        lines = [
            b'{"predictions":[' + label + b'],"probabilities":[[' + row + b"]]}"
            for label, row in zip(labels, rows, strict=True)
        ]
    return b"\n".join(lines) + b"\n"


def _label_fields(prediction: Prediction) -> list[bytes]:
    """Each label as JSON: numbers serialised by orjson at once, text one by one."""
    labels = prediction.labels
    if labels.dtype.kind in "biuf":
        return orjson.dumps(labels, option=orjson.OPT_SERIALIZE_NUMPY)[1:-1].split(b",")
    return [orjson.dumps(label) for label in labels.tolist()]


def _probability_rows(probabilities: np.ndarray) -> list[bytes]:
    """Each row's probabilities as comma-separated JSON numbers (shortest round trip)."""
    matrix = orjson.dumps(np.ascontiguousarray(probabilities), option=orjson.OPT_SERIALIZE_NUMPY)
    return matrix[2:-2].split(b"],[")


@router.get("/execution-parameters", response_model=ExecutionParameters)
async def execution_parameters(request: Request) -> ExecutionParameters:
    """Batch Transform's container query: the concurrency and payload this container takes
    (SageMaker asks when the job leaves MaxConcurrentTransforms unset)."""
    settings = request.app.state.settings
    return ExecutionParameters(
        MaxConcurrentTransforms=settings.workers,
        BatchStrategy="MULTI_RECORD",
        MaxPayloadInMB=max(1, settings.max_body_bytes // (1024 * 1024)),
    )


def _csv_lines(prediction: Prediction) -> bytes:
    """One line per row: the label, then the class probabilities for classifiers."""
    if prediction.labels.dtype.kind in "biuf":
        labels = _label_fields(prediction)  # JSON numbers are CSV numbers
    else:
        labels = [_csv_cell(v).encode() for v in prediction.labels.tolist()]
    if prediction.probabilities is None:
        return b"\n".join(labels) + b"\n"
    rows = _probability_rows(prediction.probabilities)
    return b"\n".join([a + b"," + b for a, b in zip(labels, rows, strict=True)]) + b"\n"


def _csv_cell(value: object) -> str:
    """A label as a CSV field: floats round-trip, text is quoted when it must be (RFC 4180)."""
    if isinstance(value, float):
        return repr(value)
    text = str(value)
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text
