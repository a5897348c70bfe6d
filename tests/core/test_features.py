"""One feature-value rule for serving and batch scoring: what one refuses, the other refuses
with the same message (the rule lives in core.features)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from app.main import create_app
from app.settings import AppSettings
from core.errors import InvalidInput
from core.features import FeatureSchema, put_numbers
from core.model import Model, load_model
from pipelines.batch import score_file


@pytest.fixture(scope="module")
def model(logistic_bundle: Path) -> Model:
    """The logistic bundle with its second feature declared integer and third boolean."""
    loaded = load_model(logistic_bundle)
    features = list(loaded.manifest.features)
    features[1] = features[1].model_copy(update={"dtype": "int64"})
    features[2] = features[2].model_copy(update={"dtype": "bool"})
    manifest = loaded.manifest.model_copy(update={"features": features})
    return Model(replace(loaded.bundle, manifest=manifest))


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        (1, 2.5, "feature 'mean_texture' (row 3) must be an integer."),
        (2, 0.5, "feature 'mean_perimeter' (row 3) must be 0, 1, true or false."),
        (0, float("inf"), "feature 'mean_radius' (row 3) is infinite; send finite numbers."),
        (
            0,
            None,
            "feature 'mean_radius' (row 3) is missing (null or NaN), but the model was trained "
            "without missing values for it; send a number.",
        ),
    ],
)
def test_features_batch_refuses_what_serving_refuses_with_the_same_message(
    tmp_path: Path, model: Model, column: int, value: float | None, message: str
) -> None:
    rows = np.ones((5, model.n_features))
    rows[:, 2] = 1.0
    cells: list[list[float | None]] = [list(r) for r in rows.tolist()]
    cells[3][column] = value
    src = tmp_path / "in.parquet"
    pq.write_table(
        pa.table({n: [r[j] for r in cells] for j, n in enumerate(model.feature_names)}), src
    )

    with pytest.raises(InvalidInput) as batch:
        score_file(model, str(src), str(tmp_path / "out.parquet"))
    settings = AppSettings(model_uri="unused: the model is passed in")
    with TestClient(create_app(settings, model), raise_server_exceptions=False) as client:
        if value is not None and not np.isfinite(value):  # JSON has no infinity: send CSV
            body = "\n".join(",".join(str(v) for v in r) for r in cells)
            answer = client.post("/invocations", content=body, headers={"Content-Type": "text/csv"})
        else:
            answer = client.post("/v1/predict", json={"instances": cells})

    assert str(batch.value) == message
    assert answer.status_code == 422
    assert answer.json() == {"error": message}
    assert not (tmp_path / "out.parquet").exists()


@pytest.fixture(scope="module")
def mixed_schema(penguin_bundle: Path) -> FeatureSchema:
    """The penguins' schema (text island and sex, numbers, a nullable one) with ``year``
    declared bool: every cell rule has a column."""
    manifest = load_model(penguin_bundle).manifest
    features = [
        f.model_copy(update={"dtype": "bool"}) if f.name == "year" else f for f in manifest.features
    ]
    return FeatureSchema(manifest.model_copy(update={"features": features}))


_TEXT = st.sampled_from(["Biscoe", "Dream", "Torgersen", "male", "female", "Atlantis", "", " a"])
_WHOLE = st.integers(min_value=-(2**53), max_value=2**53)
_NUMBER = st.floats(allow_nan=False, allow_infinity=False)
# What each kind of column usually holds, and what the cell rule refuses or reads by a rarer
# rule (true/false, a whole number too large for a float to hold exactly or at all, nesting).
_USUAL = {
    "category": st.one_of(st.none(), _TEXT, _WHOLE),
    "number": st.one_of(st.none(), _WHOLE, _NUMBER),
}
_ODD = st.one_of(
    st.booleans(), _TEXT, _NUMBER, st.sampled_from([2**53 + 1, 2**70, 10**400, -(10**400)]),
    st.just([1.0]), st.just({"a": 1}),
)  # fmt: skip


def _bits(X: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(X, dtype=np.float64).view(np.uint64)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_rows_converted_a_column_at_a_time_equal_the_cell_rule(
    mixed_schema: FeatureSchema, data: st.DataObject
) -> None:
    """Whatever JSON values the rows hold, the column-at-a-time conversion gives the cell
    rule's matrix bit for bit (-0.0, NaN for null, codes for text, whole numbers as floats),
    or gives way (None) to the cell rule, always where the cell rule refuses a row; rows of
    usual values always take it."""
    kinds = ["category" if c is not None else "number" for c in mixed_schema.codes]
    n_rows = data.draw(st.integers(min_value=32, max_value=40))
    rows = [[data.draw(_USUAL[k]) for k in kinds] for _ in range(n_rows)]
    odd = data.draw(
        st.lists(
            st.tuples(st.integers(0, n_rows - 1), st.integers(0, mixed_schema.n - 1), _ODD),
            max_size=2,
        )
    )
    for i, j, value in odd:
        rows[i][j] = value
    if data.draw(st.booleans()) and odd:
        rows[odd[0][0]] = rows[odd[0][0]][:-1]  # a row one value short
    try:
        expected = mixed_schema._slow_matrix(rows, "")
    except InvalidInput:
        expected = None
    got = mixed_schema._column_matrix(rows)
    if expected is None:
        assert got is None
    elif got is not None:
        np.testing.assert_array_equal(_bits(got), _bits(expected))
    if not odd:
        assert got is not None


_ODD_VALUES = [
    True,
    False,
    "Dream",
    "",
    2.5,
    -0.0,
    2**53 + 1,
    2**70,
    10**400,
    [1.0],
    {"a": 1},
    None,
]


def test_each_odd_value_in_each_column_is_converted_as_the_cell_rule_converts_it(
    mixed_schema: FeatureSchema,
) -> None:
    """Every odd value in every kind of column (text, number, bool), one at a time: the
    column path gives the cell rule's matrix or gives way, and gives way where it refuses."""
    usual = ["Biscoe", 39.1, 18.7, 181, 3750.0, "male", 1]
    for j in range(mixed_schema.n):
        for value in _ODD_VALUES:
            rows = [list(usual) for _ in range(32)]
            rows[5][j] = value
            try:
                expected = mixed_schema._slow_matrix(rows, "")
            except InvalidInput:
                expected = None
            got = mixed_schema._column_matrix(rows)
            if expected is None or got is None:
                assert got is None, (j, value)
            else:
                np.testing.assert_array_equal(_bits(got), _bits(expected), err_msg=f"{j} {value}")


