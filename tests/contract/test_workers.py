"""Several workers share the connections: the kernel spreads new connections over the workers'
own listening sockets, so keep-alive clients do not all land on one process, and the workers
even out what the kernel's hash leaves uneven."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.contract.conftest import start_server, stop_server
from tests.factories import free_port

CONNECTIONS = 32  # the chance that all of them land on one of two workers is 2**-31
GIVE_UP_S = 30.0
ROUNDS = 40
SETTLED_ROUNDS = 5


def test_workers_each_answer_some_of_the_keep_alive_connections(
    sagemaker_dir: Path, tmp_path: Path
) -> None:
    srv = start_server(sagemaker_dir, tmp_path / "server.log", "--workers", "2")
    held: list[http.client.HTTPConnection] = []
    told_to_close: set[str] = set()
    try:
        for i in range(CONNECTIONS):
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
            for j in range(2):  # two requests on the same connection: one worker answers both
                conn.request("GET", "/ping", headers={"X-Request-ID": f"spread-{i}-{j}"})
                response = conn.getresponse()
                response.read()
                assert response.status == 200
                if response.will_close:  # a surplus connection moves (see the test below)
                    told_to_close.add(f"spread-{i}-{j}")
            held.append(conn)  # stays open, so the next connection is a new one
    finally:
        for conn in held:
            conn.close()
        stop_server(srv)

    answered_by = _answered_by(srv.logs(), "spread-")
    assert len(answered_by) == 2 * CONNECTIONS
    for i in range(CONNECTIONS):
        if f"spread-{i}-0" not in told_to_close:  # kept alive: the same worker answers again
            assert answered_by[f"spread-{i}-0"] == answered_by[f"spread-{i}-1"]
    assert len(set(answered_by.values())) == 2


@pytest.mark.parametrize("connections", [2, 8])
def test_workers_even_out_their_keep_alive_connections(
    sagemaker_dir: Path, tmp_path: Path, connections: int
) -> None:
    """A Batch Transform job holds one connection per worker (MaxConcurrentTransforms); the
    kernel hashes both onto the same worker half the time, which then scores alone. A worker
    above its share closes one after an answer; the client reconnects, hashed anew. Each
    round below sends one request per connection; a surplus moves with probability 1/2 per
    round, so 40 rounds leave it in place with probability 2**-30 at most."""
    srv = start_server(sagemaker_dir, tmp_path / "server.log", "--workers", "2")
    conns = [
        http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10) for _ in range(connections)
    ]
    closes: list[int] = []
    try:
        for r in range(ROUNDS):
            closed = 0
            for i, conn in enumerate(conns):
                conn.request("GET", "/ping", headers={"X-Request-ID": f"even-{r}-{i}"})
                response = conn.getresponse()
                response.read()
                assert response.status == 200
                closed += response.will_close
            closes.append(closed)
    finally:
        for conn in conns:
            conn.close()
        stop_server(srv)

    answered_by = _answered_by(srv.logs(), "even-")
    assert len(answered_by) == ROUNDS * connections
    last = [answered_by[f"even-{ROUNDS - 1}-{i}"] for i in range(connections)]
    assert sorted(Counter(last).values()) == [connections // 2, connections // 2]
    # Once even, nothing moves any more: the last rounds close no connection.
    settled = next(r for r in range(ROUNDS) if closes[r:] == [0] * (ROUNDS - r))
    assert settled < ROUNDS - SETTLED_ROUNDS, closes
    assert sum(closes) <= ROUNDS  # at most about one surplus connection moves per round


SCRAPERS = 5  # odd: the scrapers alone can never split evenly over 2 workers


def test_connections_to_the_metrics_port_are_left_out_of_the_shares(
    sagemaker_dir: Path, tmp_path: Path
) -> None:
    """Prometheus holds keep-alive connections to MLSHIP_METRICS_PORT. Counted in the shares,
    they filled a worker's share (both connections of a job could then stay on the other
    worker) and were themselves told to close. Each round, every scraper scrapes first, then
    each job connection sends a request."""
    metrics_port = free_port()
    srv = start_server(
        sagemaker_dir,
        tmp_path / "server.log",
        "--workers",
        "2",
        MLSHIP_METRICS_PORT=str(metrics_port),
    )
    scrapers = [
        http.client.HTTPConnection("127.0.0.1", metrics_port, timeout=10) for _ in range(SCRAPERS)
    ]
    jobs = [http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10) for _ in range(2)]
    scrapers_closed = 0
    try:
        for r in range(ROUNDS):
            for scraper in scrapers:
                scraper.request("GET", "/metrics")
                response = scraper.getresponse()
                response.read()
                assert response.status == 200
                scrapers_closed += response.will_close
            for i, job in enumerate(jobs):
                job.request("GET", "/ping", headers={"X-Request-ID": f"scraped-{r}-{i}"})
                response = job.getresponse()
                response.read()
                assert response.status == 200
    finally:
        for conn in [*scrapers, *jobs]:
            conn.close()
        stop_server(srv)

    answered_by = _answered_by(srv.logs(), "scraped-")
    assert scrapers_closed == 0
    assert answered_by[f"scraped-{ROUNDS - 1}-0"] != answered_by[f"scraped-{ROUNDS - 1}-1"]


def _answered_by(logs: str, prefix: str) -> dict[str, int]:
    """The worker (pid) that answered each request id starting with ``prefix``."""
    answered_by: dict[str, int] = {}
    for line in logs.splitlines():
        record = json.loads(line) if line.startswith("{") else {}
        if str(record.get("request_id", "")).startswith(prefix):
            answered_by[record["request_id"]] = record["pid"]
    return answered_by


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
