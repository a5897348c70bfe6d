"""No runtime hands on a non-finite output: core.model.finite names the first bad row, and
finite outputs whose sum overflows are still answered."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import InvalidInput
from core.model import Prediction, finite


def test_finite_outputs_pass_even_when_their_sum_overflows() -> None:
    labels = np.array([1.7e308, 1.7e308, -5.0])  # sums to inf: each value is finite
    proba = np.array([[1.7e308, 1.7e308], [0.5, 0.5], [0.1, 0.9]])
    prediction = Prediction(labels=labels, probabilities=proba)

    assert finite(prediction) is prediction


@pytest.mark.parametrize(
    ("labels", "proba", "row"),
    [
        (np.array([0, 1, 1]), np.array([[0.1, 0.9], [0.2, 0.8], [np.nan, np.nan]]), 2),
        (np.array([0, 1, 1]), np.array([[0.1, 0.9], [np.inf, 0.0], [0.5, 0.5]]), 1),
        (np.array([0.5, -np.inf, 2.0]), None, 1),
        (np.array([np.nan, 1.0, np.nan]), None, 0),
        (np.array([1.7e308, 1.7e308, np.nan]), None, 2),  # overflowing sum and a NaN
    ],
)
def test_non_finite_outputs_are_refused_naming_the_row(
    labels: np.ndarray, proba: np.ndarray | None, row: int
) -> None:
    with pytest.raises(InvalidInput, match=rf"row {row}: its output is not a finite number"):
        finite(Prediction(labels=labels, probabilities=proba))
