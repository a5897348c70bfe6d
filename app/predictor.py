"""The one interface between the routes and the model: ``await predictor.predict(X)``.

Routes hand a validated (rows, n_features) float64 matrix to a :class:`Predictor` and get a
:class:`~core.model.Prediction` back. The micro-batcher (``app/batching.py``) and the
prediction cache (``app/cache.py``) are predictors that wrap another one;
``app/runtime.py`` stacks them as the settings choose.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np
from starlette.concurrency import run_in_threadpool

from core.model import Prediction


class Predictor(Protocol):
    """Predicts validated matrices; implementations may batch, cache or offload."""

    async def predict(self, X: np.ndarray) -> Prediction:
        """Predict every row of ``X`` (columns in manifest feature order)."""
        ...

    async def aclose(self) -> None:
        """Release resources (background tasks, sessions) at shutdown."""
        ...


class DirectPredictor:
    """One call of the model's predict per request, in the thread pool so the event loop stays
    free for health checks and other requests while scikit-learn runs."""

    def __init__(self, predict: Callable[[np.ndarray], Prediction]) -> None:
        self._predict = predict

    async def predict(self, X: np.ndarray) -> Prediction:
        return await run_in_threadpool(self._predict, X)

    async def aclose(self) -> None:
        return None
