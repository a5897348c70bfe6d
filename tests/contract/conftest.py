"""A real server process started with the container's exact command (``entrypoint.sh serve``)
on a SageMaker-style model directory, on 127.0.0.1 and a free port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.factories import free_port

REPO = Path(__file__).resolve().parents[2]
ENTRYPOINT = REPO / "app" / "entrypoint.sh"
START_TIMEOUT_S = 90  # cold start without bytecode caches on a loaded CI machine


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str
    port: int
    log: Path
    started_in_s: float

    def logs(self) -> str:
        return self.log.read_text()


def sagemaker_model_dir(archive: Path, root: Path) -> Path:
    """Extract ``model.tar.gz`` the way SageMaker does, into ``<root>/opt/ml/model``."""
    model_dir = root / "opt" / "ml" / "model"
    model_dir.mkdir(parents=True)
    with tarfile.open(archive) as tar:
        tar.extractall(model_dir, filter="data")
    return model_dir


# The image compiles bytecode at build time (UV_COMPILE_BYTECODE); server processes here share
# one bytecode cache outside the repository and .venv, so only the first start pays compiling.
PYCACHE = Path(tempfile.gettempdir()) / f"mlship-contract-pycache-{os.getuid()}"


def server_env(model_dir: Path | str, port: int, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLSHIP_", "SAGEMAKER_")) and k != "PYTHONDONTWRITEBYTECODE"
    }
    env.update(
        PYTHONPYCACHEPREFIX=str(PYCACHE),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=str(REPO),
        MLSHIP_MODEL_URI=str(model_dir),
        MLSHIP_HOST="127.0.0.1",
        MLSHIP_PORT=str(port),
        **extra,
    )
    return env


def start_server(model_dir: Path | str, log: Path, *args: str, **extra: str) -> Server:
    """Run ``entrypoint.sh serve`` and wait until ``/ping`` answers 200 (stdout and stderr
    both to ``log``)."""
    return _start(model_dir, log, None, args, extra)


def start_server_own_stdout(
    model_dir: Path | str, log: Path, stdout: Path, *args: str, **extra: str
) -> Server:
    """:func:`start_server` with the process's stdout alone in ``stdout`` (stderr in ``log``)."""
    return _start(model_dir, log, stdout, args, extra)


def _start(
    model_dir: Path | str,
    log: Path,
    stdout: Path | None,
    args: tuple[str, ...],
    extra: dict[str, str],
) -> Server:
    port = free_port()
    started = time.monotonic()
    with log.open("wb") as out, (stdout or Path(os.devnull)).open("ab") as own_stdout:
        proc = subprocess.Popen(
            [str(ENTRYPOINT), "serve", *args],
            env=server_env(model_dir, port, **extra),
            stdout=out if stdout is None else own_stdout,
            stderr=subprocess.STDOUT if stdout is None else out,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = started + START_TIMEOUT_S
    while True:
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=2) as r:
                if r.status == 200:
                    break
        except (OSError, urllib.error.URLError):
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"server did not start:\n{log.read_text()}")
        time.sleep(0.05)
    return Server(proc, url, port, log, time.monotonic() - started)


def stop_server(server: Server) -> None:
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait()


@contextmanager
def serving(model_dir: Path | str, log: Path, **extra: str) -> Iterator[Server]:
    """:func:`start_server`, stopped on leaving the block."""
    server = start_server(model_dir, log, **extra)
    try:
        yield server
    finally:
        stop_server(server)


@pytest.fixture(scope="session")
def sagemaker_dir(logistic_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sagemaker_model_dir(logistic_bundle / "model.tar.gz", tmp_path_factory.mktemp("sm"))


@pytest.fixture(scope="session")
def server(sagemaker_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the read-only contract tests."""
    srv = start_server(sagemaker_dir, tmp_path_factory.mktemp("logs") / "server.log")
    try:
        yield srv
    finally:
        stop_server(srv)
