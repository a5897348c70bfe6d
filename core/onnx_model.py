"""The same model served by onnxruntime, when the bundle carries a verified ``model.onnx``.

:class:`OnnxModel` is a :class:`~core.model.Model` whose ``predict`` runs an onnxruntime session
instead of scikit-learn: routes, batching and caching do not know the difference. The export
(``pipelines.onnx_export``) only puts ``model.onnx`` in a bundle after checking, on the test
split, that it predicts the same labels and the same probabilities (within a float32 tolerance)
as the scikit-learn model, and the bundle's checksums cover the file.

onnxruntime is an optional dependency (the ``onnx`` group): :func:`onnx_available` says whether
it is installed, and it is imported only when a session is created.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from core.bundle import Bundle, BundleError
from core.model import Model, Prediction, class_of_largest, finite

# The float64 input of an exported graph (named at export, fed at predict).
ONNX_INPUT_NAME = "input"


def onnx_available() -> bool:
    """True when onnxruntime can be imported here."""
    return importlib.util.find_spec("onnxruntime") is not None


def create_session(path: Path, threads: int = 1) -> Any:
    """An onnxruntime CPU session for ``path``, with ``threads`` threads per call.

    One thread by default: the service runs one worker process per CPU, so more threads per
    call would only make the workers compete.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    if threads > 1:
        # Batch scoring reads and writes chunks in other threads meanwhile: pool threads that
        # spin between calls would take their CPU.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def session_predict(session: Any, X: np.ndarray, classes: np.ndarray | None) -> Prediction:
    """Run an exported model; labels follow the same rule as :meth:`Model.predict`."""
    outputs = session.run(None, {ONNX_INPUT_NAME: np.ascontiguousarray(X, dtype=np.float64)})
    if classes is None:
        return Prediction(
            labels=np.asarray(outputs[0], dtype=np.float64).ravel(), probabilities=None
        )
    proba = np.asarray(outputs[1], dtype=np.float64)
    return Prediction(labels=class_of_largest(proba, classes), probabilities=proba)


class OnnxModel(Model):
    """A verified bundle predicted with onnxruntime (the scikit-learn model is loaded only if
    something asks for ``estimator``)."""

    runtime = "onnx"

    def __init__(self, bundle: Bundle, threads: int = 1) -> None:
        super().__init__(bundle)
        path = bundle.onnx_path
        if path is None:
            raise BundleError(
                f"{bundle.path} carries no model.onnx; export one with "
                "`pipelines.onnx_export.add_onnx`, or serve the scikit-learn model."
            )
        self.session = create_session(path, threads)
        # The manifest's classes are the estimator's classes_, in predict_proba column order;
        # using them keeps the scikit-learn model unloaded.
        self._classes = np.asarray(self.classes) if self.is_classifier else None

    def predict(self, X: np.ndarray) -> Prediction:
        """Predict a (rows, n_features) float64 matrix already checked against the schema."""
        return finite(session_predict(self.session, X, self._classes))
