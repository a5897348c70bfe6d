"""Structured JSON logs, one object per line, carrying the request id of the current request."""

from __future__ import annotations

import logging
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

# Fields callers may attach with ``extra=``; anything else is left out on purpose (request
# bodies, feature values and keys must never reach the logs).
_EXTRA_FIELDS = (
    "method", "route", "path", "status", "duration_ms", "client", "model_name",
    "model_version", "model_uri", "seconds", "port", "host", "workers", "lines", "rows",
    "predictions",
)  # fmt: skip


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            # Several worker processes write to the same stream: say which one wrote the line.
            "pid": record.process,
        }
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        if request_id:
            out["request_id"] = request_id
        for name in _EXTRA_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                out[name] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


def log_config(level: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the app and uvicorn, all in JSON on stderr."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"json": handler},
        "loggers": {
            "mlship": {"handlers": ["json"], "level": level, "propagate": False},
            "uvicorn": {"handlers": ["json"], "level": level, "propagate": False},
            "uvicorn.error": {"level": level},
            # Our middleware writes the access log (with route, duration and request id).
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }


def configure_logging(level: str) -> None:
    import logging.config

    logging.config.dictConfig(log_config(level))
    logging.captureWarnings(True)
