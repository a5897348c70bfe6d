"""The loaded service: settings, model, schema, predictor, monitors and keys, built once at start.

Routes reach it as ``request.app.state.service`` and predict through :meth:`Service.predict`,
which also feeds the metrics and the drift monitor.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, field

import numpy as np
from starlette.concurrency import run_in_threadpool

from app.answers import AnswerWriter
from app.auth import KeyChecker, load_key_hashes
from app.capture import CaptureWriter
from app.logs import request_id_var
from app.metrics import Metrics
from app.monitoring import DriftMonitor
from app.predictor import Predictor
from app.routing import Rollout, build_rollout
from app.runtime import build_predictor
from app.settings import AppSettings
from app.slices import RowSlices, request_threads, set_native_threads
from app.transport import OFF_LOOP_BYTES
from core.errors import ConfigError, MlshipError, ModelLoadError
from core.features import FeatureSchema
from core.model import Model, Prediction, load_model
from core.sources import resolve_model_uri

log = logging.getLogger("mlship.app")


@dataclass
class Service:
    settings: AppSettings
    model: Model
    schema: FeatureSchema
    predictor: Predictor
    metrics: Metrics
    keys: KeyChecker
    monitor: DriftMonitor | None
    capture: CaptureWriter | None = None
    ready: bool = field(default=True)
    rollout: Rollout | None = None  # a challenger beside the model (app/routing.py)
    answers: AnswerWriter = field(default_factory=AnswerWriter)  # CSV / JSON Lines bodies
    slices: RowSlices = field(default_factory=RowSlices)  # a large request's threads

    async def predict(self, X: np.ndarray, predictor: Predictor | None = None) -> Prediction:
        """Predict a validated matrix (with ``predictor``, the challenger's: app/routing.py)
        and record it in the metrics, monitors and capture."""
        # Rows the model cannot score raise InvalidInput (422) in core.model, for every runtime.
        prediction = await (predictor or self.predictor).predict(X)
        if X.nbytes >= OFF_LOOP_BYTES:
            # A Batch Transform mini-batch: counting its rows into the metrics and the drift
            # profile takes tens of milliseconds (more on a wide table), which would hold
            # /ping and every other request on this loop.
            await run_in_threadpool(self._record, X, prediction.labels)
        else:
            self._record(X, prediction.labels)
        if self.capture is not None:
            self.capture.submit(X, prediction, request_id_var.get())
        return prediction

    def _record(self, X: np.ndarray, labels: np.ndarray) -> None:
        """Count a prediction's rows into the metrics and the drift monitor (both take
        their own locks: this may run in a worker thread)."""
        self.metrics.count_predictions(labels)
        if self.schema.any_categorical:
            counts = self.schema.unseen(X).sum(axis=0)
            for j in np.flatnonzero(counts):
                self.metrics.unseen_categories.labels(self.schema.names[j]).inc(int(counts[j]))
        if self.monitor is not None:
            self.monitor.observe(X)

    async def aclose(self) -> None:
        """Stop the predictor, then write what the capture still holds (shutdown). The drift
        monitor's file stays mapped until the process ends: its counts are part of the
        totals that the other workers still report."""
        await self.predictor.aclose()
        if self.capture is not None:
            await asyncio.to_thread(self.capture.close)
        self.slices.close()


def load_service_model(settings: AppSettings) -> Model:
    """Resolve ``MLSHIP_MODEL_URI`` and load the verified bundle.

    Raises:
        ModelLoadError: naming the URI and what is wrong; the service must not start.
    """
    started = time.perf_counter()
    try:
        # The estimator itself loads in app.runtime.runtime_model, only if it predicts.
        local = resolve_model_uri(settings.model_uri, settings.model_cache_dir)
        model = load_model(local, estimator=False)
    except ModelLoadError:
        raise
    except MlshipError as e:
        raise ModelLoadError(f"Cannot load MLSHIP_MODEL_URI={settings.model_uri}: {e}") from e
    model.load_seconds = time.perf_counter() - started  # the download too
    return model


def build_service(
    settings: AppSettings,
    metrics: Metrics,
    model: Model | None = None,
    challenger: Model | None = None,
) -> Service:
    """Load everything the request path needs, so requests do no set-up work."""
    if model is None:
        model = load_service_model(settings)
    keys = KeyChecker(load_key_hashes(settings))
    slices = RowSlices(request_threads(settings.workers))
    monitor = None
    if settings.monitoring:
        monitor = DriftMonitor(
            model.manifest,
            settings.drift_window_rows,
            directory=metrics.shared_dir,
            workers=settings.workers,
            slices=slices,
        )
        metrics.register_merged(monitor)
    metrics.set_model(model.name, model.version, model.manifest.task, model.classes)
    if not keys.enabled:
        log.warning(
            "no API keys configured: /v1 and /v2 model routes are open "
            "(set MLSHIP_API_KEY_HASHES, MLSHIP_API_KEYS_FILE or MLSHIP_API_KEYS_SECRET)"
        )
    capture = build_capture(settings, metrics, model)
    predictor = build_predictor(model, settings, metrics.collectors, slices)
    set_native_threads(slices.threads)  # the model's libraries are loaded now
    # Resolving, verifying and loading, wherever it happened (serve loads before binding).
    metrics.model_load_seconds.set(model.load_seconds)
    _load_arrow_bridge()
    return Service(
        settings=settings,
        model=model,
        schema=FeatureSchema(
            model.manifest,
            settings.max_batch_rows,
            refuse_unseen=settings.unseen_categories == "refuse",
        ),
        predictor=predictor,
        metrics=metrics,
        keys=keys,
        monitor=monitor,
        capture=capture,
        rollout=build_rollout(settings, metrics.registry, model, predictor, challenger, slices),
        answers=AnswerWriter(slices),
        slices=slices,
    )


def _load_arrow_bridge() -> None:
    """Import what pyarrow imports on its first conversion of a Python or NumPy value
    (``pa.array``, ``pa.scalar``, ``to_numpy``: its pandas bridge, and pandas when installed),
    which every large CSV or JSON Lines body and answer makes. It took 0.6 s, which the first
    such request after each start waited for while an ONNX-served model had loaded nothing
    that imports pandas."""
    import pyarrow as pa

    pa.array(np.zeros(1)).to_numpy()


def build_capture(settings: AppSettings, metrics: Metrics, model: Model) -> CaptureWriter | None:
    """The started capture writer when ``MLSHIP_CAPTURE_DIR`` is set."""
    if settings.capture_dir is None:
        return None
    try:
        settings.capture_dir.mkdir(parents=True, exist_ok=True)
        writable = os.access(settings.capture_dir, os.W_OK | os.X_OK)
    except OSError as e:
        raise ConfigError(
            f"MLSHIP_CAPTURE_DIR={settings.capture_dir} cannot be created ({e}). Point it at a "
            "writable directory, or unset it to serve without capture."
        ) from e
    if not writable:
        raise ConfigError(
            f"MLSHIP_CAPTURE_DIR={settings.capture_dir} is not writable by this process. Mount "
            "a writable volume there, or unset it to serve without capture."
        )
    written, dropped = metrics.capture_counters()
    capture = CaptureWriter(
        settings.capture_dir,
        model_version=model.version,
        classes=model.classes,
        max_queued_rows=settings.capture_queue_rows,
        rotate_seconds=settings.capture_rotate_seconds,
        records=written,
        dropped=dropped,
        categories=[f.categories if f.is_categorical else None for f in model.manifest.features],
    )
    capture.start()
    log.info("capturing predictions", extra={"path": str(settings.capture_dir)})
    return capture
