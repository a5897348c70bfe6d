"""Start-up checks of ``app/server.py``: the port."""

from __future__ import annotations

import socket

import pytest

from app.server import bind, check_port_free
from core.errors import ConfigError


def test_server_port_held_by_another_process_is_named() -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]

        with pytest.raises(ConfigError, match=rf"^Cannot listen on 127\.0\.0\.1:{port} "):
            check_port_free("127.0.0.1", port)
        with pytest.raises(ConfigError, match="MLSHIP_PORT"):
            bind("127.0.0.1", port, reuse_port=True)
