"""Several workers share the connections: the kernel spreads new connections over the workers'
own listening sockets, so keep-alive clients do not all land on one process."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import time
from pathlib import Path

import pytest

from tests.contract.conftest import start_server, stop_server

CONNECTIONS = 32  # the chance that all of them land on one of two workers is 2**-31
GIVE_UP_S = 30.0


def test_workers_each_answer_some_of_the_keep_alive_connections(
    sagemaker_dir: Path, tmp_path: Path
) -> None:
    srv = start_server(sagemaker_dir, tmp_path / "server.log", "--workers", "2")
    held: list[http.client.HTTPConnection] = []
    try:
        for i in range(CONNECTIONS):
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
            for j in range(2):  # two requests on the same connection: one worker answers both
                conn.request("GET", "/ping", headers={"X-Request-ID": f"spread-{i}-{j}"})
                response = conn.getresponse()
                response.read()
                assert response.status == 200
            held.append(conn)  # stays open, so the next connection is a new one
    finally:
        for conn in held:
            conn.close()
        stop_server(srv)

    answered_by: dict[str, int] = {}
    for line in srv.logs().splitlines():
        record = json.loads(line) if line.startswith("{") else {}
        if str(record.get("request_id", "")).startswith("spread-"):
            answered_by[record["request_id"]] = record["pid"]
    assert len(answered_by) == 2 * CONNECTIONS
    for i in range(CONNECTIONS):
        assert answered_by[f"spread-{i}-0"] == answered_by[f"spread-{i}-1"]
    assert len(set(answered_by.values())) == 2


def test_workers_stop_serving_when_the_supervisor_is_killed(
    sagemaker_dir: Path, tmp_path: Path
) -> None:
    srv = start_server(sagemaker_dir, tmp_path / "server.log", "--workers", "2")
    try:
        workers = {
            json.loads(line)["pid"]
            for line in srv.logs().splitlines()
            if '"message":"model ready"' in line
        }
        srv.proc.kill()  # SIGKILL: the supervisor gets no chance to stop its workers
        srv.proc.wait(timeout=10)
        deadline = time.monotonic() + GIVE_UP_S
        while any(_running(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    assert len(workers) == 2
    assert not any(_running(pid) for pid in workers)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", srv.port), timeout=2).close()


def _running(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in status  # a zombie has exited
