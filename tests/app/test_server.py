"""Start-up checks of ``app/server.py``: the open-file limit and the port."""

from __future__ import annotations

import resource
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from app.connections import ConnectionLimits
from app.server import bind, check_ports_free, ensure_fd_limit
from app.settings import AppSettings
from core.errors import ConfigError
from tests.factories import free_port

ROOT = Path(__file__).resolve().parents[2]


def _limits(max_connections: int) -> ConnectionLimits:
    return ConnectionLimits(
        max_connections=max_connections,
        max_header_bytes=16384,
        max_header_count=100,
        header_timeout=10.0,
        body_timeout=30.0,
        keep_alive_timeout=5,
    )


def test_server_fd_limit_is_raised_to_what_the_connection_cap_needs() -> None:
    # In a child process: its soft limit starts low, as it does on many machines (1024).
    code = (
        "import resource\n"
        "from app.server import ensure_fd_limit\n"
        "from tests.app.test_server import _limits\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (512, hard))\n"
        "ensure_fd_limit(_limits(1000))\n"
        "print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stderr
    assert int(result.stdout) == 1000 + 250 + 256  # connections, lingering refusals, reserve


def test_server_fd_limit_below_the_cap_refuses_the_start() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > 100_000:
        pytest.skip("no hard open-file limit below 100000 here")

    with pytest.raises(ConfigError, match=r"^MLSHIP_MAX_CONNECTIONS=100000 needs \d+ open files"):
        ensure_fd_limit(_limits(100_000))


def test_server_port_held_by_another_process_is_named() -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]

        with pytest.raises(ConfigError, match=rf"^Cannot listen on 127\.0\.0\.1:{port} "):
            check_ports_free(AppSettings(host="127.0.0.1", port=port))
        with pytest.raises(ConfigError, match="MLSHIP_PORT"):
            bind("127.0.0.1", port, reuse_port=True)
        # the metrics port is checked too, and its setting named
        free = AppSettings(host="127.0.0.1", port=free_port(), metrics_port=port)
        with pytest.raises(ConfigError, match="choose another with MLSHIP_METRICS_PORT"):
            check_ports_free(free)


def test_settings_keep_alive_as_long_as_the_drain_is_refused() -> None:
    from app.serve import load_settings

    with pytest.raises(
        ConfigError,
        match=r"^MLSHIP_KEEP_ALIVE_TIMEOUT=25 must be shorter than MLSHIP_GRACEFUL_TIMEOUT=25: "
        r".* Lower it or raise the drain time\.$",
    ):
        load_settings(keep_alive_timeout=25)
