"""``/openapi.json`` and ``/docs``: every route documented, request schemas exact for the bundle."""

from __future__ import annotations

from fastapi.testclient import TestClient

ROUTES = {
    ("get", "/ping"),
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
    assert set(body["content"]) == {"application/json", "text/csv"}


def test_openapi_declares_api_key_security_on_model_routes_only(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()

    assert set(spec["components"]["securitySchemes"]) == {"ApiKey", "Bearer"}
    assert spec["paths"]["/v1/predict"]["post"]["security"]
    assert "security" not in spec["paths"]["/ping"]["get"]
    assert "security" not in spec["paths"]["/v2/health/ready"]["get"]


def test_docs_page_is_served(client: TestClient) -> None:
    response = client.get("/docs")

    assert response.status_code == 200
    assert "swagger-ui" in response.text.lower()


def test_readme_documents_every_setting() -> None:
    from pathlib import Path

    from app.settings import AppSettings

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()

    missing = [
        f"MLSHIP_{n.upper()}"
        for n in AppSettings.model_fields
        if f"MLSHIP_{n.upper()}`" not in readme
    ]
    assert missing == []
