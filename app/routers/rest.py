"""The REST API: ``POST /v1/predict`` (the seed's request and response, plus batches)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from app.auth import Protected
from app.jsonlines import json_rows_to_matrix
from app.routers import get_service
from app.routing import answer, stamp
from app.schemas import ERROR_RESPONSES, PREDICT_REQUEST, PredictResponse, json_body
from app.transport import (
    JSON,
    json_response,
    jsonable,
    negotiate,
    off_loop,
    read_body,
    require_content_type,
)

router = APIRouter(prefix="/v1", tags=["rest"], dependencies=[Protected])


@router.post(
    "/predict",
    responses={200: {"model": PredictResponse}, **ERROR_RESPONSES},
    openapi_extra=json_body(PREDICT_REQUEST),
)
async def predict(request: Request) -> Response:
    """Predict one row (`{"features": [numbers]}`) or a batch of rows or named records."""
    service = get_service(request)
    require_content_type(request, (JSON,))
    negotiate(request, (JSON,))
    body = await read_body(request, service.settings.max_body_bytes)
    X = await off_loop(body, json_rows_to_matrix, body, service.schema)
    prediction, model = await answer(service, request, X)
    answer_json = {
        "predictions": jsonable(prediction.labels),
        "probabilities": prediction.probabilities,
        "classes": model.classes,
        "model_version": model.version,
        "request_id": request.state.request_id,
    }
    return stamp(await off_loop(body, json_response, answer_json), model)
