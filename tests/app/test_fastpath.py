"""The lean path answers exactly as the FastAPI router would, and covers the declared checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from starlette.types import Receive, Scope, Send

import app.main
from app.fastpath import HOT_ROUTES, PredictFastPath, hot_routes
from app.main import create_app
from app.settings import AppSettings
from tests.app.conftest import API_KEY, API_KEY_HASH


class PassThrough:
    """Stands in for the fast path: everything goes down FastAPI's router."""

    def __init__(self, app: Any, fastapi_app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


@pytest.fixture(autouse=True)
def _no_mlship_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("MLSHIP_"):
            monkeypatch.delenv(name)


def test_fast_path_runs_exactly_the_dependencies_each_route_declares() -> None:
    for (route, auth), (_, endpoint, _) in zip(hot_routes(), HOT_ROUTES, strict=True):
        assert route.endpoint is endpoint
        assert [d.dependency for d in route.dependencies] == [auth], route.path
        assert route.methods == {"POST"}


REQUESTS: list[tuple[str, dict[str, str], bytes]] = [
    ("/v1/predict", {"X-API-Key": API_KEY}, b"FEATURES"),
    ("/v1/predict", {"Authorization": f"Bearer {API_KEY}"}, b"FEATURES"),
    ("/v1/predict", {}, b"FEATURES"),  # 401
    ("/v1/predict", {"X-API-Key": "wrong"}, b"FEATURES"),  # 403
    ("/v1/predict", {"Authorization": f"Basic {API_KEY}"}, b"FEATURES"),  # 401
    ("/v1/predict", {"X-API-Key": API_KEY}, b'{"features": [1, 2]}'),  # 422
    ("/v1/predict", {"X-API-Key": API_KEY}, b"{not json"),  # 400
    ("/v1/predict", {"X-API-Key": API_KEY, "Content-Type": "text/plain"}, b"FEATURES"),  # 415
    ("/v1/predict", {"X-API-Key": API_KEY, "Accept": "text/csv"}, b"FEATURES"),  # 406
    ("/invocations", {"X-API-Key": API_KEY}, b"FEATURES"),
    ("/invocations", {"X-API-Key": API_KEY, "Accept": "text/csv"}, b"FEATURES"),
    ("/v2/models/mlship/infer", {"X-API-Key": API_KEY}, b"V2"),
    ("/v2/models/other/infer", {"X-API-Key": API_KEY}, b"V2"),  # 404
    ("/v2/models/mlship/versions/VERSION/infer", {"X-API-Key": API_KEY}, b"V2"),
    ("/v2/models/mlship/versions/nope/infer", {"X-API-Key": API_KEY}, b"V2"),
    ("/v2/models/mlship/infer", {}, b"V2"),  # 401
    ("/invocations", {}, b"FEATURES"),  # 401: keys are configured
]


def _answers(bundle: Path, X: np.ndarray) -> list[tuple[int, str, Any]]:
    settings = AppSettings(model_uri=str(bundle), api_key_hashes=[API_KEY_HASH])
    features = json.dumps({"features": X[0].tolist()}).encode()
    v2_body = json.dumps(
        {"inputs": [{"name": "input", "shape": [2, X.shape[1]], "datatype": "FP64",
                     "data": X[:2].ravel().tolist()}]}
    ).encode()  # fmt: skip
    out = []
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        version = client.app.state.service.model.version  # type: ignore[attr-defined]
        for path, headers, body in REQUESTS:
            data = {b"FEATURES": features, b"V2": v2_body}.get(body, body)
            response = client.post(
                path.replace("VERSION", version),
                content=data,
                headers={"Content-Type": "application/json", **headers},
            )
            payload: Any = response.text
            if response.headers.get("content-type", "").startswith("application/json"):
                payload = response.json()
                if isinstance(payload, dict):
                    payload.pop("request_id", None)
                    payload.pop("id", None)
            out.append((response.status_code, response.headers.get("content-type", ""), payload))
    return out


def test_fast_path_answers_exactly_as_the_router(
    monkeypatch: pytest.MonkeyPatch, logistic_bundle: Path, logistic_X: np.ndarray
) -> None:
    fast = _answers(logistic_bundle, logistic_X)
    monkeypatch.setattr(app.main, "PredictFastPath", PassThrough)
    routed = _answers(logistic_bundle, logistic_X)

    assert fast == routed
    statuses = [status for status, _, _ in fast]
    assert statuses == [
        200,
        200,
        401,
        403,
        401,
        422,
        400,
        415,
        406,
        200,
        200,
        200,
        404,
        200,
        404,
        401,
        401,
    ]


def test_fast_path_serves_prediction_routes_without_the_router(
    logistic_bundle: Path, logistic_X: np.ndarray
) -> None:
    fastapi_app = create_app(AppSettings(model_uri=str(logistic_bundle)))
    body = json.dumps({"features": logistic_X[0].tolist()}).encode()

    async def router_must_not_be_called(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError(f"{scope['path']} went down the FastAPI router")

    fast = PredictFastPath(router_must_not_be_called, fastapi_app)
    sent: list[dict[str, Any]] = []

    async def run() -> None:
        async with fastapi_app.router.lifespan_context(fastapi_app):
            scope = {
                "type": "http", "method": "POST", "path": "/v1/predict",
                "raw_path": b"/v1/predict", "root_path": "", "query_string": b"",
                "app": fastapi_app, "state": {"request_id": "r1"},
                "headers": [(b"content-type", b"application/json")],
            }  # fmt: skip

            async def receive() -> dict[str, Any]:
                return {"type": "http.request", "body": body, "more_body": False}

            async def send(message: Any) -> None:
                sent.append(message)

            await fast(scope, receive, send)

    import asyncio

    asyncio.run(run())

    assert sent[0]["status"] == 200
    assert json.loads(sent[1]["body"])["request_id"] == "r1"
