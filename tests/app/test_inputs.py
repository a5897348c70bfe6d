"""FeatureSchema checks on manifests with nullable, integer and boolean features."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from app.inputs import csv_to_matrix, json_to_matrix
from core.bundle import read_manifest
from core.errors import InvalidInput
from core.features import FeatureSchema
from core.manifest import Manifest


@pytest.fixture(scope="module")
def schema(logistic_bundle: Path) -> FeatureSchema:
    """Logistic manifest with: feature 0 nullable, feature 1 int64, feature 2 bool."""
    manifest = read_manifest(logistic_bundle)
    features = list(manifest.features)
    features[0] = features[0].model_copy(update={"nullable": True})
    features[1] = features[1].model_copy(update={"dtype": "int64"})
    features[2] = features[2].model_copy(update={"dtype": "bool"})
    return FeatureSchema(
        Manifest.model_validate({**manifest.model_dump(), "features": features}), 100
    )


def _row(**changes: object) -> list[object]:
    row: list[object] = [1.0] * 30
    for index, value in changes.items():
        row[int(index[1:])] = value
    return row


def test_inputs_nan_allowed_only_for_nullable_features(schema: FeatureSchema) -> None:
    X = json_to_matrix({"features": _row(c0=None)}, schema)

    assert math.isnan(X[0, 0])
    with pytest.raises(InvalidInput, match=r"feature 'mean_perimeter' \(row 0\) is missing"):
        json_to_matrix({"features": _row(c2=None)}, schema)


def test_inputs_empty_csv_cell_is_missing(schema: FeatureSchema) -> None:
    X = csv_to_matrix(b"," + b",".join([b"1"] * 29), schema)

    assert math.isnan(X[0, 0])


def test_inputs_integer_feature_rejects_fractions(schema: FeatureSchema) -> None:
    assert json_to_matrix({"features": _row(c1=3)}, schema)[0, 1] == 3.0
    with pytest.raises(
        InvalidInput, match=r"^feature 'mean_texture' \(row 0\) must be an integer\.$"
    ):
        json_to_matrix({"features": _row(c1=3.5)}, schema)


def test_inputs_bool_feature_takes_true_false_0_1(schema: FeatureSchema) -> None:
    X = json_to_matrix([_row(c2=True), _row(c2=0)], schema)

    assert X[:, 2].tolist() == [1.0, 0.0]
    with pytest.raises(
        InvalidInput, match=r"^feature 'mean_perimeter' \(row 0\) must be 0, 1, true or false\.$"
    ):
        json_to_matrix({"features": _row(c2=2)}, schema)


def test_inputs_huge_integers_are_infinite_not_crashes(schema: FeatureSchema) -> None:
    with pytest.raises(InvalidInput, match="is infinite"):
        json_to_matrix({"features": _row(c3=10**400)}, schema)


def test_inputs_matrix_is_float64_in_feature_order(schema: FeatureSchema) -> None:
    row = [float(i) for i in range(30)]
    row[2] = 1.0  # the bool feature

    X = json_to_matrix({"features": row}, schema)

    assert X.dtype == np.float64
    assert X.tolist() == [row]


def test_inputs_true_false_refused_for_numeric_features(schema: FeatureSchema) -> None:
    with pytest.raises(
        InvalidInput,
        match=r"^feature 'mean_area' \(row 1\) must be a number, not true/false\.$",
    ):
        json_to_matrix([_row(), _row(c3=False)], schema)
