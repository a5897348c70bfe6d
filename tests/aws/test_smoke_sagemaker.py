"""`mlship invoke` and `mlship smoke` against a SageMaker endpoint in moto's server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.main import main as mlship
from core.bundle import load_bundle
from pipelines.release.smoke import SmokeFailed, request_body
from pipelines.release.targets import (
    CredentialsDenied,
    EndpointNotFound,
    EndpointTimeout,
    EndpointUnreachable,
    SageMakerTarget,
)
from tests.aws.conftest import queue_endpoint_results


def _queue_good_answers(aws: str, bundle: Path) -> int:
    """Queue the golden answer, then one single-row answer per distinct golden row."""
    golden = load_bundle(bundle).golden
    distinct = {request_body([row]) for row in golden.inputs}
    singles = [{"predictions": [golden.predictions[0]]} for _ in distinct]
    queue_endpoint_results(aws, [{"predictions": golden.predictions}, *singles])
    return len(golden.inputs)


def test_smoke_passes_when_endpoint_serves_the_bundle(
    aws: str, endpoint: str, logistic_bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = _queue_good_answers(aws, logistic_bundle)
    code = mlship(
        ["smoke", "--endpoint", endpoint, "--bundle", str(logistic_bundle),
         "--requests", "40", "--concurrency", "4", "--max-p99-ms", "5000"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"golden {rows}/{rows} predictions match" in out
    assert "load 40 requests at concurrency 4" in out
    assert "errors 0 (0.00%)" in out
    assert out.rstrip().endswith("smoke: PASS")


def test_smoke_fails_on_wrong_predictions(
    aws: str, endpoint: str, logistic_bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    golden = load_bundle(logistic_bundle).golden
    wrong = list(golden.predictions)
    wrong[3] = 1 - int(wrong[3])
    queue_endpoint_results(aws, [{"predictions": wrong}])
    code = mlship(["smoke", "--endpoint", endpoint, "--bundle", str(logistic_bundle)])
    err = capsys.readouterr().err
    assert code == SmokeFailed.exit_code == 4
    assert "1 of 20 golden predictions differ" in err
    assert f"row 3: expected {golden.predictions[3]!r}, got {wrong[3]!r}" in err


def test_smoke_fails_when_answer_has_wrong_row_count(
    aws: str, endpoint: str, logistic_bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    queue_endpoint_results(aws, [{"predictions": [0, 1]}])
    code = mlship(["smoke", "--endpoint", endpoint, "--bundle", str(logistic_bundle)])
    assert code != 0
    assert "answered 2 predictions for 20 rows" in capsys.readouterr().err


def test_smoke_fails_when_error_rate_over_threshold(
    aws: str, endpoint: str, logistic_bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    golden = load_bundle(logistic_bundle).golden
    distinct = {request_body([row]) for row in golden.inputs}
    # Golden answer right, every load answer an error document without predictions.
    queue_endpoint_results(
        aws, [{"predictions": golden.predictions}, *({"error": "boom"} for _ in distinct)]
    )
    code = mlship(
        ["smoke", "--endpoint", endpoint, "--bundle", str(logistic_bundle),
         "--requests", "20", "--max-error-rate", "0.05"]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 4
    assert "errors 20 (100.00%)" in captured.out
    assert "error rate 100.00% is above 5.00% (InvocationFailed x20" in captured.err


def test_smoke_fails_when_p99_over_threshold(
    aws: str, endpoint: str, logistic_bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _queue_good_answers(aws, logistic_bundle)
    code = mlship(
        ["smoke", "--endpoint", endpoint, "--bundle", str(logistic_bundle),
         "--requests", "10", "--max-p99-ms", "0.001"]
    )  # fmt: skip
    assert code == 4
    assert "p99 latency" in capsys.readouterr().err


def test_smoke_missing_endpoint_is_named(
    aws: str, logistic_bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = mlship(["smoke", "--endpoint", "mlship-nope", "--bundle", str(logistic_bundle)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("error: SageMaker endpoint mlship-nope does not exist")
    assert "pulumi stack output endpointName" in err
    with pytest.raises(EndpointNotFound):
        SageMakerTarget("mlship-nope", timeout=5).check()


def test_invoke_prints_the_answer(
    aws: str, endpoint: str, logistic_bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    queue_endpoint_results(aws, [{"predictions": [1], "model_version": "v7"}])
    code = mlship(["invoke", "--endpoint", endpoint, "--bundle", str(logistic_bundle)])
    assert code == 0
    assert json.loads(capsys.readouterr().out) == {"predictions": [1], "model_version": "v7"}


def test_invoke_rejects_a_body_that_is_not_json(
    aws: str, endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert mlship(["invoke", "--endpoint", endpoint, "--body", "{nope"]) == 1
    assert "--body is not valid JSON" in capsys.readouterr().err


def test_invoke_with_refused_credentials(
    moto_with_auth: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_with_auth)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-a-real-secret")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    code = mlship(["invoke", "--endpoint", "mlship-dev", "--body", '{"instances": [[1.0]]}'])
    err = capsys.readouterr().err
    assert code == 1
    assert "AWS refused the credentials calling SageMaker endpoint mlship-dev" in err
    assert "InvalidClientTokenId" in err
    with pytest.raises(CredentialsDenied):
        SageMakerTarget("mlship-dev", timeout=5).invoke(b"{}")


def test_invoke_without_any_credentials(
    aws: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(CredentialsDenied, match="No AWS credentials"):
        SageMakerTarget("mlship-dev", timeout=5).invoke(b"{}")


def test_invoke_times_out(aws: str, silent_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", silent_server)
    with pytest.raises(EndpointTimeout, match="did not answer in time"):
        SageMakerTarget("mlship-dev", timeout=0.3).invoke(b'{"instances": [[1.0]]}')


def test_invoke_connection_refused(
    aws: str, refused_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", refused_url)
    with pytest.raises(EndpointUnreachable, match="Could not connect"):
        SageMakerTarget("mlship-dev", timeout=1).invoke(b'{"instances": [[1.0]]}')


def test_smoke_fails_when_probabilities_drift(
    aws: str, endpoint: str, logistic_bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    golden = load_bundle(logistic_bundle).golden
    assert golden.probabilities is not None
    shifted = [list(p) for p in golden.probabilities]
    shifted[5] = [shifted[5][0] + 0.01, shifted[5][1] - 0.01]
    queue_endpoint_results(
        aws, [{"predictions": golden.predictions, "probabilities": shifted, "classes": [0, 1]}]
    )
    code = mlship(["smoke", "--endpoint", endpoint, "--bundle", str(logistic_bundle)])
    err = capsys.readouterr().err
    assert code == 4
    assert "1 of 20 golden predictions differ" in err
    assert "row 5: probabilities" in err
