"""API keys: SHA-256 digests from env, file or Secrets Manager; 401 missing, 403 wrong."""

from __future__ import annotations

import hashlib
import http.server
import logging
import threading
from pathlib import Path

import boto3
import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from app.main import create_app
from app.settings import AppSettings
from core.errors import ConfigError
from tests.app.conftest import API_KEY, API_KEY_HASH, ClientFactory

MISSING = (
    "An API key is required: send it in the X-API-Key header or as Authorization: Bearer <key>."
)
WRONG = "The API key is not valid for this service."
OTHER_KEY = "another-key"


@pytest.fixture
def keyed(make_client: ClientFactory) -> TestClient:
    other = hashlib.sha256(OTHER_KEY.encode()).hexdigest()
    return make_client(api_key_hashes=f"{API_KEY_HASH},{other}")


def _predict(client: TestClient, X: np.ndarray, **headers: str) -> object:
    return client.post("/v1/predict", json={"features": X[0].tolist()}, headers=headers)


def test_auth_missing_key_is_401(keyed: TestClient, X: np.ndarray) -> None:
    response = _predict(keyed, X)

    assert response.status_code == 401  # type: ignore[attr-defined]
    assert response.json() == {"error": MISSING}  # type: ignore[attr-defined]
    assert response.headers["www-authenticate"].startswith("Bearer")  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "headers",
    [
        {"X-API-Key": "wrong"},
        {"Authorization": "Bearer wrong"},
        {"X-API-Key": API_KEY[:-1]},
    ],
)
def test_auth_wrong_key_is_403(keyed: TestClient, X: np.ndarray, headers: dict[str, str]) -> None:
    response = _predict(keyed, X, **headers)

    assert response.status_code == 403  # type: ignore[attr-defined]
    assert response.json() == {"error": WRONG}  # type: ignore[attr-defined]


def test_auth_basic_scheme_counts_as_missing(keyed: TestClient, X: np.ndarray) -> None:
    response = _predict(keyed, X, Authorization="Basic dXNlcjpwYXNz")

    assert response.status_code == 401  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "headers",
    [
        {"X-API-Key": API_KEY},
        {"Authorization": f"Bearer {API_KEY}"},
        {"X-API-Key": OTHER_KEY},
    ],
)
def test_auth_valid_key_is_accepted(
    keyed: TestClient, X: np.ndarray, headers: dict[str, str]
) -> None:
    assert _predict(keyed, X, **headers).status_code == 200  # type: ignore[attr-defined]


def test_auth_protects_model_routes_and_leaves_health_open(
    keyed: TestClient, X: np.ndarray
) -> None:
    for path in ["/ping", "/healthz", "/readyz", "/v2/health/live", "/v2/health/ready", "/metrics"]:
        assert keyed.get(path).status_code == 200, path
    for path in ["/v2/models/mlship", "/v2/models/mlship/ready"]:
        assert keyed.get(path).status_code == 401, path
        assert keyed.get(path, headers={"X-API-Key": API_KEY}).status_code == 200, path
    infer = {"inputs": [{"name": "x", "shape": [1, 30], "datatype": "FP64", "data": X[0].tolist()}]}
    assert keyed.post("/v2/models/mlship/infer", json=infer).status_code == 401


def test_auth_invocations_guarded_whenever_keys_are_configured(
    make_client: ClientFactory, X: np.ndarray
) -> None:
    # Secure by default: keys configured means keys on every prediction route (on EKS nothing
    # else guards /invocations); only an explicit false opens it, for SageMaker's IAM.
    default = make_client(api_key_hashes=API_KEY_HASH)
    iam_guarded = make_client(api_key_hashes=API_KEY_HASH, invocations_auth=False)
    body = {"features": X[0].tolist()}

    assert default.post("/invocations", json=body).status_code == 401
    assert default.post("/invocations", json=body, headers={"X-API-Key": "no"}).status_code == 403
    ok = default.post("/invocations", json=body, headers={"X-API-Key": API_KEY})
    assert ok.status_code == 200
    assert iam_guarded.post("/invocations", json=body).status_code == 200
    assert iam_guarded.post("/v1/predict", json=body).status_code == 401


@pytest.mark.parametrize("target", ["kubernetes", "sagemaker"])
def test_auth_every_prediction_route_per_deploy_target(
    target: str, aws: str, make_client: ClientFactory, X: np.ndarray
) -> None:
    """The container environment each stack sets: with the stack's keys secret on EKS every
    prediction route needs a key; SageMaker sets no keys (IAM guards /invocations)."""
    from infra import manifests
    from infra.components import sagemaker

    boto3.client("secretsmanager").create_secret(Name="mlship/keys", SecretString=API_KEY_HASH)
    if target == "kubernetes":
        env = manifests.container_environment(
            model_uri="unused", log_level="INFO", api_keys_secret="mlship/keys"
        )
    else:
        env = sagemaker.container_environment(log_level="INFO")
    overrides = {
        k.removeprefix("MLSHIP_").lower(): v
        for k, v in env.items()
        if k not in ("MLSHIP_MODEL_URI", "MLSHIP_MODEL_CACHE_DIR")
    }
    client = make_client(**overrides)
    body = {"features": X[0].tolist()}
    infer = {"inputs": [{"name": "x", "shape": [1, 30], "datatype": "FP64", "data": X[0].tolist()}]}
    routes = [("/invocations", body), ("/v1/predict", body), ("/v2/models/mlship/infer", infer)]

    for path, payload in routes:
        status = client.post(path, json=payload).status_code
        assert status == (401 if target == "kubernetes" else 200), path
        keyed = client.post(path, json=payload, headers={"X-API-Key": API_KEY})
        assert keyed.status_code == 200, path


