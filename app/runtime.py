"""The predictor the service runs, stacked from the settings.

:func:`build_predictor` picks the runtime (scikit-learn, or onnxruntime when the bundle carries
a verified ``model.onnx``), then wraps it in the micro-batcher (``app/batching.py``) and the
prediction cache (``app/cache.py``) when they are on; no route changes.
"""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry

from app.batching import BatchingPredictor
from app.cache import CachingPredictor, PredictionCache, is_deterministic
from app.predictor import DirectPredictor, Predictor
from app.settings import AppSettings
from app.slices import RowSlices, on_one_openmp_thread, sliced_predict
from core.features import FeatureSchema
from core.model import Model
from core.runtime import choose_runtime

log = logging.getLogger("mlship.app")


def build_predictor(
    model: Model,
    settings: AppSettings,
    registry: CollectorRegistry | None = None,
    slices: RowSlices | None = None,
) -> Predictor:
    """The predictor the service uses, as the settings choose; its counters go to ``registry``.
    A large matrix is predicted in row slices on ``slices``' threads (``app/slices.py``).

    Raises:
        ModelLoadError: when ``MLSHIP_RUNTIME=onnx`` and the ONNX model cannot be served.
    """
    runtime = runtime_model(model, settings)
    one = on_one_openmp_thread(runtime.predict)
    predict = one if slices is None else sliced_predict(one, slices)
    predictor: Predictor
    if settings.microbatching:
        batching = BatchingPredictor(
            predict, settings.microbatch_max_rows, settings.microbatch_max_wait_ms / 1000
        )
        if registry is not None:
            registry.register(batching.collector())
        predictor = batching
    else:
        predictor = DirectPredictor(predict)
    cache_on = settings.cache_enabled
    if cache_on is None:
        golden = FeatureSchema(model.manifest).rows_to_matrix(model.bundle.golden.inputs)
        cache_on = is_deterministic(runtime.predict, golden)
        if not cache_on:
            log.warning("prediction cache off: the model predicts its golden rows differently")
    if cache_on:
        caching = CachingPredictor(
            predictor,
            PredictionCache(settings.cache_max_entries),
            model.version,
            settings.cache_max_request_rows,
        )
        if registry is not None:
            registry.register(caching.collector())
        predictor = caching
    log.info(
        "predictor ready",
        extra={
            "runtime": runtime.runtime,
            "microbatching": settings.microbatching,
            "cache": cache_on,
        },
    )
    return predictor


def runtime_model(model: Model, settings: AppSettings) -> Model:
    """The model that computes predictions under ``MLSHIP_RUNTIME`` (core/runtime.py), loaded
    before any request."""
    chosen = choose_runtime(model, settings.runtime, "MLSHIP_RUNTIME")
    if chosen.fallback is not None:
        log.warning("serving with scikit-learn: %s", chosen.fallback)
    return chosen.model
