"""The one interface between the routes and the model: ``await predictor.predict(X)``.

Routes hand a validated (rows, n_features) float64 matrix to :class:`Predictor` and get a
:class:`~app.model.Prediction` back. Micro-batching, caching or an ONNX session plug in as
another ``Predictor`` built in :func:`build_predictor`; no route changes.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from starlette.concurrency import run_in_threadpool

from app.model import Model, Prediction
from app.settings import AppSettings


class Predictor(Protocol):
    """Predicts validated matrices; implementations may batch, cache or offload."""

    async def predict(self, X: np.ndarray) -> Prediction:
        """Predict every row of ``X`` (columns in manifest feature order)."""
        ...

    async def aclose(self) -> None:
        """Release resources (background tasks, sessions) at shutdown."""
        ...


class DirectPredictor:
    """One ``model.predict`` call per request, in the thread pool so the event loop stays free
    for health checks and other requests while scikit-learn runs."""

    def __init__(self, model: Model) -> None:
        self._model = model

    async def predict(self, X: np.ndarray) -> Prediction:
        return await run_in_threadpool(self._model.predict, X)

    async def aclose(self) -> None:
        return None


def build_predictor(model: Model, settings: AppSettings) -> Predictor:
    """The predictor the service uses; the place to choose batching or caching from settings."""
    del settings  # no predictor options yet
    return DirectPredictor(model)
