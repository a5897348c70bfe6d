"""Every client mistake is a 4xx ``{"error": ...}`` naming the problem; a bug is a bare 500."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import AppSettings
from core.model import Prediction
from tests.app.conftest import ClientFactory

EXPECTED = "30 features (mean_radius, mean_texture, mean_perimeter, mean_area, mean_smoothness, …)"


def _error(response: object, status: int) -> str:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert set(body) == {"error"}
    message: str = body["error"]
    return message


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (
            {"features": [1.0, 2.0]},
            422,
            f"features: row 0 has 2 values; the model expects {EXPECTED}.",
        ),
        (
            {"features": [[1.0] * 30, [1.0] * 29]},
            422,
            f"features: row 1 has 29 values; the model expects {EXPECTED}.",
        ),
        (
            {"features": ["a"] + [1.0] * 29},
            422,
            "features: feature 'mean_radius' (row 0) must be a number or null, not a string.",
        ),
        (
            {"features": [None] + [1.0] * 29},
            422,
            "feature 'mean_radius' (row 0) is missing (null or NaN), but the model was trained "
            "without missing values for it; send a number.",
        ),
        (
            b'{"features": [1e999' + b", 1.0" * 29 + b"]}",
            400,
            "The body is not valid JSON: number is infinity when parsed as double: line 1 "
            "column 15 (char 14).",
        ),
        ({"features": []}, 422, "features: the request has no rows; send at least one."),
        ([], 422, "the request has no rows; send at least one."),
        (
            {"features": [1.0] * 30, "extra": 1},
            422,
            "Unexpected key 'extra' beside 'features'. Send {\"features\": [numbers]}, "
            '{"instances": [[numbers], ...]}, {"inputs": [...]}, a list of rows, or objects '
            "keyed by feature name.",
        ),
        (
            {"instances": 3},
            422,
            'instances: expected a list. Send {"features": [numbers]}, {"instances": '
            '[[numbers], ...]}, {"inputs": [...]}, a list of rows, or objects keyed by '
            "feature name.",
        ),
        (
            {"records": [[1.0] * 30]},
            422,
            "records: expected a list of objects keyed by feature name.",
        ),
        (
            {"instances": [[1.0] * 30, {"mean_radius": 1}]},
            422,
            "instances: row 1 is not a list; send each row as a list of 30 numbers or as an "
            "object keyed by feature name.",
        ),
        (
            {"instances": [[[1.0] * 30]]},
            422,
            f"instances: row 0 has 1 values; the model expects {EXPECTED}.",
        ),
        (
            "just a string",
            422,
            'Send {"features": [numbers]}, {"instances": [[numbers], ...]}, {"inputs": [...]}, '
            "a list of rows, or objects keyed by feature name.",
        ),
    ],
)
def test_predict_invalid_body_is_422_naming_the_field(
    client: TestClient, body: object, status: int, message: str
) -> None:
    if isinstance(body, bytes):  # numbers json.dumps cannot write, like 1e999
        response = client.post(
            "/v1/predict", content=body, headers={"content-type": "application/json"}
        )
    else:
        response = client.post("/v1/predict", json=body)
    assert _error(response, status) == message


def test_predict_record_missing_and_unknown_features(
    client: TestClient, X: np.ndarray, feature_names: list[str]
) -> None:
    record = dict(zip(feature_names, X[0].tolist(), strict=True))
    missing = {k: v for k, v in record.items() if k != "mean_area"}
    unknown = {**missing, "colour": 1.0}

    assert _error(client.post("/v1/predict", json=[record, missing]), 422) == (
        f"row 1: feature 'mean_area' is missing; expected {EXPECTED}."
    )
    assert _error(client.post("/v1/predict", json={**record, "colour": 1.0}), 422) == (
        f"row 0: unknown feature 'colour'; expected {EXPECTED}."
    )
    assert _error(client.post("/v1/predict", json={"inputs": [unknown]}), 422) == (
        f"inputs: row 0: feature 'mean_area' is missing; expected {EXPECTED}."
    )


def test_predict_columns_of_unequal_length(
    client: TestClient, X: np.ndarray, feature_names: list[str]
) -> None:
    columns = {name: X[:2, j].tolist() for j, name in enumerate(feature_names)}
    columns["mean_area"] = [1.0]

    assert _error(client.post("/v1/predict", json={"inputs": columns}), 422) == (
        "inputs: columns must all be lists of the same length, one value per row."
    )


def test_predict_malformed_json_is_400(client: TestClient) -> None:
    response = client.post(
        "/v1/predict", content=b'{"features": [1,', headers={"content-type": "application/json"}
    )

    assert _error(response, 400).startswith("The body is not valid JSON: ")


def test_predict_empty_body_is_400(client: TestClient) -> None:
    response = client.post("/v1/predict", content=b"", headers={"content-type": "application/json"})

    assert _error(response, 400) == "The request body is empty; send the rows to predict."


@pytest.mark.parametrize("media", ["text/csv", "application/jsonlines", "application/json"])
@pytest.mark.parametrize("body", [b"\xef\xbb\xbf", b"\xef\xbb\xbf\n", b"\xef\xbb\xbf \r\n"])
def test_a_byte_order_mark_alone_is_an_empty_body(
    client: TestClient, media: str, body: bytes
) -> None:
    """What an empty file saved by a Windows tool holds (core.media.without_bom): no data,
    answered as an empty body in every format (it was 422 "no rows" for CSV, 422 "row 0 is
    empty" for JSON Lines and 400 "not valid JSON" for JSON)."""
    response = client.post("/invocations", content=body, headers={"content-type": media})

    assert _error(response, 400) == "The request body is empty; send the rows to predict."


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_predict_wrong_content_type_is_415(client: TestClient, content_type: str) -> None:
    response = client.post("/v1/predict", content=b"{}", headers={"content-type": content_type})

    assert _error(response, 415) == (
        f"Content-Type {content_type!r} is not supported here; send application/json."
    )


def test_predict_missing_content_type_is_415(client: TestClient) -> None:
    response = client.post("/v1/predict", content=b"{}")

    assert _error(response, 415) == (
        "Content-Type 'none' is not supported here; send application/json."
    )


def test_predict_unacceptable_accept_is_406(client: TestClient, X: np.ndarray) -> None:
    response = client.post(
        "/v1/predict", json={"features": X[0].tolist()}, headers={"accept": "text/csv"}
    )

    assert _error(response, 406) == (
        "Accept 'text/csv' asks for nothing this route produces; accept application/json."
    )


def test_predict_too_many_rows_is_422(make_client: ClientFactory, X: np.ndarray) -> None:
    client = make_client(max_batch_rows=3)

    response = client.post("/v1/predict", json={"instances": X[:4].tolist()})

    assert _error(response, 422) == (
        "instances: the request has 4 rows; at most 3 are accepted per request "
        "(MLSHIP_MAX_BATCH_ROWS). Split the batch."
    )


def test_predict_body_over_limit_is_413(make_client: ClientFactory, X: np.ndarray) -> None:
    client = make_client(max_body_bytes=2048)
    body = {"instances": X[:20].tolist()}

    response = client.post("/v1/predict", json=body)

    assert _error(response, 413).endswith(
        "at most 2048 bytes are accepted (MLSHIP_MAX_BODY_BYTES). Split the batch."
    )


def test_predict_chunked_body_over_limit_is_413(make_client: ClientFactory) -> None:
    client = make_client(max_body_bytes=2048)

    def chunks() -> Iterator[bytes]:
        yield b'{"instances": ['
        for _ in range(200):
            yield b"[" + b"1.0," * 29 + b"1.0],"

    response = client.post(
        "/v1/predict", content=chunks(), headers={"content-type": "application/json"}
    )

    assert "content-length" not in response.request.headers
    assert _error(response, 413).startswith("The body is ")


def test_unknown_route_is_404_and_wrong_method_405(client: TestClient) -> None:
    assert _error(client.get("/nope"), 404) == "No route /nope; see /docs for the API."
    assert _error(client.get("/v1/predict"), 405) == "GET is not allowed on /v1/predict."


def test_routes_before_the_model_is_loaded_are_503(logistic_bundle: Path) -> None:
    # No `with`: the lifespan has not run, so no model is loaded.
    client = TestClient(create_app(AppSettings(model_uri=str(logistic_bundle))))
    not_loaded = "The model is not loaded yet; retry shortly."

    assert _error(client.get("/ping"), 503) == not_loaded
    assert _error(client.get("/readyz"), 503) == not_loaded
    assert _error(client.get("/v2/health/ready"), 503) == not_loaded
    assert _error(client.post("/v1/predict", json={"features": [1.0]}), 503) == not_loaded
    assert _error(client.post("/invocations", json={"features": [1.0]}), 503) == not_loaded
    assert client.get("/healthz").status_code == 200
    assert client.get("/v2/health/live").json() == {"live": True}


def test_a_bug_is_a_500_that_reveals_nothing(make_client: ClientFactory, X: np.ndarray) -> None:
    client = make_client()
    service = client.app.state.service  # type: ignore[attr-defined]

    class Broken:
        async def predict(self, X: np.ndarray) -> Prediction:
            raise RuntimeError("secret internals")

        async def aclose(self) -> None:
            return None

    service.predictor = Broken()
    response = client.post("/v1/predict", json={"features": X[0].tolist()})

    message = _error(response, 500)
    assert message.startswith("Internal error (request id ")
    assert "secret" not in message


def test_values_the_fitted_pipeline_cannot_take_are_422(client: TestClient) -> None:
    # Finite, schema-valid, but the scaler overflows to infinity and scikit-learn refuses it.
    response = client.post("/v1/predict", json={"features": [1e308] * 30})

    assert _error(response, 422) == (
        "The model cannot score these rows (Input X contains infinity or a value too large for "
        "dtype('float64')). Send values in the range of the training data."
    )


@pytest.fixture(scope="module")
def onnx_bundle(logistic_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The logistic bundle with its parity-checked model.onnx, as training writes it."""
    import shutil

    from pipelines.onnx_export import add_onnx
    from tests.app.conftest import test_split

    bundle = tmp_path_factory.mktemp("onnx") / "logistic"
    shutil.copytree(logistic_bundle, bundle)
    add_onnx(bundle, test_split(logistic_bundle))
    return bundle


_EXTREME = [1e308 if j % 2 == 0 else -1e308 for j in range(30)]  # overflows inside the model
_V2 = {"inputs": [{"name": "x", "shape": [1, 30], "datatype": "FP64", "data": _EXTREME}]}


@pytest.mark.parametrize("runtime", ["onnx", "sklearn"])
@pytest.mark.parametrize(
    ("path", "content_type", "body"),
    [
        ("/v1/predict", "application/json", {"features": _EXTREME}),
        ("/invocations", "application/json", {"instances": [[1.0] * 30, _EXTREME]}),
        ("/invocations", "text/csv", f"{','.join(['1.0'] * 30)}\n{','.join(map(str, _EXTREME))}"),
        ("/v2/models/mlship/infer", "application/json", _V2),
    ],
)
def test_no_route_answers_200_with_a_non_finite_prediction(
    make_client: ClientFactory,
    onnx_bundle: Path,
    runtime: str,
    path: str,
    content_type: str,
    body: object,
) -> None:
    # onnxruntime computed NaN probabilities (answered 200 with nulls and an arbitrary label,
    # CSV "0,nan,nan"); scikit-learn refused the row. Both runtimes now answer one 422.
    client = make_client(onnx_bundle, runtime=runtime)  # runtime=onnx refuses to start without it
    data = body if isinstance(body, str) else json.dumps(body)

    response = client.post(path, content=data, headers={"Content-Type": content_type})

    message = _error(response, 422)
    assert message.startswith("The model cannot score these rows (")
    assert message.endswith("). Send values in the range of the training data.")
