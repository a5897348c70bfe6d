"""The predictor the service runs, stacked from the settings.

:func:`build_predictor` picks the runtime (scikit-learn, or onnxruntime when the bundle carries
a verified ``model.onnx``), then wraps it in the micro-batcher (``app/batching.py``) and the
prediction cache (``app/cache.py``) when they are on; no route changes.
"""

from __future__ import annotations

import logging
import time

from prometheus_client import CollectorRegistry

from app.batching import BatchingPredictor
from app.cache import CachingPredictor, PredictionCache, is_deterministic
from app.predictor import DirectPredictor, Predictor
from app.settings import AppSettings
from core.errors import MlshipError, ModelLoadError
from core.features import FeatureSchema
from core.model import Model

log = logging.getLogger("mlship.app")


def build_predictor(
    model: Model, settings: AppSettings, registry: CollectorRegistry | None = None
) -> Predictor:
    """The predictor the service uses, as the settings choose; its counters go to ``registry``.

    Raises:
        ModelLoadError: when ``MLSHIP_RUNTIME=onnx`` and the ONNX model cannot be served.
    """
    runtime = runtime_model(model, settings)
    predictor: Predictor
    if settings.microbatching:
        batching = BatchingPredictor(
            runtime.predict, settings.microbatch_max_rows, settings.microbatch_max_wait_ms / 1000
        )
        if registry is not None:
            registry.register(batching.collector())
        predictor = batching
    else:
        predictor = DirectPredictor(runtime)
    cache_on = settings.cache_enabled
    if cache_on is None:
        golden = FeatureSchema(model.manifest).rows_to_matrix(model.bundle.golden.inputs)
        cache_on = is_deterministic(runtime.predict, golden)
        if not cache_on:
            log.warning("prediction cache off: the model predicts its golden rows differently")
    if cache_on:
        caching = CachingPredictor(
            predictor, PredictionCache(settings.cache_max_entries), model.version
        )
        if registry is not None:
            registry.register(caching.collector())
        predictor = caching
    log.info(
        "predictor ready",
        extra={
            "runtime": getattr(runtime, "runtime", "sklearn"),
            "microbatching": settings.microbatching,
            "cache": cache_on,
        },
    )
    return predictor


def runtime_model(model: Model, settings: AppSettings) -> Model:
    """The model that computes predictions: ``model`` itself, or its ONNX twin.

    The scikit-learn model is loaded here when it is the one that predicts (so never during a
    request), and not at all when onnxruntime serves the bundle's ``model.onnx``.
    """
    if settings.runtime == "sklearn":
        return _with_estimator(model)
    from core.onnx_model import OnnxModel, onnx_available

    problem = None
    if model.bundle.onnx_path is None:
        problem = "the bundle carries no model.onnx (export it with pipelines.onnx_export)"
    elif not onnx_available():
        problem = "onnxruntime is not installed (the `onnx` dependency group)"
    else:
        try:
            started = time.perf_counter()
            onnx = OnnxModel(model.bundle)
        except Exception as e:  # onnxruntime raises its own types for an unloadable graph
            problem = f"onnxruntime cannot load model.onnx ({e})"
        else:
            model.load_seconds += time.perf_counter() - started
            onnx.load_seconds = model.load_seconds
            return onnx
    if settings.runtime == "onnx":
        raise ModelLoadError(f"MLSHIP_RUNTIME=onnx, but {problem}. Unset it to use scikit-learn.")
    if model.bundle.onnx_path is not None:
        log.warning("serving with scikit-learn: %s", problem)
    return _with_estimator(model)


def _with_estimator(model: Model) -> Model:
    try:
        model.load_estimator()
    except MlshipError as e:
        raise ModelLoadError(
            f"Cannot load the scikit-learn model of {model.bundle.path}: {e}"
        ) from e
    return model
