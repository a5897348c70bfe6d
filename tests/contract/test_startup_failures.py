"""A start that cannot succeed ends with exit 1 and one ``error:`` line naming the fix, and the
port is never bound meanwhile, whatever the number of workers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.contract.conftest import ENTRYPOINT, server_env
from tests.factories import free_port

GIVE_UP_S = 120.0


def _unreachable_secret(tmp_path: Path) -> dict[str, str]:
    closed = free_port()  # nothing listens there: every call is refused
    return {
        "MLSHIP_API_KEYS_SECRET": "mlship/api-keys",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{closed}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_MAX_ATTEMPTS": "1",  # the failure, not botocore's back-off between attempts
    }


def _empty_keys_file(tmp_path: Path) -> dict[str, str]:
    keys = tmp_path / "keys.txt"
    keys.write_text("")
    return {"MLSHIP_API_KEYS_FILE": str(keys)}


@pytest.mark.parametrize(
    ("workers", "failure", "named"),
    [
        (1, _empty_keys_file, "MLSHIP_API_KEYS_FILE="),
        (2, _empty_keys_file, "MLSHIP_API_KEYS_FILE="),
        (2, _unreachable_secret, "MLSHIP_API_KEYS_SECRET=mlship/api-keys: cannot read"),
    ],
    ids=["1-worker-empty-keys-file", "2-workers-empty-keys-file", "2-workers-unreachable-secret"],
)
def test_startup_failure_exits_1_with_one_error_line_and_never_binds(
    sagemaker_dir: Path, tmp_path: Path, workers: int, failure: object, named: str
) -> None:
    port = free_port()
    env = server_env(sagemaker_dir, port, **failure(tmp_path))  # type: ignore[operator]
    proc = subprocess.Popen(
        [str(ENTRYPOINT), "serve", "--workers", str(workers)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: workers are stopped with it
    )
    connected = 0
    deadline = time.monotonic() + GIVE_UP_S
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            connected += _connects(port)
            time.sleep(0.05)
        connected += _connects(port)  # and after the exit
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=30)

    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert proc.returncode == 1, err[-3000:]
    assert len(errors) == 1, err[-3000:]
    assert named in errors[0]
    assert "Traceback" not in err
    assert connected == 0


def _connects(port: int) -> int:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return 0
    return 1
