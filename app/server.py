"""One server process: the app's lifespan first (the model loads), then the listening socket,
then uvicorn with mlship's connection protocol (``app/protocol.py``) until SIGTERM.

The port is bound only once the lifespan has succeeded, so a process whose start fails never
holds it. With several workers each one binds its own socket with ``SO_REUSEPORT`` and the
kernel spreads new connections over them: with one shared socket the worker that happened to
be awake accepted every connection, and keep-alive clients all landed on it. The kernel's
spread is a hash, not an even split; the workers even it out themselves by closing a surplus
connection after an answer (:class:`app.connections.ConnectionShares`).
"""

from __future__ import annotations

import asyncio
import logging
import resource
import signal
import socket
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import TYPE_CHECKING

from app.connections import ConnectionLimits, ConnectionShares
from app.logs import configure_logging, log_config
from app.protocol import protocol_class
from app.settings import AppSettings
from core.errors import ConfigError, MlshipError
from core.memory import keep_large_blocks

if TYPE_CHECKING:
    import uvicorn
    from fastapi import FastAPI

    from app.supervisor import WorkerLink

log = logging.getLogger("mlship.app")

# Files a worker keeps open besides its connections: model, libraries, logs, metrics files.
_FD_RESERVE = 256


def bind(
    host: str, port: int, *, reuse_port: bool, setting: str = "MLSHIP_PORT or --port"
) -> socket.socket:
    """A TCP socket bound to ``host:port``, not yet listening (uvicorn listens on it).

    Raises:
        ConfigError: when the address cannot be bound, naming it and the fix.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise ConfigError(
            f"Cannot listen on {host}:{port} ({e.strerror or e}). Another process may hold the "
            f"port: stop it, or choose another with {setting}."
        ) from e
    return sock


def _ports(settings: AppSettings) -> list[tuple[int, str]]:
    """The ports the service listens on, each with the setting that chooses it."""
    ports = [(settings.port, "MLSHIP_PORT or --port")]
    if settings.metrics_port is not None:
        ports.append((settings.metrics_port, "MLSHIP_METRICS_PORT"))
    return ports


def bind_all(settings: AppSettings, *, reuse_port: bool) -> list[socket.socket]:
    """The service's socket, and the metrics port's when ``MLSHIP_METRICS_PORT`` is set."""
    sockets: list[socket.socket] = []
    try:
        for port, setting in _ports(settings):
            sockets.append(bind(settings.host, port, reuse_port=reuse_port, setting=setting))
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def check_ports_free(settings: AppSettings) -> None:
    """Bind and release each address without ``SO_REUSEPORT``: fails when any other socket
    holds one (workers bind with ``SO_REUSEPORT``, which would otherwise share it silently)."""
    for sock in bind_all(settings, reuse_port=False):
        sock.close()


def ensure_fd_limit(limits: ConnectionLimits) -> None:
    """Raise this process's open-file limit to what ``MLSHIP_MAX_CONNECTIONS`` needs (workers
    inherit it), or refuse the start when the hard limit is lower.

    Raises:
        ConfigError: naming the setting, the limit and the fix.
    """
    need = limits.max_connections + limits.max_lingering + _FD_RESERVE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= need:
        return
    if hard == resource.RLIM_INFINITY or hard >= need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
        return
    raise ConfigError(
        f"MLSHIP_MAX_CONNECTIONS={limits.max_connections} needs {need} open files per worker, "
        f"but this process may open at most {hard} (ulimit -n). Lower MLSHIP_MAX_CONNECTIONS "
        "or raise the limit."
    )


def uvicorn_config(
    app: FastAPI, settings: AppSettings, shares: ConnectionShares | None = None
) -> uvicorn.Config:
    import uvicorn

    return uvicorn.Config(
        app,
        lifespan="off",  # run_server runs the app's lifespan itself, before binding
        http=protocol_class(ConnectionLimits.from_settings(settings), shares),
        ws="none",
        log_config=log_config(settings.log_level),
        access_log=False,  # the app's middleware writes the access log
        server_header=False,
        # No X-Forwarded-* rewriting: nothing here uses the client address, and the
        # middleware would cost every request (SageMaker and the EKS Service add no headers
        # the app reads).
        proxy_headers=False,
        timeout_keep_alive=settings.keep_alive_timeout,
        timeout_graceful_shutdown=settings.graceful_timeout,
    )


def run_server(
    app: FastAPI,
    settings: AppSettings,
    listen: Callable[[], Awaitable[list[socket.socket]]],
    shares: ConnectionShares | None = None,
) -> None:
    """Run the app's lifespan, then ``listen()`` for the sockets (the service's port, and
    ``MLSHIP_METRICS_PORT`` when set), then serve until SIGTERM.

    SIGTERM stops accepting at once; requests that were read are answered (the last one on
    each connection with ``Connection: close``) for up to ``MLSHIP_GRACEFUL_TIMEOUT`` seconds.

    Raises:
        MlshipError: from the lifespan (model, keys) or from ``listen`` (the port).
    """
    import uvicorn

    config = uvicorn_config(app, settings, shares)
    server = uvicorn.Server(config)

    async def main() -> None:
        async with app.router.lifespan_context(app):
            sockets = await listen()
            log.info(
                "listening",
                extra={
                    "host": settings.host,
                    "port": settings.port,
                    "metrics_port": settings.metrics_port,
                },
            )
            await server.serve(sockets=sockets)

    with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
        runner.run(main())


def exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """SIGTERM outside uvicorn's own handling (during the start, and the one uvicorn re-raises
    after its drain): end with exit code 0 rather than die by the signal."""
    raise SystemExit(0)


def worker_main(settings: AppSettings, link: WorkerLink) -> None:
    """A worker process of :class:`app.supervisor.Supervisor`: load, wait until every worker
    has loaded, bind with ``SO_REUSEPORT``, serve. Failures go to the supervisor, which prints
    the one ``error:`` line."""
    from app.main import create_app

    signal.signal(signal.SIGTERM, exit_on_sigterm)
    # Ctrl+C reaches the whole process group: the supervisor turns it into SIGTERM for us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    configure_logging(settings.log_level)
    keep_large_blocks()

    async def listen() -> list[socket.socket]:
        await link.loaded()
        sockets = bind_all(settings, reuse_port=True)
        link.listening()
        return sockets

    try:
        # Worker 1 writes the model-signal lines for all (a replacement keeps its number).
        app = create_app(settings, writes_signals=link.number == 1)
        counts = link.connection_counts
        shares = (
            None if counts is None else ConnectionShares(counts, link.number - 1, settings.port)
        )
        run_server(app, settings, listen, shares)
    except MlshipError as e:
        link.failed(str(e))
        raise SystemExit(1) from None
    except Exception as e:
        log.exception("worker failed")
        link.failed(f"A worker process failed ({type(e).__name__}: {e}); its log says more.")
        raise SystemExit(1) from None
