"""The loaded model: one small interface between the routes (or batch scoring) and scikit-learn.

Routes, batch scoring and the smoke test call :meth:`Model.predict` with a float64 matrix whose
columns follow ``manifest.features``; batching, caching or an ONNX session can sit behind it
without any caller changing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.bundle import Bundle, Manifest, load_bundle


@dataclass(frozen=True)
class Prediction:
    """Predictions for a batch of rows.

    Attributes:
        labels: Shape (rows,): class labels for classifiers, values for regressors.
        probabilities: Shape (rows, classes) in ``Model.classes`` order, or None (regressors).
    """

    labels: np.ndarray
    probabilities: np.ndarray | None

    def __len__(self) -> int:
        return int(self.labels.shape[0])


class Model:
    """A verified bundle, ready to predict."""

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        self.manifest: Manifest = bundle.manifest
        self.estimator: Any = bundle.model
        self.feature_names: list[str] = bundle.manifest.feature_names
        self.is_classifier = bundle.manifest.task == "classification"
        self.classes: list[Any] | None = bundle.manifest.target.classes
        self._has_proba = self.is_classifier and hasattr(self.estimator, "predict_proba")

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    def predict(self, X: np.ndarray) -> Prediction:
        """Predict a (rows, n_features) float64 matrix already checked against the schema."""
        if self._has_proba:
            proba = np.asarray(self.estimator.predict_proba(X), dtype=np.float64)
            labels = np.asarray(self.estimator.classes_)[proba.argmax(axis=1)]
            return Prediction(labels=labels, probabilities=proba)
        return Prediction(labels=np.asarray(self.estimator.predict(X)), probabilities=None)


def load_model(path: Path | str) -> Model:
    """Load and verify a bundle from a local directory or ``model.tar.gz``."""
    return Model(load_bundle(path))
