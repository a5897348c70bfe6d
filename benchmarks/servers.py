"""Start the services under test as child processes on 127.0.0.1, and stop them."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Service:
    """How to start one service and how to tell it is ready."""

    name: str
    argv: list[str]
    ready_path: str
    env: Mapping[str, str]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def uvicorn_service(name: str, app: str, workers: int, env: Mapping[str, str]) -> Service:
    """A benchmark-only ASGI app under uvicorn (the naive baseline or the no-op ceiling).

    ``{port}`` in its ``argv`` is replaced by the port chosen when it starts.
    """
    argv = [
        sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", "{port}",
        "--workers", str(workers), "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    return Service(name=name, argv=argv, ready_path="/openapi.json", env=env)


@contextlib.contextmanager
def running(service: Service, port: int, log: Path, timeout: float = 60.0) -> Iterator[str]:
    """Run ``service`` until the block ends; yields its base URL once it answers."""
    with started(service, port, log, timeout):
        yield f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def started(
    service: Service, port: int, log: Path, timeout: float = 60.0
) -> Iterator[subprocess.Popen[bytes]]:
    """:func:`running`, yielding the service's process (the leader of its process group)."""
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            service.argv,
            env={**os.environ, **service.env},
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: workers are stopped with it
        )
        try:
            _wait_ready(proc, url + service.ready_path, timeout, log)
            yield proc
        finally:
            _stop(proc)


def group_cpu_seconds(group: int) -> float | None:
    """CPU seconds (user and system) used so far by the live processes of process group
    ``group``, all their threads included, from ``/proc``; None where there is no ``/proc``."""
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():
        return None
    ticks = 0
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        # after the command: state, ppid, pgrp (index 2) ... utime, stime (indexes 11, 12)
        if int(fields[2]) == group:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def post_json(url: str, body: object, timeout: float = 10.0) -> object:
    """POST a JSON body and return the decoded answer (status 200 expected)."""
    data = json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    req = urllib.request.Request(url, data=data, headers=headers)  # noqa: S310 - 127.0.0.1 only
    with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310 - 127.0.0.1 only
        return json.loads(r.read())


def _wait_ready(proc: subprocess.Popen[bytes], url: str, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:  # noqa: S310 - 127.0.0.1 only
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} was not ready within {timeout:g} s")
        time.sleep(0.1)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
