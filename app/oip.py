"""Open Inference Protocol v2 tensors to and from the model's matrix and predictions."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from app.schemas import (
    NUMERIC_DATATYPES,
    InferenceRequest,
    MetadataTensor,
    ModelMetadata,
    RequestInput,
)
from core.errors import InvalidInput
from core.features import FeatureSchema
from core.model import Model, Prediction

NUMERIC = frozenset(NUMERIC_DATATYPES)
OIP_INPUT_NAME = "input-0"
LABELS = "predict"
PROBABILITIES = "predict_proba"


_FEATURE_DATATYPES = {"category": "BYTES", "bool": "BOOL", "int64": "INT64", "float64": "FP64"}


def datatype_of(array: np.ndarray) -> str:
    kind = array.dtype.kind
    if kind == "b":
        return "BOOL"
    if kind in "iu":
        return "INT64"
    if kind == "f":
        return "FP64"
    return "BYTES"


def metadata(model: Model) -> ModelMetadata:
    outputs = [MetadataTensor(name=LABELS, datatype=_label_datatype(model), shape=[-1])]
    if PROBABILITIES in available_outputs(model) and model.classes is not None:
        outputs.append(
            MetadataTensor(name=PROBABILITIES, datatype="FP64", shape=[-1, len(model.classes)])
        )
    features = model.manifest.features
    if any(f.is_categorical for f in features):
        # Text and numbers do not share a tensor type: one [rows] tensor per feature, of the
        # feature's own type (a client hands each a table's column as it is; any numeric
        # datatype is read for a number feature).
        inputs = [
            MetadataTensor(name=f.name, datatype=_FEATURE_DATATYPES[f.dtype], shape=[-1])
            for f in features
        ]
    else:
        inputs = [MetadataTensor(name=OIP_INPUT_NAME, datatype="FP64", shape=[-1, len(features)])]
    return ModelMetadata(
        name=model.name,
        versions=[model.version],
        platform="sklearn",
        inputs=inputs,
        outputs=outputs,
    )


def _label_datatype(model: Model) -> str:
    if model.classes is None:
        return "FP64"
    return datatype_of(np.asarray(model.classes))


def request_to_matrix(request: InferenceRequest, schema: FeatureSchema) -> np.ndarray:
    """One ``[rows, n_features]`` tensor (any name), or one ``[rows]`` tensor per feature
    (``BYTES`` for categorical features, as text)."""
    for tensor in request.inputs:
        _check_tensor(tensor, schema.any_categorical)
    names = [t.name for t in request.inputs]
    if len(request.inputs) == 1 and not (schema.n == 1 and names[0] in schema.names):
        return schema.validate(_single_tensor(request.inputs[0], schema))
    if sorted(names) != sorted(schema.names):
        raise InvalidInput(
            f"inputs: send one tensor of shape [rows, {schema.n}], or one tensor per feature "
            f"named {schema.expected()}; got {len(names)} tensors."
        )
    columns = {t.name: _flat(t) for t in request.inputs}
    return schema.validate(schema.columns_to_matrix(columns, "inputs: "))


def _check_tensor(t: RequestInput, text: bool) -> None:
    where = f"input {t.name[:64]!r}"
    if t.datatype not in NUMERIC and not (text and t.datatype == "BYTES"):
        also = " and BYTES for its categorical features" if text else ""
        raise InvalidInput(
            f"{where}: datatype {t.datatype[:32]!r} is not supported; the model takes numbers "
            f"(FP64, FP32, INT64, ... or BOOL){also}."
        )
    if any(not isinstance(d, int) or d < 0 for d in t.shape) or not t.shape:
        raise InvalidInput(f"{where}: shape must be a list of non-negative integers.")


def _flat(t: RequestInput) -> list[Any]:
    data = t.data
    if data and isinstance(data[0], list):
        try:
            data = np.asarray(data, dtype=object).ravel().tolist()
        except ValueError:
            raise InvalidInput(f"input {t.name[:64]!r}: data is ragged; match the shape.") from None
    expected = math.prod(t.shape)
    if len(data) != expected:
        raise InvalidInput(
            f"input {t.name[:64]!r}: shape {t.shape} needs {expected} values, got {len(data)}."
        )
    if any(isinstance(v, list) for v in data):
        raise InvalidInput(f"input {t.name[:64]!r}: data is nested deeper than its shape.")
    return data


def _single_tensor(t: RequestInput, schema: FeatureSchema) -> np.ndarray:
    where = f"input {t.name[:64]!r}"
    shape = t.shape
    if len(shape) == 1:
        shape = [1, shape[0]]
    if len(shape) != 2 or shape[1] != schema.n:
        raise InvalidInput(
            f"{where}: shape {t.shape} should be [rows, {schema.n}] for {schema.expected()}."
        )
    data = _flat(t)
    rows, n = shape
    return schema.rows_to_matrix([data[i * n : (i + 1) * n] for i in range(rows)], f"{where}: ")


def available_outputs(model: Model) -> list[str]:
    """Output tensor names: labels, and probabilities for classifiers that have them."""
    has_proba = model.has_probabilities
    return [LABELS, PROBABILITIES] if has_proba else [LABELS]


def check_outputs(requested: list[str] | None, available: list[str]) -> None:
    """Refuse unknown requested outputs before any prediction work."""
    for name in requested or ():
        if name not in available:
            raise InvalidInput(
                f"outputs: unknown output {name[:64]!r}; this model has {', '.join(available)}."
            )


def response_outputs(prediction: Prediction, names: list[str]) -> list[dict[str, Any]]:
    """The response tensors, in the requested order."""
    out: list[dict[str, Any]] = []
    for name in names:
        if name == LABELS:
            labels = prediction.labels
            out.append(
                {
                    "name": LABELS,
                    "shape": [labels.shape[0]],
                    "datatype": datatype_of(labels),
                    "data": labels if labels.dtype.kind in "biuf" else labels.astype(str).tolist(),
                }
            )
        else:
            proba = prediction.probabilities
            assert proba is not None  # noqa: S101 - only offered for classifiers
            out.append(
                {
                    "name": PROBABILITIES,
                    "shape": list(proba.shape),
                    "datatype": "FP64",
                    "data": proba.ravel(),
                }
            )
    return out