def test_penguin_rows_with_text_and_gaps_are_converted_a_column_at_a_time(
    penguin_bundle: Path, penguins: pd.DataFrame
) -> None:
    """A table's rows as JSON lists (text, whole numbers, nulls, an unseen category) take the
    column path, and rows_to_matrix gives the cell rule's matrix."""
    model = load_model(penguin_bundle)
    schema = FeatureSchema(model.manifest)
    frame = penguins[model.feature_names]
    rows = orjson.loads(frame.to_json(orient="values"))
    rows[3][0] = "Atlantis"  # unseen
    assert any(None in r for r in rows) and any(isinstance(v, str) for v in rows[0])

    columns = schema._column_matrix(rows)

    assert columns is not None
    expected = schema._slow_matrix(rows, "")
    np.testing.assert_array_equal(_bits(columns), _bits(expected))
    np.testing.assert_array_equal(_bits(schema.rows_to_matrix(rows)), _bits(expected))


def test_a_chunked_number_column_is_written_into_a_matrix_column_with_nulls_as_nan() -> None:
    # A multi-threaded CSV parse gives a column in several chunks; each chunk lands at its
    # own rows of the (strided) matrix column, and a null is NaN, as column.to_numpy() gives.
    column = pa.chunked_array([[1.5, None], [], [3.0], [-0.0, 7.25, None]], pa.float64())
    X = np.full((6, 3), -1.0)
    put_numbers(X[:, 1], column)
    np.testing.assert_array_equal(X[:, 1], column.to_numpy())
    assert (X[:, [0, 2]] == -1.0).all()  # the other columns untouched
    assert np.signbit(X[3, 1])
