"""The one label rule of a classifier: the class of the row's largest probability, the first
one on a tie, exactly as ``argmax`` picks it, for every kind of class value."""

from __future__ import annotations

from unittest.mock import patch

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import core.model as core_model
from core.model import class_of_largest

_CLASSES = {
    "int": np.array([3, 7, 9, 12]),
    "bool": np.array([False, True]),
    "text": np.array(["Adelie", "Chinstrap", "Gentoo", "x"]),
    "object": np.array(["no", 2, 3.5, "yes"], dtype=object),  # as scikit-learn keeps mixed
}


@pytest.mark.parametrize("compare_from", [0, core_model.COMPARE_ROWS], ids=["compare", "argmax"])
@pytest.mark.parametrize("kind", sorted(_CLASSES))
@given(data=st.data())
def test_the_label_is_the_class_argmax_picks(
    kind: str, compare_from: int, data: st.DataObject
) -> None:
    """Both ways of finding it (a column comparison for two classes from COMPARE_ROWS rows,
    argmax below) pick argmax's class."""
    classes = _CLASSES[kind]
    k = data.draw(st.integers(1, len(classes)), label="classes")
    # few distinct values, so that ties (and -0.0 beside 0.0) are common
    values = st.sampled_from([0.0, -0.0, 0.25, 0.5, 1.0, 1e-300, 0.75])
    proba = data.draw(
        arrays(np.float64, st.tuples(st.integers(0, 40), st.just(k)), elements=values)
    )
    with patch.object(core_model, "COMPARE_ROWS", compare_from):
        got = class_of_largest(proba, classes[:k])
    expected = classes[:k][proba.argmax(axis=1)]
    assert got.dtype == expected.dtype
    assert got.tolist() == expected.tolist()


def test_a_large_two_class_prediction_matches_argmax() -> None:
    rng = np.random.default_rng(4)
    p = rng.random(200_000)
    proba = np.column_stack([1 - p, p])
    proba[::1000] = 0.5  # exact ties
    classes = np.array(["benign", "malignant"])
    np.testing.assert_array_equal(
        class_of_largest(proba, classes), classes[proba.argmax(axis=1)], strict=True
    )
