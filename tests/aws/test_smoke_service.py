"""`mlship smoke` and `mlship invoke` against the real service (`mlship serve`) on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.main import main as mlship
from pipelines.release.targets import EndpointTimeout, EndpointUnreachable, HttpTarget
from tests.factories import free_port

API_KEY = "smoke-test-key-0123456789"
ROOT = Path(__file__).resolve().parents[2]


def _serve(bundle: Path) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "MLSHIP_API_KEY_HASHES": hashlib.sha256(API_KEY.encode()).hexdigest(),
        "MLSHIP_WORKERS": "1",
        "MLSHIP_HOST": "127.0.0.1",
        "MLSHIP_PORT": str(port),
        "MLSHIP_LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "serve", "--model", str(bundle)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/ping", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None:
                stderr = proc.stderr.read().decode() if proc.stderr else ""
                raise RuntimeError(f"mlship serve exited with {proc.returncode}: {stderr}")
            if time.monotonic() > deadline:
                raise RuntimeError("mlship serve did not answer /ping within 60 s")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.fixture(scope="module")
def service(logistic_bundle: Path) -> Iterator[str]:
    """The logistic bundle served by `mlship serve`, API key required."""
    yield from _serve(logistic_bundle)


def test_smoke_passes_against_the_service(
    service: str,
    logistic_bundle: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MLSHIP_API_KEY", API_KEY)
    code = mlship(
        ["smoke", "--url", service, "--bundle", str(logistic_bundle),
         "--requests", "60", "--concurrency", "4", "--max-p99-ms", "2000"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert "golden 20/20 predictions match" in out
    assert "(probabilities compared too)" in out
    assert "errors 0 (0.00%)" in out
    assert out.rstrip().endswith("smoke: PASS")


def test_smoke_fails_when_the_service_serves_another_model(
    service: str,
    forest_bundle: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MLSHIP_API_KEY", API_KEY)
    code = mlship(["smoke", "--url", service, "--bundle", str(forest_bundle)])
    err = capsys.readouterr().err
    assert code == 4
    assert "golden predictions differ from the bundle's" in err


def test_smoke_without_the_api_key_is_denied(
    service: str,
    logistic_bundle: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("MLSHIP_API_KEY", raising=False)
    code = mlship(["smoke", "--url", service, "--bundle", str(logistic_bundle)])
    err = capsys.readouterr().err
    assert code == 1
    assert "answered HTTP 401: no API key was sent" in err


def test_invoke_with_a_wrong_key_is_denied(
    service: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OTHER_KEY", "not-the-key")
    code = mlship(
        ["invoke", "--url", service, "--api-key-env", "OTHER_KEY", "--body", '{"instances": [[1]]}']
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "answered HTTP 403: the key was refused" in err


def test_invoke_prints_the_service_answer(
    service: str,
    logistic_bundle: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MLSHIP_API_KEY", API_KEY)
    assert mlship(["invoke", "--url", service, "--bundle", str(logistic_bundle)]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert len(answer["predictions"]) == 1
    assert answer["model_version"] == "test-logistic-0"


def test_http_timeout_is_named(silent_server: str) -> None:
    with pytest.raises(EndpointTimeout, match=r"did not answer within 0\.3 s"):
        HttpTarget(silent_server, 0.3, api_key=None).invoke(b'{"instances": [[1]]}')


def test_http_connection_refused_is_named(refused_url: str) -> None:
    with pytest.raises(EndpointUnreachable, match="Connection refused"):
        HttpTarget(refused_url, 1.0, api_key=None).invoke(b'{"instances": [[1]]}')


def test_smoke_and_invoke_from_an_archive_leave_no_temporary_files(
    service: str,
    logistic_bundle: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A model.tar.gz is extracted for the run and removed after it (core.sources.local_bundle)."""
    import tempfile

    temp = tmp_path / "system-temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.setenv("MLSHIP_API_KEY", API_KEY)
    archive = str(logistic_bundle / "model.tar.gz")

    assert mlship(["invoke", "--url", service, "--bundle", archive]) == 0
    assert mlship(["smoke", "--url", service, "--bundle", archive, "--requests", "10"]) == 0
    assert "smoke: PASS" in capsys.readouterr().out
    assert list(temp.iterdir()) == []
