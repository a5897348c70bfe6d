"""Model sources (dir, tar.gz, s3://, models:/), fail-closed loading, settings, lean imports."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import boto3
import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from app.main import create_app
from app.settings import AppSettings
from core.errors import ConfigError, ModelLoadError
from core.sources import resolve_model_uri
from core.transform import MIB
from tests.app.conftest import ClientFactory, test_split


def _predictions(client: TestClient, X: np.ndarray) -> list[int]:
    response = client.post("/v1/predict", json={"instances": X.tolist()})
    assert response.status_code == 200, response.text
    labels: list[int] = response.json()["predictions"]
    return labels


def test_load_from_directory_and_archive_agree(
    make_client: ClientFactory, logistic_bundle: Path
) -> None:
    X = test_split(logistic_bundle)[:20]

    from_dir = make_client(logistic_bundle)
    from_tar = make_client(logistic_bundle / "model.tar.gz")

    assert _predictions(from_dir, X) == _predictions(from_tar, X)


def test_load_from_s3_archive_and_prefix(
    aws: str, make_client: ClientFactory, logistic_bundle: Path, tmp_path: Path
) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="models")
    s3.upload_file(str(logistic_bundle / "model.tar.gz"), "models", "v1/model.tar.gz")
    X = test_split(logistic_bundle)[:5]

    by_key = make_client(model_uri="s3://models/v1/model.tar.gz", model_cache_dir=tmp_path)
    by_prefix = make_client(model_uri="s3://models/v1/", model_cache_dir=tmp_path)

    assert _predictions(by_key, X) == _predictions(by_prefix, X)
    assert list(tmp_path.glob("mlship-model-*/model.tar.gz"))


def test_load_missing_s3_object_stops_the_start(aws: str, tmp_path: Path) -> None:
    boto3.client("s3").create_bucket(Bucket="models")

    with pytest.raises(
        ModelLoadError, match=r"^MLSHIP_MODEL_URI: Could not download s3://models/x/model.tar.gz"
    ):
        resolve_model_uri("s3://models/x", tmp_path)


@pytest.mark.slow
def test_load_from_registry_alias(
    make_client: ClientFactory,
    logistic_bundle: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("mlflow")
    from core.registry import RegistrySettings
    from pipelines.registry import log_run, register

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    settings = RegistrySettings(tracking_uri=uri)
    run_id = log_run(settings, {}, {}, {}, logistic_bundle)
    register(settings, run_id, "champion", {})
    X = test_split(logistic_bundle)[:5]

    client = make_client(model_uri="models:/mlship@champion", model_cache_dir=tmp_path / "cache")

    assert _predictions(client, X) == _predictions(make_client(logistic_bundle), X)


def test_load_registry_uri_without_mlflow_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a)
    )

    with pytest.raises(ModelLoadError, match="needs MLflow, which is not installed here"):
        resolve_model_uri("models:/mlship@champion")


def test_load_unknown_scheme_is_refused() -> None:
    with pytest.raises(ModelLoadError, match="unsupported scheme"):
        resolve_model_uri("gs://bucket/model.tar.gz")


def test_load_missing_bundle_stops_the_start(tmp_path: Path) -> None:
    app = create_app(AppSettings(model_uri=str(tmp_path / "nothing")))

    with pytest.raises(ModelLoadError, match=r"No model bundle at .*nothing"), TestClient(app):
        pass


def test_load_tampered_bundle_stops_the_start(logistic_bundle: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(logistic_bundle, tmp_path / "bundle"))
    golden = json.loads((copy / "golden.json").read_text())
    golden["predictions"][0] = 1 - golden["predictions"][0]
    (copy / "golden.json").write_text(json.dumps(golden))
    app = create_app(AppSettings(model_uri=str(copy)))

    with (
        pytest.raises(ModelLoadError, match=r"golden\.json does not match its checksum"),
        TestClient(app),
    ):
        pass
    assert app.state.service is None


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MLSHIP_MODEL_URI", "s3://b/k.tar.gz")
    monkeypatch.setenv("MLSHIP_PORT", "9000")
    monkeypatch.setenv("MLSHIP_MAX_BATCH_ROWS", "5")
    monkeypatch.setenv("MLSHIP_LOG_LEVEL", "debug")
    monkeypatch.setenv("MLSHIP_API_KEY_HASHES", f"{'a' * 64}, {'B' * 64}")

    settings = AppSettings()

    assert settings.model_uri == "s3://b/k.tar.gz"
    assert settings.port == 9000
    assert settings.max_batch_rows == 5
    assert settings.log_level == "DEBUG"
    assert settings.api_key_hashes == ["a" * 64, "b" * 64]


def test_settings_defaults_match_sagemaker() -> None:
    settings = AppSettings()

    assert settings.model_uri == "/opt/ml/model"
    assert settings.port == 8080
    assert settings.host == "0.0.0.0"  # noqa: S104
    assert settings.graceful_timeout < 30


def test_settings_sagemaker_bind_port_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAGEMAKER_BIND_TO_PORT", "8081")

    assert AppSettings().port == 8081


@pytest.mark.parametrize(
    ("value", "media"),
    [
        ("Text/CSV; charset=utf-8", "text/csv"),
        ("application/x-ndjson", "application/jsonlines"),  # an alias, as in Accept
        ("Application/JSONL", "application/jsonlines"),
    ],
)
def test_settings_default_accept_is_a_media_type(
    monkeypatch: pytest.MonkeyPatch, value: str, media: str
) -> None:
    monkeypatch.setenv("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", value)

    assert AppSettings().default_invocations_accept == media


# SageMaker sets SAGEMAKER_MAX_PAYLOAD_IN_MB in a Batch Transform container to the job's
# MaxPayloadInMB, "the largest size payload that is sent to the container via HTTP" (Amazon
# SageMaker Developer Guide, "Custom Inference Code with Batch Transform"); absent when the job
# leaves MaxPayloadInMB unset. A job created outside mlship (console, SDK Transformer) sets
# no MLSHIP_MAX_BODY_BYTES: the service must take what the job sends.
@pytest.mark.parametrize(
    ("payload_mb", "body_bytes", "limit"),
    [
        (None, None, 6 * MIB),  # no transform job: SageMaker's real-time 6 MiB
        ("20", None, 20 * MIB),  # the job's MaxPayloadInMB
        ("100", None, 100 * MIB),
        ("20", str(30 * MIB), 30 * MIB),  # a larger explicit limit stays
        ("20", str(20 * MIB), 20 * MIB),
    ],
)
def test_settings_body_limit_takes_the_transform_job_payload(
    monkeypatch: pytest.MonkeyPatch, payload_mb: str | None, body_bytes: str | None, limit: int
) -> None:
    if payload_mb is not None:
        monkeypatch.setenv("SAGEMAKER_MAX_PAYLOAD_IN_MB", payload_mb)
    if body_bytes is not None:
        monkeypatch.setenv("MLSHIP_MAX_BODY_BYTES", body_bytes)

    assert AppSettings().max_body_bytes == limit


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"SAGEMAKER_MAX_PAYLOAD_IN_MB": "20", "MLSHIP_MAX_BODY_BYTES": str(20 * MIB - 1)},
            "MLSHIP_MAX_BODY_BYTES=20971519 is below the 20 MiB mini-batches this transform job "
            "sends (SAGEMAKER_MAX_PAYLOAD_IN_MB=20): each larger one would be refused with 413. "
            "Raise it to at least 20971520, or unset it to take the job's MaxPayloadInMB.",
        ),
        (
            {"SAGEMAKER_MAX_PAYLOAD_IN_MB": "0"},
            "SAGEMAKER_MAX_PAYLOAD_IN_MB=0: the transform job may send payloads of any size "
            "(MaxPayloadInMB=0, chunked), and mlship takes bodies up to 100 MiB. Set the job's "
            "MaxPayloadInMB between 1 and 100.",
        ),
        (
            {"SAGEMAKER_MAX_PAYLOAD_IN_MB": "101"},
            "SAGEMAKER_MAX_PAYLOAD_IN_MB: Input should be less than or equal to 100.",
        ),
        (
            {"SAGEMAKER_MAX_PAYLOAD_IN_MB": "6MB"},
            "SAGEMAKER_MAX_PAYLOAD_IN_MB: Input should be a valid integer, unable to parse "
            "string as an integer.",
        ),
        (
            {"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "application/xml"},
            "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT: Input should be 'application/json', "
            "'text/csv', 'application/jsonlines' or 'application/x-npy'.",
        ),
        # an error names the variable the value came from, of those a setting reads
        (
            {"SAGEMAKER_BIND_TO_PORT": "http"},
            "SAGEMAKER_BIND_TO_PORT: Input should be a valid integer, unable to parse string as "
            "an integer.",
        ),
        (
            {"MLSHIP_PORT": "http", "SAGEMAKER_BIND_TO_PORT": "8081"},
            "MLSHIP_PORT: Input should be a valid integer, unable to parse string as an integer.",
        ),
    ],
)
def test_settings_refuse_a_body_limit_below_the_transform_job_payload(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    from app.serve import load_settings

    for name, value in env.items():
        monkeypatch.setenv(name, value)

    with pytest.raises(ConfigError) as e:
        load_settings()

    assert str(e.value) == message


@pytest.mark.parametrize(
    ("env", "value", "match"),
    [
        ("MLSHIP_GRACEFUL_TIMEOUT", "30", "less than 30"),
        ("MLSHIP_PORT", "0", "greater than or equal to 1"),
        ("MLSHIP_API_KEYS_FILE", "/nonexistent/keys", "MLSHIP_API_KEYS_FILE=/nonexistent/keys"),
        ("MLSHIP_LOG_LEVEL", "LOUD", "Input should be"),
        ("MLSHIP_METRICS_PORT", "8080", "MLSHIP_METRICS_PORT is the service's own port 8080"),
    ],
)
def test_settings_refuse_unsafe_values(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, match: str
) -> None:
    monkeypatch.setenv(env, value)

    with pytest.raises(ValidationError, match=match):
        AppSettings()


def test_app_import_pulls_no_pipeline_or_infra_dependencies() -> None:
    heavy = ["pandas", "mlflow", "dvc", "great_expectations", "pulumi", "pulumi_aws"]
    code = f"import sys, app.main, app.serve; print([m for m in {heavy!r} if m in sys.modules])"

    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )

    assert result.stdout.strip() == "[]"


def test_settings_command_line_overrides_win(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.serve import load_settings

    monkeypatch.setenv("MLSHIP_PORT", "9000")
    monkeypatch.setenv("MLSHIP_MODEL_URI", "/from/env")

    settings = load_settings(model_uri="/from/cli", host="127.0.0.1", port=9001, workers=None)

    assert (settings.model_uri, settings.host, settings.port) == ("/from/cli", "127.0.0.1", 9001)


def test_settings_invalid_override_names_the_variable() -> None:
    from app.serve import load_settings

    with pytest.raises(ConfigError, match=r"^MLSHIP_WORKERS: Input should be greater than"):
        load_settings(workers=0)


def test_settings_misspelt_variable_is_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from app.serve import load_settings

    monkeypatch.setenv("MLSHIP_LOG_LEVLE", "DEBUG")

    load_settings()

    assert capsys.readouterr().err == (
        "warning: MLSHIP_LOG_LEVLE is not an mlship serve setting; did you mean MLSHIP_LOG_LEVEL?\n"
    )


@pytest.mark.parametrize(
    ("name", "closest"),
    [
        ("MLSHIP_API_KEYS_HASHES", "; did you mean MLSHIP_API_KEY_HASHES?"),
        ("MLSHIP_API_KEY_FILE", "; did you mean MLSHIP_API_KEYS_FILE?"),
        ("MLSHIP_INVOCATION_AUTH", "; did you mean MLSHIP_INVOCATIONS_AUTH?"),
        ("MLSHIP_KEYS", "; did you mean MLSHIP_API_KEYS_FILE?"),
    ],
)
def test_settings_misspelt_key_variable_refuses_to_start(
    monkeypatch: pytest.MonkeyPatch, name: str, closest: str
) -> None:
    from app.serve import load_settings

    monkeypatch.setenv(name, "a" * 64)

    with pytest.raises(ConfigError) as e:
        load_settings()

    assert str(e.value) == (
        f"{name} is not an mlship serve setting{closest} It looks like an API-key setting: "
        "fix its name (or unset it) so the keys you meant are enforced."
    )
