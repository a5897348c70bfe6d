"""``create_app(settings)``: the FastAPI application; its lifespan loads the model bundle once.

Routes: the SageMaker contract (``/ping``, ``/invocations``), REST (``/v1/predict``), the Open
Inference Protocol v2 (``/v2/...``), operations (``/healthz``, ``/readyz``, ``/metrics``) and the
API docs (``/docs``, ``/openapi.json``; behind the API key when keys are configured).
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.errors import install_error_handlers
from app.fastpath import PredictFastPath
from app.metrics import Metrics
from app.middleware import HeadAsGet, ObservabilityMiddleware
from app.routers import docs, health, rest, sagemaker, v2
from app.schemas import InferenceRequest, request_schemas
from app.service import Service, build_service
from app.settings import AppSettings
from app.signals import build_signal_writer
from core.model import Model

log = logging.getLogger("mlship.app")

DESCRIPTION = (
    "Predictions from one verified mlship model bundle. The same model answers the SageMaker "
    "serving contract, a REST API and the Open Inference Protocol v2. Model routes take an API "
    "key (`X-API-Key` or `Authorization: Bearer`) when keys are configured."
)


def create_app(
    settings: AppSettings,
    model: Model | None = None,
    *,
    challenger: Model | None = None,
    writes_signals: bool = True,
) -> FastAPI:
    """Build the app. The model (and the challenger, with ``MLSHIP_CHALLENGER_URI``) is loaded
    in the lifespan unless given loaded (``serve`` loads them before binding the port, so a
    bad bundle stops the start).

    ``writes_signals``: this process writes the model-signal lines (``app/signals.py``); with
    several workers only worker 1 does, for all of them."""
    metrics = Metrics(settings.metrics_dir)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        started = time.perf_counter()
        service = build_service(settings, metrics, model, challenger)
        # The model and the libraries are loaded for good: move them out of the collector's
        # reach, so full collections stay short (they cost seconds of p99 under load otherwise).
        gc.collect()
        gc.freeze()
        app.state.service = service
        if service.rollout is not None:
            service.rollout.start()
        signals = build_signal_writer(settings, service) if writes_signals else None
        if signals is not None:
            signals.start()
        log.info(
            "model ready",
            extra={
                "model_name": service.model.name,
                "model_version": service.model.version,
                "seconds": round(time.perf_counter() - started, 3),
            },
        )
        try:
            yield
        finally:
            service.ready = False
            if signals is not None:  # the drain is over: the last interval is complete
                await signals.aclose()
            await service.aclose()
            if service.rollout is not None:
                await service.rollout.aclose()
            app.state.service = None

    app = FastAPI(
        title="mlship",
        description=DESCRIPTION,
        version=_package_version(),
        lifespan=lifespan,
        # Served by app/routers/docs.py, behind the API key when keys are configured.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        # mlship exports Prometheus metrics; FastAPI's OpenTelemetry hooks would only look up
        # an unconfigured tracer provider on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.state.metrics = metrics
    app.state.service = None
    app.state.settings = settings
    install_error_handlers(app)
    app.include_router(sagemaker.router)
    app.include_router(rest.router)
    app.include_router(v2.health)
    app.include_router(v2.models)
    app.include_router(health.router)
    app.include_router(docs.router)
    # Inside the observability middleware (added after it, so wrapped by it): prediction
    # requests keep their request id, access log and metrics.
    app.add_middleware(PredictFastPath, fastapi_app=app)
    app.add_middleware(ObservabilityMiddleware, metrics=metrics, access_log=settings.access_log)
    app.add_middleware(HeadAsGet)

    def openapi() -> dict[str, Any]:
        service: Service | None = app.state.service
        if app.openapi_schema is not None:
            return app.openapi_schema
        spec = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        components = spec.setdefault("components", {}).setdefault("schemas", {})
        components.update(
            request_schemas(service.schema if service else None, settings.max_batch_rows)
        )
        v2_schema = InferenceRequest.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(v2_schema.pop("$defs", {}))
        components["InferenceRequest"] = v2_schema
        if service is not None:  # exact for the loaded bundle and keys: cache it
            _declare_security(spec, service.keys.enabled, settings.keys_on_invocations)
            app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _declare_security(spec: dict[str, Any], keys: bool, on_invocations: bool) -> None:
    """Declare API-key security (and its 401/403) only on the operations that ask for a key
    in this configuration: none without keys, /invocations only when it is guarded too."""
    for path, operations in spec.get("paths", {}).items():
        for operation in operations.values():
            if "security" not in operation:
                continue
            if not keys or (path == "/invocations" and not on_invocations):
                del operation["security"]
                for status in ("401", "403"):
                    operation.get("responses", {}).pop(status, None)


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mlship")
    except PackageNotFoundError:
        return "0+unknown"
