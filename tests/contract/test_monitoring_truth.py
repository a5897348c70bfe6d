"""What the service reports about itself stays true under clients and crashes from outside:
a client that leaves mid-body is not a server error, a killed worker leaves no phantom
in-flight requests, and the model load time is the time the load took."""

from __future__ import annotations

import re
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.service import load_service_model
from app.settings import AppSettings
from tests.contract.conftest import Server, start_server, stop_server


def _metrics(url: str) -> str:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as r:
        return str(r.read().decode())


def _sample(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        m = re.match(rf"^{name}(?:\{{(.*)\}})? (\S+)$", line)
        if m is None:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(m.group(2))
    return total


def _half_sent(port: int) -> socket.socket:
    """A prediction request whose body stops halfway: in flight until the client leaves."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(
        b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n" + b'{"features": [1.0, '
    )
    return sock


def _wait_for(condition: object, within_s: float = 30.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def test_client_leaving_mid_body_is_counted_499_never_500(
    sagemaker_dir: Path, tmp_path: Path
) -> None:
    srv = start_server(sagemaker_dir, tmp_path / "server.log", "--workers", "1")
    try:
        for _ in range(5):
            sock = _half_sent(srv.port)
            time.sleep(0.05)  # let the server start reading the body
            sock.close()

        def counted() -> bool:
            return _sample(_metrics(srv.url), "mlship_http_requests_total", status="499") == 5

        assert _wait_for(counted), _metrics(srv.url)
        text = _metrics(srv.url)
    finally:
        stop_server(srv)

    assert _sample(text, "mlship_http_requests_total", status="500") == 0
    assert "unhandled error" not in srv.logs()


def _workers(server: Server) -> list[int]:
    # entrypoint.sh execs python: the server process is the supervisor; workers are children.
    out = subprocess.run(
        ["pgrep", "-P", str(server.proc.pid)], capture_output=True, text=True, check=False
    )
    children = [int(p) for p in out.stdout.split()]
    # multiprocessing also starts a resource tracker; the workers are the spawned processes
    return [p for p in children if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]


def test_killed_worker_leaves_no_phantom_requests_in_flight(
    sagemaker_dir: Path, tmp_path: Path
) -> None:
    srv = start_server(sagemaker_dir, tmp_path / "server.log", "--workers", "2")
    try:
        workers = _workers(srv)
        assert len(workers) == 2, workers
        held = [_half_sent(srv.port) for _ in range(8)]
        assert _wait_for(lambda: _sample(_metrics(srv.url), "mlship_http_requests_in_flight") >= 8)
        for pid in workers:
            subprocess.run(["kill", "-9", str(pid)], check=True)
        for sock in held:
            sock.close()

        def idle() -> bool:
            try:
                # the scrape itself is the one request in flight
                return _sample(_metrics(srv.url), "mlship_http_requests_in_flight") == 1
            except OSError:
                return False  # workers restarting

        assert _wait_for(idle, within_s=60), _metrics(srv.url)
    finally:
        stop_server(srv)


@pytest.mark.parametrize("preloaded", [False, True])
def test_model_load_seconds_covers_the_whole_load(
    logistic_bundle: Path, monkeypatch: pytest.MonkeyPatch, preloaded: bool
) -> None:
    from core.bundle import load_bundle

    slow = 0.3  # a lower bound, never an upper one: the assertion cannot fail on a slow machine

    def slow_load(*args: object, **kwargs: object) -> object:
        time.sleep(slow)
        return load_bundle(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("core.model.load_bundle", slow_load)
    settings = AppSettings(model_uri=str(logistic_bundle), runtime="sklearn")
    # `serve` with one worker loads before the port is bound and hands the model in.
    model = load_service_model(settings) if preloaded else None

    with TestClient(create_app(settings, model)) as client:
        seconds = _sample(client.get("/metrics").text, "mlship_model_load_seconds")
        service = client.app.state.service  # type: ignore[attr-defined]

    assert seconds >= slow
    assert seconds == pytest.approx(service.model.load_seconds)
