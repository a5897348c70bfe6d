"""``mlship serve`` / the container's ``serve``: load the bundle, then run uvicorn.

With one worker the model is loaded before the port is bound, so a bad bundle stops the start
with its error and a non-zero exit. With several workers, a remote bundle is downloaded once
here and every worker loads the local copy before it accepts requests. SIGTERM stops accepting,
lets in-flight requests finish for up to ``MLSHIP_GRACEFUL_TIMEOUT`` seconds, then exits.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

from pydantic import ValidationError

from app.logs import configure_logging, log_config
from app.settings import AppSettings, unknown_variables
from core.errors import ConfigError

log = logging.getLogger("mlship.app")


def load_settings(**overrides: Any) -> AppSettings:
    """Settings from ``MLSHIP_*`` plus command-line overrides (``None`` means not given).

    Raises:
        ConfigError: naming the variable and the problem.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    _warn_unknown_variables()
    try:
        return AppSettings(**given)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        name = f"MLSHIP_{loc.upper()}" if loc else "MLSHIP_* settings"
        raise ConfigError(f"{name}: {err['msg']}.") from None


def _warn_unknown_variables() -> None:
    """A misspelt variable (say MLSHIP_API_KEYS_HASHES) would silently leave a default in
    place, possibly an open API: refuse a key-like one, warn about the others.

    Raises:
        ConfigError: naming the variable and the closest setting, for a key-like name.
    """
    for name, closest, refuse in unknown_variables(os.environ):
        hint = f"; did you mean {closest}?" if closest else ""
        if refuse:
            raise ConfigError(
                f"{name} is not an mlship serve setting{hint or '.'} It looks like an API-key "
                "setting: fix its name (or unset it) so the keys you meant are enforced."
            )
        print(f"warning: {name} is not an mlship serve setting{hint}", file=sys.stderr)


def serve(settings: AppSettings) -> int:
    import uvicorn

    from app.main import create_app
    from app.runtime import runtime_model
    from app.service import load_service_model
    from core.sources import resolve_model_uri

    started = time.perf_counter()
    configure_logging(settings.log_level)
    # uvicorn drains on SIGTERM, then re-raises it: end with exit code 0 instead of dying by
    # the signal (a SIGTERM during the model load also stops the start here).
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    common: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_config": log_config(settings.log_level),
        "access_log": False,
        "server_header": False,
        "timeout_graceful_shutdown": settings.graceful_timeout,
        "timeout_keep_alive": 5,
    }
    if settings.workers == 1:
        model = load_service_model(settings)
        log.info(
            "model loaded",
            extra={
                "model_version": model.version,
                "seconds": round(time.perf_counter() - started, 3),
            },
        )
        server = uvicorn.Server(uvicorn.Config(create_app(settings, model), **common))
        server.run()
        return 0 if server.started else 1
    # Workers re-read the settings from the environment: hand them the resolved local bundle
    # and every command-line override.
    local = resolve_model_uri(settings.model_uri, settings.model_cache_dir)
    # Load it once here too, so a bundle that cannot load stops the start with its error
    # before any worker is spawned (uvicorn would restart a failing worker again and again).
    verify = settings.model_copy(update={"model_uri": str(local)})
    champion = load_service_model(verify)
    runtime_model(champion, verify)
    challenger = _challenger(settings, champion)
    log.info(
        "model verified",
        extra={"workers": settings.workers, "seconds": round(time.perf_counter() - started, 3)},
    )
    # Workers keep their HTTP and prediction metrics in files here, so that /metrics, which
    # one worker answers, adds up all of them (prometheus_client's multiprocess mode).
    metrics_dir = settings.metrics_dir or Path(tempfile.mkdtemp(prefix="mlship-metrics-"))
    for stale in metrics_dir.glob("*.db"):
        stale.unlink()
    os.environ.update(
        {
            "MLSHIP_MODEL_URI": str(local),
            "MLSHIP_HOST": settings.host,
            "MLSHIP_PORT": str(settings.port),
            "MLSHIP_WORKERS": str(settings.workers),
            "MLSHIP_METRICS_DIR": str(metrics_dir),
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            **({"MLSHIP_CHALLENGER_URI": challenger} if challenger else {}),
        }
    )
    config = uvicorn.Config(
        "app.serve:worker_app", factory=True, workers=settings.workers, **common
    )
    try:
        _run_workers(config)
    finally:
        if settings.metrics_dir is None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


def _challenger(settings: AppSettings, champion: Any) -> str | None:
    """The challenger resolved once and checked before workers start (app/routing.py), so a
    bad one stops the start with its error and workers do not each download it."""
    if settings.challenger_uri is None:
        return None
    from app.routing import load_challenger
    from core.sources import resolve_model_uri

    local = resolve_model_uri(
        settings.challenger_uri, settings.model_cache_dir, "MLSHIP_CHALLENGER_URI"
    )
    load_challenger(settings, champion, local)
    return str(local)


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def _run_workers(config: Any) -> None:
    """Run uvicorn's worker supervisor, but stop accepting at once on SIGTERM/SIGINT.

    uvicorn's own keeps the listening socket open in the parent until every worker has
    drained, so the kernel would go on queueing new connections during the drain.
    """
    from uvicorn.supervisors import Multiprocess

    class Supervisor(Multiprocess):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            signal.signal(signal.SIGTERM, self._stop_accepting)
            signal.signal(signal.SIGINT, self._stop_accepting)

        def _stop_accepting(self, signum: int, frame: FrameType | None) -> None:
            for sock in self.sockets:
                sock.close()  # the workers close their copies as they start draining
            for process in self.processes:
                if process.pid is not None:
                    os.kill(process.pid, signal.SIGTERM)
            self.should_exit.set()

    Supervisor(config, sockets=[config.bind_socket()]).run()


def worker_app() -> Any:
    """The app of one worker process (uvicorn factory); the lifespan loads the model."""
    from app.main import create_app

    settings = AppSettings()
    configure_logging(settings.log_level)
    return create_app(settings)
