"""The loaded service: settings, model, schema, predictor, monitors and keys, built once at start.

Routes reach it as ``request.app.state.service`` and predict through :meth:`Service.predict`,
which also feeds the metrics and the drift monitor.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from app.auth import KeyChecker, load_key_hashes
from app.metrics import Metrics
from app.monitoring import DriftMonitor
from app.predictor import Predictor
from app.routing import Rollout, build_rollout
from app.runtime import build_predictor
from app.settings import AppSettings
from core.errors import MlshipError, ModelLoadError
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
    ready: bool = field(default=True)
    rollout: Rollout | None = None  # a challenger beside the model (app/routing.py)

    async def predict(self, X: np.ndarray, predictor: Predictor | None = None) -> Prediction:
        """Predict a validated matrix (with ``predictor``, the challenger's: app/routing.py)
        and record it in the metrics and monitors."""
        # Rows the model cannot score raise InvalidInput (422) in core.model, for every runtime.
        prediction = await (predictor or self.predictor).predict(X)
        self.metrics.count_predictions(prediction.labels)
        if self.schema.any_categorical:
            counts = self.schema.unseen(X).sum(axis=0)
            for j in np.flatnonzero(counts):
                self.metrics.unseen_categories.labels(self.schema.names[j]).inc(int(counts[j]))
        if self.monitor is not None:
            self.monitor.observe(X)
        return prediction


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


def build_service(settings: AppSettings, metrics: Metrics, model: Model | None = None) -> Service:
    """Load everything the request path needs, so requests do no set-up work."""
    if model is None:
        model = load_service_model(settings)
    keys = KeyChecker(load_key_hashes(settings))
    monitor = (
        DriftMonitor(model.manifest, settings.drift_window_rows) if settings.monitoring else None
    )
    if monitor is not None:
        monitor.register(metrics.collectors)
    metrics.set_model(model.name, model.version, model.manifest.task, model.classes)
    if not keys.enabled:
        log.warning(
            "no API keys configured: /v1 and /v2 model routes are open "
            "(set MLSHIP_API_KEY_HASHES, MLSHIP_API_KEYS_FILE or MLSHIP_API_KEYS_SECRET)"
        )
    predictor = build_predictor(model, settings, metrics.collectors)
    # Resolving, verifying and loading, wherever it happened (serve loads before binding).
    metrics.model_load_seconds.set(model.load_seconds)
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
        rollout=build_rollout(settings, metrics.registry, model, predictor),
    )
