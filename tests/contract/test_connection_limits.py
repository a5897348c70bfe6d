"""Connection bounds of the real server process: the size and count of request heads, idle and
slow clients (slowloris), and the per-worker connection cap, with ``/ping`` still answering.

Every wait below is an upper bound for a server that misbehaves, never a timing assertion: a
server that closes a slow client after its one-second timeout passes on a machine of any speed.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.contract.conftest import Server, start_server, stop_server

# Longest a misbehaving server gets before a test gives up on it (a bound, not a measure).
GIVE_UP_S = 20.0


@pytest.fixture(scope="module")
def timeouts(sagemaker_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One worker whose clients get one second for a request head and one for its body."""
    srv = start_server(
        sagemaker_dir,
        tmp_path_factory.mktemp("timeouts") / "server.log",
        MLSHIP_WORKERS="1",
        MLSHIP_HEADER_TIMEOUT="1",
        MLSHIP_BODY_TIMEOUT="1",
    )
    try:
        yield srv
    finally:
        stop_server(srv)


CAP = 8


@pytest.fixture
def capped(sagemaker_dir: Path, tmp_path: Path) -> Iterator[Server]:
    """One worker that holds at most CAP connections (default timeouts: seconds, not minutes)."""
    srv = start_server(
        sagemaker_dir, tmp_path / "server.log", MLSHIP_WORKERS="1", MLSHIP_MAX_CONNECTIONS=str(CAP)
    )
    try:
        yield srv
    finally:
        stop_server(srv)


def _connect(srv: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", srv.port), timeout=GIVE_UP_S)


def _response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    response = http.client.HTTPResponse(sock)
    response.begin()
    headers = {k.lower(): v for k, v in response.getheaders()}
    return response.status, headers, response.read()


def _ping(srv: Server) -> tuple[int, dict[str, str], bytes]:
    with _connect(srv) as sock:
        sock.sendall(b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        return _response(sock)


def _error(body: bytes) -> str:
    message = json.loads(body)["error"]
    assert isinstance(message, str)
    return message


def _sockets_of(pid: int) -> int:
    """TCP sockets a process holds open (its listening socket included)."""
    tcp = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            tcp.add(line.split()[9])  # the socket's inode
    held = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):  # closed while listing
            held.add(fd.readlink().name.removeprefix("socket:[").removesuffix("]"))
    return len(held & tcp)


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_limits_oversized_head_is_refused_with_431_naming_the_setting(timeouts: Server) -> None:
    big = b"x" * (32 * 1024)  # default limit 16 KiB; small enough to sit in socket buffers
    with _connect(timeouts) as sock:
        sock.sendall(b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + big + b"\r\n\r\n")
        status, headers, body = _response(sock)

    assert status == 431
    assert headers["connection"] == "close"
    assert headers["content-type"] == "application/json"
    assert "16384 bytes (MLSHIP_MAX_HEADER_BYTES)" in _error(body)
    assert _ping(timeouts)[0] == 200


def test_limits_too_many_headers_are_refused_with_431(timeouts: Server) -> None:
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(150))
    with _connect(timeouts) as sock:
        sock.sendall(b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n" + many + b"\r\n")
        status, _, body = _response(sock)

    assert status == 431
    assert "100 headers (MLSHIP_MAX_HEADER_COUNT)" in _error(body)


def test_limits_huge_head_is_cut_off_without_buffering_it(timeouts: Server) -> None:
    rss_before = _rss_kib(timeouts.proc.pid)
    chunk = b"y" * (1024 * 1024)
    sent = 0
    with _connect(timeouts) as sock, pytest.raises(OSError):  # reset: the server stopped reading
        sock.sendall(b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Huge: ")
        for _ in range(64):
            sock.sendall(chunk)
            sent += len(chunk)

    assert sent < 64 * len(chunk)
    assert _ping(timeouts)[0] == 200
    # Nothing like the head's size was kept (64 MiB offered).
    assert _rss_kib(timeouts.proc.pid) - rss_before < 16 * 1024


def test_limits_idle_connection_is_closed_after_the_header_timeout(timeouts: Server) -> None:
    with _connect(timeouts) as sock:
        assert sock.recv(1024) == b""  # closed quietly: the client never sent a byte


def test_limits_slow_head_gets_408_before_the_client_finishes(timeouts: Server) -> None:
    with _connect(timeouts) as sock:
        sock.sendall(b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        answered = _trickle(sock, 100)
        status, headers, body = _response(sock)

    assert answered, "the server waited for the whole slow head"
    assert status == 408
    assert headers["connection"] == "close"
    assert "MLSHIP_HEADER_TIMEOUT" in _error(body)


def test_limits_slow_body_gets_408_before_the_client_finishes(timeouts: Server) -> None:
    with _connect(timeouts) as sock:
        sock.sendall(
            b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n"
        )
        answered = _trickle(sock, 100)
        status, _, body = _response(sock)

    assert answered, "the server waited for the whole slow body"
    assert status == 408
    assert "MLSHIP_BODY_TIMEOUT" in _error(body)
    assert _ping(timeouts)[0] == 200


def _trickle(sock: socket.socket, n: int) -> bool:
    """Send ``n`` bytes one at a time, 0.2 s apart; True as soon as the server answers."""
    for _ in range(n):
        readable, _, _ = select.select([sock], [], [], 0.2)
        if readable:
            return True
        sock.sendall(b"a")
    return False


def test_limits_half_open_connections_beyond_the_cap_leave_ping_answering(capped: Server) -> None:
    held = [_connect(capped) for _ in range(4 * CAP)]
    try:
        for sock in held:
            sock.sendall(b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
        status, _, _ = _ping(capped)
        # The oldest half-sent connections made room: the worker never holds more than the cap
        # (plus its listening socket) however many clients pile up.
        sockets = _sockets_of(capped.proc.pid)
    finally:
        for sock in held:
            sock.close()

    assert status == 200
    assert sockets <= CAP + 1


def test_limits_cap_full_of_requests_in_progress_refuses_with_503(capped: Server) -> None:
    busy = [_connect(capped) for _ in range(CAP)]
    try:
        for sock in busy:  # each request is with the app, waiting for the rest of its body
            sock.sendall(
                b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
            )
        _wait_until(lambda: _sockets_of(capped.proc.pid) >= CAP + 1)
        status, headers, body = _ping(capped)
    finally:
        for sock in busy:
            sock.close()

    assert status == 503
    assert headers["connection"] == "close"
    assert f"{CAP} connections (MLSHIP_MAX_CONNECTIONS)" in _error(body)
    _wait_until(lambda: _ping(capped)[0] == 200)  # room again once the clients left


def _wait_until(condition: object) -> None:
    deadline = time.monotonic() + GIVE_UP_S
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.05)
