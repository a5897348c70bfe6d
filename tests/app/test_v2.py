"""Open Inference Protocol v2: health, metadata, readiness and inference shapes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from core.model import Model
from tests.app.conftest import ClientFactory


def _tensor(X: np.ndarray, **overrides: Any) -> dict[str, Any]:
    return {
        "inputs": [
            {
                "name": "input-0",
                "shape": list(X.shape),
                "datatype": "FP64",
                "data": X.ravel().tolist(),
            }
            | overrides
        ]
    }


def test_v2_health_and_server_metadata(client: TestClient) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    server = client.get("/v2").json()
    assert server["name"] == "mlship"
    assert server["extensions"] == []


@pytest.mark.parametrize(
    "path", ["/v2/models/mlship", "/v2/models/mlship/versions/test-logistic-0"]
)
def test_v2_model_metadata(client: TestClient, path: str) -> None:
    response = client.get(path)

    assert response.status_code == 200
    assert response.json() == {
        "name": "mlship",
        "versions": ["test-logistic-0"],
        "platform": "sklearn",
        "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, 30]}],
        "outputs": [
            {"name": "predict", "datatype": "INT64", "shape": [-1]},
            {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 2]},
        ],
    }


@pytest.mark.parametrize(
    "path", ["/v2/models/mlship/ready", "/v2/models/mlship/versions/test-logistic-0/ready"]
)
def test_v2_model_ready(client: TestClient, path: str) -> None:
    assert client.get(path).json() == {"ready": True}


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/v2/models/other", "Model 'other' is not served here; this server serves 'mlship'."),
        (
            "/v2/models/other/ready",
            "Model 'other' is not served here; this server serves 'mlship'.",
        ),
        (
            "/v2/models/mlship/versions/9",
            "Model 'mlship' has no version '9'; the served version is 'test-logistic-0'.",
        ),
        (
            "/v2/models/mlship/versions/9/ready",
            "Model 'mlship' has no version '9'; the served version is 'test-logistic-0'.",
        ),
    ],
)
def test_v2_unknown_model_or_version_is_404(client: TestClient, path: str, message: str) -> None:
    response = client.get(path)

    assert response.status_code == 404
    assert response.json() == {"error": message}


@pytest.mark.parametrize(
    "path", ["/v2/models/mlship/infer", "/v2/models/mlship/versions/test-logistic-0/infer"]
)
def test_v2_infer_one_tensor(client: TestClient, X: np.ndarray, path: str) -> None:
    response = client.post(path, json=_tensor(X[:3]) | {"id": "req-7"})

    assert response.status_code == 200
    body = response.json()
    model: Model = client.app.state.service.model  # type: ignore[attr-defined]
    expected = model.predict(X[:3])
    assert expected.probabilities is not None
    assert body["model_name"] == "mlship"
    assert body["model_version"] == "test-logistic-0"
    assert body["id"] == "req-7"
    labels, proba = body["outputs"]
    assert labels == {
        "name": "predict",
        "shape": [3],
        "datatype": "INT64",
        "data": expected.labels.tolist(),
    }
    assert proba["name"] == "predict_proba"
    assert proba["shape"] == [3, 2]
    assert proba["datatype"] == "FP64"
    np.testing.assert_allclose(proba["data"], expected.probabilities.ravel(), rtol=1e-15)


def test_v2_infer_nested_data_single_row_and_per_feature_tensors(
    client: TestClient, X: np.ndarray, feature_names: list[str]
) -> None:
    flat = client.post("/v2/models/mlship/infer", json=_tensor(X[:2])).json()
    nested = client.post("/v2/models/mlship/infer", json=_tensor(X[:2], data=X[:2].tolist())).json()
    per_feature = client.post(
        "/v2/models/mlship/infer",
        json={
            "inputs": [
                {"name": n, "shape": [2], "datatype": "FP64", "data": X[:2, j].tolist()}
                for j, n in enumerate(feature_names)
            ]
        },
    ).json()
    one_row = client.post("/v2/models/mlship/infer", json=_tensor(X[:1], shape=[30])).json()

    assert flat["outputs"] == nested["outputs"] == per_feature["outputs"]
    assert one_row["outputs"][0]["data"] == flat["outputs"][0]["data"][:1]


def test_v2_infer_requested_outputs(client: TestClient, X: np.ndarray) -> None:
    body = {**_tensor(X[:2]), "outputs": [{"name": "predict_proba"}]}

    outputs = client.post("/v2/models/mlship/infer", json=body).json()["outputs"]

    assert [o["name"] for o in outputs] == ["predict_proba"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"inputs": []}, "inputs: List should have at least 1 item after validation, not 0"),
        ({"inputs": [{"name": "x"}]}, "inputs.0.shape: Field required"),
        (
            _tensor(np.ones((2, 30)), shape=[2, 29]),
            "input 'input-0': shape [2, 29] should be [rows, 30] for 30 features (mean_radius, "
            "mean_texture, mean_perimeter, mean_area, mean_smoothness, …).",
        ),
        (
            _tensor(np.ones((2, 30)), shape=[3, 30]),
            "input 'input-0': shape [3, 30] needs 90 values, got 60.",
        ),
        (
            _tensor(np.ones((1, 30)), datatype="BYTES"),
            "input 'input-0': datatype 'BYTES' is not supported; the model takes numbers "
            "(FP64, FP32, INT64, ... or BOOL).",
        ),
        (
            _tensor(np.ones((1, 30)), shape=[-1, 30]),
            "input 'input-0': shape must be a list of non-negative integers.",
        ),
        (
            _tensor(np.ones((1, 30)), data=["a"] * 30),
            "input 'input-0': feature 'mean_radius' (row 0) must be a number or null, not a "
            "string.",
        ),
        (
            {**_tensor(np.ones((1, 30))), "outputs": [{"name": "logits"}]},
            "outputs: unknown output 'logits'; this model has predict, predict_proba.",
        ),
        (
            {
                "inputs": [
                    {"name": "a", "shape": [1], "datatype": "FP64", "data": [1.0]},
                    {"name": "b", "shape": [1], "datatype": "FP64", "data": [1.0]},
                ]
            },
            "inputs: send one tensor of shape [rows, 30], or one tensor per feature named 30 "
            "features (mean_radius, mean_texture, mean_perimeter, mean_area, mean_smoothness, "
            "…); got 2 tensors.",
        ),
    ],
)
def test_v2_infer_invalid_is_422_error_object(
    client: TestClient, body: dict[str, Any], message: str
) -> None:
    response = client.post("/v2/models/mlship/infer", json=body)

    assert response.status_code == 422
    assert response.json() == {"error": message}


def test_v2_infer_unknown_model_is_404(client: TestClient, X: np.ndarray) -> None:
    response = client.post("/v2/models/nope/infer", json=_tensor(X[:1]))

    assert response.status_code == 404
    assert response.json() == {
        "error": "Model 'nope' is not served here; this server serves 'mlship'."
    }


def test_v2_regression_outputs(make_client: ClientFactory, regression_bundle: Path) -> None:
    client = make_client(regression_bundle)

    meta = client.get("/v2/models/mlship").json()
    body = client.post("/v2/models/mlship/infer", json=_tensor(np.zeros((2, 10)))).json()

    assert meta["outputs"] == [{"name": "predict", "datatype": "FP64", "shape": [-1]}]
    assert [o["name"] for o in body["outputs"]] == ["predict"]
    assert body["outputs"][0]["datatype"] == "FP64"
