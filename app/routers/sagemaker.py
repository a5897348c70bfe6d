"""The SageMaker serving contract: ``GET /ping`` and ``POST /invocations`` on one port."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from app.auth import require_api_key_on_invocations
from app.inputs import csv_to_matrix, json_to_matrix, parse_json
from app.routers import get_service
from app.schemas import (
    ERROR_RESPONSES,
    INVOCATIONS_CSV,
    PREDICT_REQUEST,
    InvocationsResponse,
    StatusResponse,
)
from app.transport import (
    CSV,
    JSON,
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
            "content": {CSV: {"schema": {"type": "string"}}},
            "description": "JSON, or with Accept: text/csv one line per row: the prediction, "
            "then the class probabilities for classifiers.",
        },
        **ERROR_RESPONSES,
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                JSON: {"schema": {"$ref": f"#/components/schemas/{PREDICT_REQUEST}"}},
                CSV: {"schema": {"$ref": f"#/components/schemas/{INVOCATIONS_CSV}"}},
            },
        }
    },
)
async def invocations(request: Request) -> Response:
    """SageMaker inference: JSON (every accepted shape) or headerless CSV rows in; JSON or CSV
    out according to Accept."""
    service = get_service(request)
    content_type = require_content_type(request, (JSON, CSV))
    out = negotiate(request, (JSON, CSV))
    body = await read_body(request, service.settings.max_body_bytes)
    if content_type == CSV:
        X = csv_to_matrix(body, service.schema)
    else:
        X = json_to_matrix(parse_json(body), service.schema)
    prediction = await service.predict(X)
    if out == CSV:
        return csv_response(_csv_lines(prediction))
    return json_response(
        {
            "predictions": jsonable(prediction.labels),
            "probabilities": prediction.probabilities,
            "classes": service.model.classes,
            "model_version": service.model.version,
        }
    )


def _csv_lines(prediction: Prediction) -> list[str]:
    labels = [_csv_cell(v) for v in prediction.labels.tolist()]
    if prediction.probabilities is None:
        return labels
    return [
        ",".join([label, *(repr(p) for p in probs)])
        for label, probs in zip(labels, prediction.probabilities.tolist(), strict=True)
    ]


def _csv_cell(value: object) -> str:
    """A label as a CSV field: floats round-trip, text is quoted when it must be (RFC 4180)."""
    if isinstance(value, float):
        return repr(value)
    text = str(value)
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text
