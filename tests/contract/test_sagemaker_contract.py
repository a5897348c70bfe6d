"""The SageMaker serving contract against the real process: `docker run IMAGE serve` as run
here, /ping, /invocations in JSON and CSV, structured logs and a graceful SIGTERM drain."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from core.model import load_model
from tests.contract.conftest import (
    ENTRYPOINT,
    Server,
    server_env,
    start_server,
    stop_server,
)
from tests.factories import free_port


def _post(
    server: Server, path: str, body: bytes, **headers: str
) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(f"{server.url}{path}", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


@pytest.fixture(scope="module")
def X(logistic_bundle: Path) -> np.ndarray:
    return np.asarray(np.load(logistic_bundle.parent / "logistic-test_X.npy"))


def test_contract_ping(server: Server) -> None:
    with urllib.request.urlopen(f"{server.url}/ping", timeout=5) as r:
        assert r.status == 200
    print(f"ready {server.started_in_s:.2f}s after start")


def test_contract_invocations_json(server: Server, X: np.ndarray, sagemaker_dir: Path) -> None:
    status, headers, body = _post(
        server,
        "/invocations",
        json.dumps({"instances": X[:5].tolist()}).encode(),
        **{"Content-Type": "application/json"},
    )

    assert status == 200
    assert headers["content-type"] == "application/json"
    expected = load_model(sagemaker_dir).predict(X[:5])
    assert json.loads(body)["predictions"] == expected.labels.tolist()


def test_contract_invocations_csv_in_csv_out(
    server: Server, X: np.ndarray, sagemaker_dir: Path
) -> None:
    csv = "\n".join(",".join(repr(v) for v in row) for row in X[:5].tolist()).encode()

    status, headers, body = _post(
        server, "/invocations", csv, **{"Content-Type": "text/csv", "Accept": "text/csv"}
    )

    assert status == 200
    assert headers["content-type"].startswith("text/csv")
    labels = [int(line.split(",")[0]) for line in body.decode().splitlines()]
    assert labels == load_model(sagemaker_dir).predict(X[:5]).labels.tolist()


def test_contract_client_error_is_4xx_json(server: Server) -> None:
    status, _, body = _post(server, "/invocations", b"1,2,3", **{"Content-Type": "text/csv"})

    assert status == 422
    assert json.loads(body)["error"].startswith("CSV row 0 has 3 columns")


def test_contract_logs_are_json_with_request_id_and_no_values(
    server: Server, X: np.ndarray
) -> None:
    marker = "contract-log-check-1"
    _post(
        server,
        "/v1/predict",
        json.dumps({"features": X[7].tolist()}).encode(),
        **{"Content-Type": "application/json", "X-Request-ID": marker},
    )
    time.sleep(0.2)

    lines = [json.loads(line) for line in server.logs().splitlines() if line.strip()]
    access = [r for r in lines if r.get("request_id") == marker]
    assert access
    assert access[0]["route"] == "/v1/predict"
    assert access[0]["status"] == 200
    assert repr(X[7, 0]) not in server.logs()


def test_contract_sigterm_drains_in_flight_request(
    sagemaker_dir: Path, tmp_path: Path, X: np.ndarray
) -> None:
    srv = start_server(sagemaker_dir, tmp_path / "drain.log", MLSHIP_GRACEFUL_TIMEOUT="10")
    body = json.dumps({"features": X[0].tolist()}).encode()
    head = (
        f"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    try:
        conn = socket.create_connection(("127.0.0.1", srv.port), timeout=20)
        conn.sendall(head + body[:10])  # the request is now in flight
        time.sleep(0.3)
        srv.proc.send_signal(signal.SIGTERM)
        assert _refuses_connections(srv.port), "still accepting 30 s after SIGTERM"
        assert srv.proc.poll() is None  # still finishing the in-flight request
        conn.sendall(body[10:])
        response = b""
        while chunk := conn.recv(65536):
            response += chunk
        conn.close()
        code = srv.proc.wait(timeout=30)  # a hang guard, not a speed check (make bench times)
    finally:
        stop_server(srv)

    assert response.startswith(b"HTTP/1.1 200 OK"), response[:200]
    assert b"connection: close" in response.lower()  # the drain's last answer says so
    assert b'"predictions":[' in response
    assert code == 0


def _refuses_connections(port: int, within_s: float = 30.0) -> bool:
    """Poll until the port refuses new connections (the server stopped accepting)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        except OSError:
            return True
        time.sleep(0.05)
    return False


def test_contract_bad_bundle_stops_the_start_with_its_error(tmp_path: Path) -> None:
    empty = tmp_path / "opt" / "ml" / "model"
    empty.mkdir(parents=True)

    result = subprocess.run(
        [str(ENTRYPOINT), "serve", "--port", str(free_port())],
        env=server_env(empty, free_port()),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 1
    assert "error: Cannot load MLSHIP_MODEL_URI=" in result.stderr
    assert "manifest.json is missing" in result.stderr


def test_contract_several_workers_serve_and_stop(
    sagemaker_dir: Path, tmp_path: Path, X: np.ndarray
) -> None:
    srv = start_server(sagemaker_dir, tmp_path / "workers.log", "--workers", "2")
    try:
        answers = {
            _post(
                srv,
                "/v1/predict",
                json.dumps({"features": X[i].tolist()}).encode(),
                **{"Content-Type": "application/json"},
            )[0]
            for i in range(8)
        }
        # Whichever worker answers the scrape, /metrics adds up every worker's requests.
        scrapes = [_predict_metrics(srv) for _ in range(6)]
        srv.proc.send_signal(signal.SIGTERM)
        code = srv.proc.wait(timeout=30)
    finally:
        stop_server(srv)

    assert answers == {200}
    assert code == 0
    assert srv.logs().count('"message":"model ready"') == 2
    for requests, predicted, drift_rows, labels in scrapes:
        assert requests == 8
        assert predicted == 8
        assert drift_rows == 8  # the drift monitor's total too, whichever worker answered
        assert "worker" not in labels  # totals: no per-worker series


def _predict_metrics(srv: Server) -> tuple[float, float, float, set[str]]:
    """(/v1/predict 200s, predicted rows, drift monitor rows, every label name) from one
    scrape of /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{srv.url}/metrics", timeout=10) as response:
        text = response.read().decode()
    requests = predicted = drift_rows = 0.0
    labels: set[str] = set()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels |= set(sample.labels)
            if sample.name == "mlship_http_requests_total" and sample.labels == {
                "route": "/v1/predict",
                "method": "POST",
                "status": "200",
            }:
                requests += sample.value
            elif sample.name == "mlship_predictions_total":
                predicted += sample.value
            elif sample.name == "mlship_drift_rows_total":
                drift_rows += sample.value
    return requests, predicted, drift_rows, labels
