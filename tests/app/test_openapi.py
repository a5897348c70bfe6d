"""``/openapi.json`` and ``/docs``: every route documented, request schemas exact for the bundle."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.app.conftest import API_KEY, API_KEY_HASH, ClientFactory

ROUTES = {
    ("get", "/ping"),
    ("get", "/execution-parameters"),
    ("post", "/invocations"),
    ("post", "/v1/predict"),
    ("get", "/v2"),
    ("get", "/v2/health/live"),
    ("get", "/v2/health/ready"),
    ("get", "/v2/models/{name}"),
    ("get", "/v2/models/{name}/versions/{model_version}"),
    ("get", "/v2/models/{name}/ready"),
    ("get", "/v2/models/{name}/versions/{model_version}/ready"),
    ("post", "/v2/models/{name}/infer"),
    ("post", "/v2/models/{name}/versions/{model_version}/infer"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
}


def test_openapi_documents_every_route_with_a_description(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()

    found = {(m, p) for p, ops in spec["paths"].items() for m in ops}
    assert found == ROUTES
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            assert op.get("description") or op.get("summary"), (method, path)


def test_openapi_request_schemas_follow_the_bundle(
    client: TestClient, feature_names: list[str]
) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]

    assert schemas["FeatureRow"]["minItems"] == schemas["FeatureRow"]["maxItems"] == 30
    assert list(schemas["FeatureRecord"]["properties"]) == feature_names
    assert schemas["FeatureRecord"]["required"] == feature_names
    assert schemas["FeatureRecord"]["additionalProperties"] is False
    body = client.get("/openapi.json").json()["paths"]["/invocations"]["post"]["requestBody"]
    assert set(body["content"]) == {
        "application/json",
        "text/csv",
        "application/jsonlines",
        "application/x-npy",
    }


def _secured(spec: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method, path)
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
        if op.get("security")
    }


MODEL_ROUTES = {
    ("post", "/invocations"),
    ("post", "/v1/predict"),
    ("get", "/v2/models/{name}"),
    ("get", "/v2/models/{name}/versions/{model_version}"),
    ("get", "/v2/models/{name}/ready"),
    ("get", "/v2/models/{name}/versions/{model_version}/ready"),
    ("post", "/v2/models/{name}/infer"),
    ("post", "/v2/models/{name}/versions/{model_version}/infer"),
}


def test_openapi_declares_api_key_security_exactly_where_a_key_is_asked(
    make_client: ClientFactory, client: TestClient
) -> None:
    key = {"X-API-Key": API_KEY}
    keyed = make_client(api_key_hashes=API_KEY_HASH).get("/openapi.json", headers=key).json()
    iam = make_client(api_key_hashes=API_KEY_HASH, invocations_auth=False)
    iam_spec = iam.get("/openapi.json", headers=key).json()
    open_spec = client.get("/openapi.json").json()

    assert set(keyed["components"]["securitySchemes"]) == {"ApiKey", "Bearer"}
    assert _secured(keyed) == MODEL_ROUTES
    for method, path in MODEL_ROUTES:  # every route that can answer 401/403 declares them
        assert {"401", "403"} <= set(keyed["paths"][path][method]["responses"]), path
    assert _secured(iam_spec) == MODEL_ROUTES - {("post", "/invocations")}
    assert "401" not in iam_spec["paths"]["/invocations"]["post"]["responses"]
    assert _secured(open_spec) == set()  # no keys configured: nothing asks for one


def test_docs_page_is_served(client: TestClient) -> None:
    response = client.get("/docs")

    assert response.status_code == 200
    assert "swagger-ui" in response.text.lower()


def _names(client: TestClient) -> list[str]:
    names: list[str] = client.app.state.service.model.feature_names  # type: ignore[attr-defined]
    return names


DOCS_ROUTES = ["/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"]


@pytest.mark.parametrize("path", DOCS_ROUTES)
def test_docs_ask_for_the_key_when_keys_are_configured(
    make_client: ClientFactory, path: str
) -> None:
    # The description names every feature, like the v2 metadata, which asks for a key.
    keyed = make_client(api_key_hashes=API_KEY_HASH)

    refused = keyed.get(path)
    wrong = keyed.get(path, headers={"X-API-Key": "not-the-key"})
    with_key = keyed.get(path, headers={"X-API-Key": API_KEY})
    with_bearer = keyed.get(path, headers={"Authorization": f"Bearer {API_KEY}"})

    assert refused.status_code == 401, refused.text
    assert not any(name in refused.text for name in _names(keyed))
    assert "key" in refused.json()["error"].lower()
    assert wrong.status_code == 403
    assert with_key.status_code == with_bearer.status_code == 200
    assert keyed.get("/v2/models/mlship").status_code == 401  # the same rule


@pytest.mark.parametrize("path", DOCS_ROUTES)
def test_docs_are_open_without_keys_and_counted_under_their_route(
    make_client: ClientFactory, path: str
) -> None:
    client = make_client()

    assert client.get(path).status_code == 200
    metrics = client.get("/metrics").text
    assert f'route="{path}"' in metrics


def test_openapi_names_the_features_of_the_bundle(client: TestClient) -> None:
    spec = client.get("/openapi.json").text  # what the key above protects

    assert all(f'"{name}"' in spec for name in _names(client))


def test_readme_documents_every_setting() -> None:
    from pathlib import Path

    from app.settings import AppSettings, variable_of

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()

    # each setting by the variable it is read from (SAGEMAKER_MAX_PAYLOAD_IN_MB is SageMaker's)
    variables = [variable_of(name, {}) for name in AppSettings.model_fields]
    assert "SAGEMAKER_MAX_PAYLOAD_IN_MB" in variables
    assert [v for v in variables if f"{v}`" not in readme] == []


def _body_validator(client: TestClient) -> Any:
    import jsonschema  # type: ignore[import-untyped]

    components = client.get("/openapi.json").json()["components"]
    root = {"$ref": "#/components/schemas/PredictRequest", "components": components}
    return jsonschema.Draft202012Validator(root)


def _bodies(names: list[str], X: Any) -> dict[str, Any]:
    row = X[0].tolist()
    rec = dict(zip(names, row, strict=True))
    return {
        "features row": {"features": row},
        "features rows": {"features": [row, row]},
        "features record": {"features": rec},
        "instances rows": {"instances": [row]},
        "instances records": {"instances": [rec]},
        "inputs rows": {"inputs": [row]},
        "inputs records": {"inputs": [rec, rec]},
        "inputs columns": {"inputs": {n: [v, v] for n, v in rec.items()}},
        "records": {"records": [rec]},
        "bare row": row,
        "bare rows": [row, row],
        "bare records": [rec],
        "one record": rec,
    }


def test_openapi_request_schema_documents_exactly_what_the_parser_accepts(
    client: TestClient, feature_names: list[str], X: Any
) -> None:
    from app.inputs import json_to_matrix
    from core.errors import InvalidInput

    schema = client.app.state.service.schema  # type: ignore[attr-defined]
    validator = _body_validator(client)
    good = _bodies(feature_names, X)
    row, rec = X[0].tolist(), dict(zip(feature_names, X[0].tolist(), strict=True))
    bad = {
        "short row": {"features": row[:-1]},
        "unknown key": {"feature": row},
        "extra key": {"features": row, "id": 1},
        "records of rows": {"records": [row]},
        "inputs bare row": {"inputs": row},
        "record with extra": {"instances": [{**rec, "x": 1.0}]},
        "ragged columns": {"inputs": {**{n: [1.0, 2.0] for n in rec}, feature_names[0]: "x"}},
        "string value": {"features": ["1"] * len(row)},
        "empty": {"instances": []},
    }

    for name, body in good.items():
        assert json_to_matrix(body, schema).shape[1] == len(feature_names), name
        assert validator.is_valid(body), name
    for name, body in bad.items():
        with pytest.raises(InvalidInput):
            json_to_matrix(body, schema)
        assert not validator.is_valid(body), name