@pytest.mark.parametrize("value", [",", "", " , ", "\n"])
def test_auth_key_variable_set_without_keys_refuses_to_start(value: str) -> None:
    with pytest.raises(ValidationError, match="MLSHIP_API_KEY_HASHES is set but holds no"):
        AppSettings(api_key_hashes=value)


def test_auth_keys_file_without_keys_refuses_to_start(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    empty = tmp_path / "keys"
    empty.write_text("# nothing yet\n")

    with pytest.raises(ConfigError, match="holds no key digests; add one or unset the variable"):
        make_client(api_keys_file=empty)


def test_auth_open_without_keys(client: TestClient, X: np.ndarray) -> None:
    assert _predict(client, X).status_code == 200  # type: ignore[attr-defined]


def test_auth_keys_from_file(make_client: ClientFactory, X: np.ndarray, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text(f"# rotated 2026-11\n{API_KEY_HASH.upper()}\n")
    client = make_client(api_keys_file=keys)

    assert _predict(client, X).status_code == 401  # type: ignore[attr-defined]
    assert _predict(client, X, **{"X-API-Key": API_KEY}).status_code == 200  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "secret",
    [f'["{API_KEY_HASH}"]', f'{{"api_key_hashes": ["{API_KEY_HASH}"]}}', f"{API_KEY_HASH}\n"],
)
def test_auth_keys_from_secrets_manager(
    aws: str, make_client: ClientFactory, X: np.ndarray, secret: str
) -> None:
    boto3.client("secretsmanager").create_secret(Name="mlship/api-keys", SecretString=secret)
    client = make_client(api_keys_secret="mlship/api-keys")

    assert _predict(client, X).status_code == 401  # type: ignore[attr-defined]
    assert _predict(client, X, **{"X-API-Key": API_KEY}).status_code == 200  # type: ignore[attr-defined]


def test_auth_missing_secret_stops_the_start(aws: str, logistic_bundle: Path) -> None:
    settings = AppSettings(model_uri=str(logistic_bundle), api_keys_secret="mlship/none")

    with (
        pytest.raises(ConfigError, match=r"^MLSHIP_API_KEYS_SECRET=mlship/none: cannot read"),
        TestClient(create_app(settings)),
    ):
        pass


def test_auth_secret_with_a_plain_key_stops_the_start(aws: str, logistic_bundle: Path) -> None:
    boto3.client("secretsmanager").create_secret(Name="k", SecretString=f'["{API_KEY}"]')
    settings = AppSettings(model_uri=str(logistic_bundle), api_keys_secret="k")

    with (
        pytest.raises(ConfigError, match="entry 1 is not a SHA-256 hex digest"),
        TestClient(create_app(settings)),
    ):
        pass


def test_auth_plain_key_in_env_is_refused(logistic_bundle: Path) -> None:
    with pytest.raises(ValidationError, match="MLSHIP_API_KEY_HASHES: entry 1 is not a SHA-256"):
        AppSettings(model_uri=str(logistic_bundle), api_key_hashes=API_KEY)


def test_auth_keys_never_logged(
    keyed: TestClient, X: np.ndarray, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        _predict(keyed, X, **{"X-API-Key": API_KEY})
        _predict(keyed, X, **{"X-API-Key": "wrong-key-value"})

    text = "\n".join(str(r.__dict__) for r in caplog.records)
    assert caplog.records
    assert API_KEY not in text
    assert "wrong-key-value" not in text
    assert repr(X[0, 0]) not in text


def test_auth_secret_read_follows_the_aws_retry_configuration(
    logistic_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Secrets Manager answering 500 (retryable): the start fails after as many attempts as
    AWS_MAX_ATTEMPTS says, the AWS SDKs' standard setting (it was fixed at 5 in code)."""
    attempts: list[str] = []

    class Failing(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            attempts.append(self.headers.get("X-Amz-Target", ""))
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = b'{"__type": "InternalServiceError", "message": "down"}'
            self.send_response(500)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Failing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    for name, value in {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{server.server_port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_MAX_ATTEMPTS": "2",
    }.items():
        monkeypatch.setenv(name, value)
    settings = AppSettings(model_uri=str(logistic_bundle), api_keys_secret="mlship/api-keys")

    try:
        with (
            pytest.raises(ConfigError, match=r"^MLSHIP_API_KEYS_SECRET=mlship/api-keys: cannot"),
            TestClient(create_app(settings)),
        ):
            pass
    finally:
        server.shutdown()
        server.server_close()

    assert attempts == ["secretsmanager.GetSecretValue"] * 2
