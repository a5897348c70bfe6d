"""A large prediction body (SageMaker, REST, Open Inference Protocol) is parsed and answered
off the event loop, so /ping is answered meanwhile: SageMaker waits 2 s for a ping ("Custom
Inference Code with Batch Transform", Amazon SageMaker Developer Guide), and a 100 MiB
mini-batch takes longer than that to parse on a small instance."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app import bodies
from app.inputs import csv_to_matrix
from app.routers import rest, v2
from app.transport import OFF_LOOP_BYTES
from tests.app.conftest import ClientFactory, Held

CSV = {"Content-Type": "text/csv", "Accept": "text/csv"}
JSON = {"Content-Type": "application/json"}


def _csv(X: np.ndarray, size: int) -> bytes:
    """Rows of ``X``, repeated to at least ``size`` bytes."""
    one = "".join(",".join(repr(v) for v in row) + "\n" for row in X.tolist()).encode()
    return one * (size // len(one) + 1)


def _oip(X: np.ndarray, size: int) -> bytes:
    def body(rows: np.ndarray) -> bytes:
        tensor = {"name": "input-0", "shape": list(rows.shape), "datatype": "FP64"}
        return json.dumps({"inputs": [tensor | {"data": rows.ravel().tolist()}]}).encode()

    return _at_least(X, size, body)


def _instances(X: np.ndarray, size: int) -> bytes:
    return _at_least(X, size, lambda rows: json.dumps({"instances": rows.tolist()}).encode())


def _at_least(X: np.ndarray, size: int, body: Callable[[np.ndarray], bytes]) -> bytes:
    """``body`` of ``X``'s rows repeated until it holds at least ``size`` bytes."""
    rows = X
    while len(text := body(rows)) < size:
        rows = np.concatenate([rows, rows])
    return text


# (path, module and name of the parse function it calls, body, headers, rows in the answer)
ROUTES = [
    ("/invocations", bodies, "csv_to_matrix", _csv, CSV),
    ("/v1/predict", rest, "json_rows_to_matrix", _instances, JSON),
    ("/v2/models/{name}/infer", v2, "request_to_matrix", _oip, JSON),
]


@pytest.mark.parametrize(("path", "module", "parse", "body", "headers"), ROUTES)
def test_large_body_is_parsed_while_ping_is_answered(
    make_client: ClientFactory,
    X: np.ndarray,
    monkeypatch: pytest.MonkeyPatch,
    path: str,
    module: ModuleType,
    parse: str,
    body: Callable[[np.ndarray, int], bytes],
    headers: dict[str, str],
) -> None:
    """While a 1 MiB body is held in its parse, /ping answers 200; the request then answers
    200. (With the parse on the event loop the ping waits for the parse, which gives up
    waiting for it: the request is not released.)"""
    client: TestClient = make_client()
    name = client.app.state.service.model.name  # type: ignore[attr-defined]
    held = Held(getattr(module, parse))
    monkeypatch.setattr(module, parse, held)
    content = body(X, OFF_LOOP_BYTES)
    answers: list[Any] = []
    post = threading.Thread(
        target=lambda: answers.append(
            client.post(path.format(name=name), content=content, headers=headers)
        )
    )

    post.start()
    try:
        assert held.started.wait(30)
        ping = client.get("/ping")
        held.release.set()
    finally:
        held.release.set()
        post.join(60)

    assert len(content) >= OFF_LOOP_BYTES
    assert ping.status_code == 200
    assert held.released == [True] and held.on_loop == [False]
    assert answers[0].status_code == 200, answers[0].text[:300]


def test_small_body_is_parsed_on_the_event_loop(
    make_client: ClientFactory, X: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Below OFF_LOOP_BYTES a thread hand-off would cost more than the parse: none."""
    client: TestClient = make_client()
    held = Held(csv_to_matrix, wait_s=0)
    monkeypatch.setattr(bodies, "csv_to_matrix", held)

    response = client.post("/invocations", content=_csv(X[:20], 1000), headers=CSV)

    assert response.status_code == 200
    assert held.on_loop == [True]


@pytest.mark.parametrize(("size", "off_loop"), [(OFF_LOOP_BYTES, True), (1000, False)])
def test_a_large_prediction_is_counted_into_the_drift_monitor_while_ping_is_answered(
    make_client: ClientFactory,
    X: np.ndarray,
    monkeypatch: pytest.MonkeyPatch,
    size: int,
    off_loop: bool,
) -> None:
    """Counting a mini-batch's rows into the drift profile takes tens of milliseconds on a
    wide table: a large prediction's is done in a worker thread, a small one's on the loop."""
    client: TestClient = make_client()
    monitor = client.app.state.service.monitor  # type: ignore[attr-defined]
    assert monitor is not None
    held = Held(monitor.observe, wait_s=10.0 if off_loop else 0)
    monkeypatch.setattr(monitor, "observe", held)
    content = _csv(X, size)
    answers: list[Any] = []
    post = threading.Thread(
        target=lambda: answers.append(client.post("/invocations", content=content, headers=CSV))
    )

    post.start()
    try:
        assert held.started.wait(30)
        ping = client.get("/ping") if off_loop else None
        held.release.set()
    finally:
        held.release.set()
        post.join(60)

    assert held.on_loop == [not off_loop]
    assert ping is None or (ping.status_code == 200 and held.released == [True])
    assert answers[0].status_code == 200, answers[0].text[:300]
    assert monitor.totals().rows == len(answers[0].text.splitlines())
