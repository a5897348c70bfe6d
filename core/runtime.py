"""Which model computes a bundle's predictions: scikit-learn, or onnxruntime on the bundle's
verified ``model.onnx``. One rule for the service (``MLSHIP_RUNTIME``) and batch scoring
(``mlship predict --runtime``), so a file scored in batch gets the endpoint's answers.

- ``auto`` (the default): the ONNX model when the bundle carries one and onnxruntime can load
  it (it was checked against scikit-learn when it was exported), else scikit-learn;
- ``onnx``: the ONNX model, or a :class:`~core.errors.ModelLoadError` naming why not;
- ``sklearn``: the scikit-learn model.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Literal

from core.errors import MlshipError, ModelLoadError
from core.model import Model

Runtime = Literal["auto", "sklearn", "onnx"]
RUNTIMES: tuple[Runtime, ...] = ("auto", "sklearn", "onnx")


@dataclass(frozen=True)
class Chosen:
    """The model that predicts, and why ``auto`` fell back to scikit-learn (None when not)."""

    model: Model
    fallback: str | None = None


def cpus_available() -> int:
    """CPUs this process may run on (its affinity mask, else the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def choose_runtime(model: Model, runtime: Runtime, setting: str, threads: int = 1) -> Chosen:
    """The model that computes ``model``'s predictions under ``runtime``.

    The scikit-learn model is loaded here when it is the one that predicts, and not at all
    when onnxruntime serves the bundle's ``model.onnx``.

    Args:
        setting: How the user chose ``runtime`` (``MLSHIP_RUNTIME``, ``--runtime``), for messages.
        threads: onnxruntime threads per call: 1 for the service (a worker process per CPU),
            every CPU for batch scoring (one large call at a time: a 100k-row forest chunk
            took 43 ms on 2 threads, 123 ms on 1, 62 ms in scikit-learn).

    Raises:
        ModelLoadError: ``onnx`` asked for and not possible, or the scikit-learn model that
            must predict cannot be loaded.
    """
    if runtime == "sklearn":
        return Chosen(_with_estimator(model))
    from core.onnx_model import OnnxModel, onnx_available

    problem = None
    if model.bundle.onnx_path is None:
        problem = "the bundle carries no model.onnx (export it with pipelines.onnx_export)"
    elif not onnx_available():
        problem = "onnxruntime is not installed (the `onnx` dependency group)"
    else:
        try:
            started = time.perf_counter()
            onnx = OnnxModel(model.bundle, threads)
        except Exception as e:  # onnxruntime raises its own types for an unloadable graph
            problem = f"onnxruntime cannot load model.onnx ({e})"
        else:
            model.load_seconds += time.perf_counter() - started
            onnx.load_seconds = model.load_seconds
            return Chosen(onnx)
    if runtime == "onnx":
        raise ModelLoadError(f"{setting}=onnx, but {problem}. Unset it to use scikit-learn.")
    fallback = problem if model.bundle.onnx_path is not None else None
    return Chosen(_with_estimator(model), fallback)


def _with_estimator(model: Model) -> Model:
    try:
        model.load_estimator()
    except MlshipError as e:
        raise ModelLoadError(
            f"Cannot load the scikit-learn model of {model.bundle.path}: {e}"
        ) from e
    return model
