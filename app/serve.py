"""``mlship serve`` / the container's ``serve``: check everything that can fail, then listen.

Every check a start can fail (settings, the bundle, the model, API keys, the port, the
open-file limit) runs before the port is bound: in this process for one worker, and in the
supervisor before it spawns any worker for several. A failed start therefore ends with exit 1
and one ``error:`` line, and nothing ever listened. A ``model.tar.gz`` or ``s3://`` bundle is
extracted once into a directory that is removed when the server stops (or the start fails).

One worker serves in this process (``app/server.py``); several run under ``app/supervisor.py``,
each on its own ``SO_REUSEPORT`` socket. SIGTERM stops accepting, answers what was read (the
last answer on each connection says ``Connection: close``) for up to
``MLSHIP_GRACEFUL_TIMEOUT`` seconds, then exits 0.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from app.logs import configure_logging
from app.settings import AppSettings, unknown_variables, variable_of
from core.errors import ConfigError, MlshipError, ModelLoadError

if TYPE_CHECKING:
    from core.model import Model

log = logging.getLogger("mlship.app")

# After the drain, a worker still shuts its app down (lifespan exit): allowed this much more.
_STOP_MARGIN_S = 5.0


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
        message = str(err["msg"]).removeprefix("Value error, ").rstrip(".")
        if not loc:  # a check across settings: its message names them
            raise ConfigError(f"{message}.") from None
        raise ConfigError(f"{variable_of(loc, os.environ)}: {message}.") from None


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
    """Serve until SIGTERM/SIGINT; returns the exit code.

    Raises:
        MlshipError: when the start fails (nothing was bound); the CLI prints it.
    """
    from app.connections import ConnectionLimits
    from app.server import ensure_fd_limit, exit_on_sigterm
    from core.memory import keep_large_blocks
    from core.sources import local_bundle

    started = time.perf_counter()
    configure_logging(settings.log_level)
    # uvicorn drains on SIGTERM, then re-raises it: end with exit code 0 instead of dying by
    # the signal (a SIGTERM during the model load also stops the start here).
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    ensure_fd_limit(ConnectionLimits.from_settings(settings))
    keep_large_blocks()
    with ExitStack() as stack:
        bundle = stack.enter_context(local_bundle(settings.model_uri, settings.model_cache_dir))
        local = settings.model_copy(update={"model_uri": str(bundle)})
        model = _load_model(bundle, settings.model_uri)
        log.info(
            "model loaded",
            extra={
                "model_version": model.version,
                "seconds": round(time.perf_counter() - started, 3),
            },
        )
        challenger = _challenger(settings, model, stack)
        if challenger is not None:  # resolved and checked once here; the workers load the copy
            local = local.model_copy(update={"challenger_uri": str(challenger[0])})
        if settings.workers == 1:
            _serve_here(local, model, None if challenger is None else challenger[1])
        else:
            _check_for_workers(local, model)
            del model, challenger  # the supervisor needs no model while the workers serve
            _serve_workers(local)
    return 0


def _load_model(bundle: Path, uri: str) -> Model:
    from core.model import load_model

    try:
        # The estimator itself loads in app.runtime.runtime_model, only if it predicts.
        return load_model(bundle, estimator=False)
    except MlshipError as e:
        raise ModelLoadError(f"Cannot load MLSHIP_MODEL_URI={uri}: {e}") from e


def _challenger(
    settings: AppSettings, champion: Model, stack: ExitStack
) -> tuple[Path, Model] | None:
    """MLSHIP_CHALLENGER_URI as a local bundle directory that lives as long as ``stack`` (a
    download or an extracted archive is removed with it), and the challenger loaded from it
    and checked against the champion, so a bad one stops the start with its error."""
    if settings.challenger_uri is None:
        return None
    from app.routing import load_challenger
    from core.sources import local_bundle

    local = stack.enter_context(
        local_bundle(settings.challenger_uri, settings.model_cache_dir, "MLSHIP_CHALLENGER_URI")
    )
    return local, load_challenger(settings, champion, local)


def _serve_here(settings: AppSettings, model: Model, challenger: Model | None) -> None:
    """One worker, this process: the lifespan (keys, predictor) runs before the bind."""
    from app.main import create_app
    from app.server import bind_all, run_server

    async def listen() -> list[socket.socket]:
        return bind_all(settings, reuse_port=False)

    run_server(create_app(settings, model, challenger=challenger), settings, listen)


def _check_for_workers(settings: AppSettings, model: Model) -> None:
    """Make here every check a worker could fail, so that none starts when one would fail."""
    from app.auth import load_key_hashes
    from app.runtime import runtime_model
    from app.server import check_ports_free

    runtime_model(model, settings)
    load_key_hashes(settings)
    check_ports_free(settings)
    log.info("start checks passed", extra={"workers": settings.workers})


def _serve_workers(settings: AppSettings) -> None:
    """Several workers under the supervisor, until SIGTERM."""
    from app.server import worker_main
    from app.supervisor import Supervisor

    with _metrics_dir(settings.metrics_dir) as metrics_dir:
        # Workers keep their HTTP and prediction metrics in files here, so that /metrics, which
        # one worker answers, adds up all of them (prometheus_client's multiprocess mode, which
        # reads this variable when a worker imports it).
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        worker_settings = settings.model_copy(update={"metrics_dir": metrics_dir})
        Supervisor(
            worker_main,
            (worker_settings,),
            settings.workers,
            stop_timeout=settings.graceful_timeout + _STOP_MARGIN_S,
        ).run()


@contextmanager
def _metrics_dir(configured: Path | None) -> Iterator[Path]:
    """``MLSHIP_METRICS_DIR`` emptied of stale files, else a temp dir removed afterwards."""
    if configured is not None:
        configured.mkdir(parents=True, exist_ok=True)
        for stale in configured.glob("*.db"):
            stale.unlink()
        yield configured
        return
    created = Path(tempfile.mkdtemp(prefix="mlship-metrics-"))
    try:
        yield created
    finally:
        shutil.rmtree(created, ignore_errors=True)
