"""``POST /v1/predict``: the seed's request and response, batches and named records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from core.model import Model
from tests.app.conftest import ClientFactory, test_split


def test_rest_seed_request_answers_prediction_list(client: TestClient, X: np.ndarray) -> None:
    response = client.post("/v1/predict", json={"features": X[0].tolist()})

    assert response.status_code == 200
    body = response.json()
    model: Model = client.app.state.service.model  # type: ignore[attr-defined]
    expected = model.predict(X[:1])
    assert body["predictions"] == expected.labels.tolist()
    assert expected.probabilities is not None
    np.testing.assert_allclose(body["probabilities"], expected.probabilities, rtol=1e-12)
    assert body["classes"] == [0, 1]
    assert body["model_version"] == "test-logistic-0"
    assert body["request_id"] == response.headers["x-request-id"]


def test_rest_batch_of_rows(client: TestClient, X: np.ndarray) -> None:
    response = client.post("/v1/predict", json={"features": X[:5].tolist()})

    assert response.status_code == 200
    assert len(response.json()["predictions"]) == 5


def test_rest_named_records_equal_positional_rows(
    client: TestClient, X: np.ndarray, feature_names: list[str]
) -> None:
    records = [dict(zip(feature_names, row, strict=True)) for row in X[:4].tolist()]
    # Key order must not matter.
    records[1] = dict(reversed(list(records[1].items())))

    by_name = client.post("/v1/predict", json=records).json()
    by_position = client.post("/v1/predict", json={"instances": X[:4].tolist()}).json()
    single = client.post("/v1/predict", json={"features": records[0]}).json()

    assert by_name["predictions"] == by_position["predictions"]
    assert by_name["probabilities"] == by_position["probabilities"]
    assert single["predictions"] == by_position["predictions"][:1]


def test_rest_every_json_shape_gives_the_same_answer(
    client: TestClient, X: np.ndarray, feature_names: list[str]
) -> None:
    rows = X[:3].tolist()
    records = [dict(zip(feature_names, r, strict=True)) for r in rows]
    columns = {name: X[:3, j].tolist() for j, name in enumerate(feature_names)}
    bodies = [
        {"features": rows},
        {"instances": rows},
        {"instances": records},
        {"inputs": rows},
        {"inputs": records},
        {"inputs": columns},
        {"records": records},
        rows,
        records,
    ]
    answers = [client.post("/v1/predict", json=b).json()["probabilities"] for b in bodies]

    assert all(a == answers[0] for a in answers), answers


def test_rest_request_id_is_honoured(client: TestClient, X: np.ndarray) -> None:
    response = client.post(
        "/v1/predict", json={"features": X[0].tolist()}, headers={"X-Request-ID": "abc-123"}
    )

    assert response.headers["x-request-id"] == "abc-123"
    assert response.json()["request_id"] == "abc-123"


def test_rest_unsafe_request_id_is_replaced(client: TestClient, X: np.ndarray) -> None:
    response = client.post(
        "/v1/predict",
        json={"features": X[0].tolist()},
        headers={"X-Request-ID": "bad id\twith spaces"},
    )

    assert response.headers["x-request-id"] != "bad id\twith spaces"
    assert len(response.headers["x-request-id"]) == 32


def test_rest_regression_has_no_probabilities(
    make_client: ClientFactory, regression_bundle: Path
) -> None:
    X = test_split(regression_bundle)
    client = make_client(regression_bundle)

    body = client.post("/v1/predict", json={"features": X[:2].tolist()}).json()

    model: Model = client.app.state.service.model  # type: ignore[attr-defined]
    np.testing.assert_allclose(body["predictions"], model.predict(X[:2]).labels, rtol=1e-12)
    assert body["probabilities"] is None
    assert body["classes"] is None
