"""SIGTERM under keep-alive load (what SageMaker and Kubernetes send on every scale-in and
rollout): every request the server read is answered, and each connection ends with an answer
that says ``Connection: close``, so no client sends a request into a closing connection."""

from __future__ import annotations

import http.client
import json
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.contract.conftest import start_server, stop_server

CLIENTS = 32
WARM_UP = 3  # answers each client has before SIGTERM
MAX_PER_CLIENT = 500  # bound on the load, whatever the server does
GIVE_UP_S = 60.0


@dataclass
class Client:
    answered: int = 0
    ended: str = "not finished"


def _run_client(
    port: int, body: bytes, client: Client, warm: threading.Barrier, stopping: threading.Event
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=GIVE_UP_S)
    deadline = time.monotonic() + GIVE_UP_S
    try:
        while client.answered < MAX_PER_CLIENT and time.monotonic() < deadline:
            if conn.sock is None:  # a new connection: opened here, before a request is sent
                try:
                    conn.connect()
                except ConnectionRefusedError:
                    if stopping.is_set():  # told to close, then the server stopped accepting
                        client.ended = "closed cleanly"
                    else:
                        client.ended = "connection refused before SIGTERM"
                    return
            try:
                conn.request("POST", "/v1/predict", body, {"Content-Type": "application/json"})
                response = conn.getresponse()
                response.read()
            except (OSError, http.client.HTTPException) as e:
                # The previous answer kept the connection open, so this request was lost.
                client.ended = f"lost after {client.answered} answers: {e!r}"
                return
            if response.status != 200:
                client.ended = f"status {response.status}"
                return
            client.answered += 1
            if client.answered == WARM_UP:
                warm.wait(timeout=GIVE_UP_S)
            if (response.getheader("Connection") or "").lower() == "close":
                if stopping.is_set():
                    client.ended = "closed cleanly"
                    return
                # Before SIGTERM a worker above its share of connections moves one: a client
                # reconnects (test_workers.py), and the kernel may hash it to another worker.
                conn.close()
        client.ended = "never told to close"
    finally:
        conn.close()


@pytest.mark.parametrize("workers", [1, 2])
def test_drain_sigterm_under_keep_alive_load_loses_no_request(
    sagemaker_dir: Path, tmp_path: Path, logistic_X: np.ndarray, workers: int
) -> None:
    srv = start_server(
        sagemaker_dir,
        tmp_path / "server.log",
        "--workers",
        str(workers),
        MLSHIP_ACCESS_LOG="false",
        MLSHIP_GRACEFUL_TIMEOUT="25",
        # A client thread of this busy process may stall between two requests; the keep-alive
        # timer must not close its connection meanwhile (that is not what this test is about).
        MLSHIP_KEEP_ALIVE_TIMEOUT="20",
    )
    body = json.dumps({"features": logistic_X[0].tolist()}).encode()
    clients = [Client() for _ in range(CLIENTS)]
    # Every client has answers behind it (its connection is open and busy) before SIGTERM.
    # `stopping` is set before any client is released: a client whose third answer said
    # close (a worker evening out its connections) must not reconnect now, or its new
    # connection may wait in the backlog of a listener that SIGTERM is about to close, and
    # the kernel resets it (a connection no server accepted, not a request one lost).
    stopping = threading.Event()
    warm = threading.Barrier(CLIENTS + 1, action=stopping.set)
    threads = [
        threading.Thread(target=_run_client, args=(srv.port, body, c, warm, stopping))
        for c in clients
    ]
    try:
        for t in threads:
            t.start()
        warm.wait(timeout=GIVE_UP_S)  # sets `stopping`: from now on, close is the drain's
        srv.proc.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(timeout=GIVE_UP_S)
        code = srv.proc.wait(timeout=GIVE_UP_S)
    finally:
        stop_server(srv)

    endings = [c.ended for c in clients]
    assert endings == ["closed cleanly"] * CLIENTS, [e for e in endings if e != "closed cleanly"]
    assert code == 0
