"""A fixed-width export of the user's table: cells padded with spaces, as databases export
``CHAR(n)`` columns and some tools write every CSV cell.

The endpoint and batch scoring read a CSV cell trimmed. Training reads the file the same way,
so a padded number, null spelling or True/False keeps its column's type, and a category is its
trimmed text in training (from CSV or Parquet) and in every body. A model trained on the padded
export is the model of the clean table, and answers the padded rows as that model answers the
clean ones. Labels kept by hand in two cases are noted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from app.inputs import FAST_PATH_BYTES, _fast_csv, csv_to_matrix
from app.main import create_app
from app.settings import AppSettings
from core.errors import InvalidInput
from core.features import FeatureSchema, category_index
from core.model import Model, load_model
from pipelines.batch import score_file
from pipelines.profile import encode
from tests.factories import flags_table, train_table

TARGET = "churned"


def _table() -> pd.DataFrame:
    frame = flags_table(rows=600, seed=3)
    frame.loc[[5, 17], "spend"] = np.nan
    return frame


def _pad(value: Any) -> str:
    return " NA " if pd.isna(value) else f" {value}   "


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Model:
    tmp = tmp_path_factory.mktemp("clean")
    return load_model(train_table(tmp, _table(), TARGET, "logistic_regression"))


def _features(model: Model) -> list[dict[str, Any]]:
    return [f.model_dump() for f in model.manifest.features]


def _answers(model: Model, csv_body: str, records: list[dict[str, Any]]) -> tuple[Any, Any]:
    settings = AppSettings(model_uri=str(model.bundle.path), cache_enabled=False)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        by_csv = client.post(
            "/invocations",
            content=csv_body,
            headers={"Content-Type": "text/csv", "Accept": "application/json"},
        )
        by_json = client.post("/v1/predict", json={"records": records})
    assert by_csv.status_code == by_json.status_code == 200, (by_csv.text, by_json.text)
    return by_csv.json(), by_json.json()


def test_a_padded_csv_export_trains_the_clean_tables_model(tmp_path: Path, clean: Model) -> None:
    """Every cell padded: `` 3 ``, `` 0.5 ``, `` NA ``, `` True ``, ``'basic   '``, and the
    target `` False ``. pandas alone reads ``spend`` (a padded NA) and ``premium`` as text,
    and ``plan`` as padded categories."""
    frame = _table()
    padded = frame.map(_pad)
    model = load_model(train_table(tmp_path, padded, TARGET, "logistic_regression"))

    assert _features(model) == _features(clean)
    assert model.manifest.target.classes == clean.manifest.target.classes == [False, True]
    X = encode(frame, list(clean.manifest.features))
    np.testing.assert_array_equal(model.predict(X).probabilities, clean.predict(X).probabilities)

    rows = padded.drop(columns=TARGET).head(60)
    body = rows.to_csv(header=False, index=False)
    assert " NA ," in body and " True   ," in body and " basic   \n" in body
    typed = frame.drop(columns=TARGET).head(60)  # JSON has types: only the text is padded
    records = json.loads(typed.assign(plan=rows["plan"]).to_json(orient="records"))
    by_csv, by_json = _answers(model, body, records)
    expected = clean.predict(X[:60])
    assert by_csv["predictions"] == by_json["predictions"] == expected.labels.tolist()
    assert expected.probabilities is not None
    np.testing.assert_allclose(by_csv["probabilities"], expected.probabilities, rtol=1e-12)


def test_padded_text_in_parquet_is_the_trimmed_category(tmp_path: Path, clean: Model) -> None:
    """Parquet keeps types, so only the text is padded; the category is its trimmed text, and
    a padded JSON string or CSV cell is that category at the endpoint."""
    frame = _table()
    padded = frame.assign(plan=frame["plan"].str.ljust(10))
    model = load_model(train_table(tmp_path, padded, TARGET, "logistic_regression", parquet=True))

    assert _features(model) == _features(clean)
    rows = padded.drop(columns=TARGET).head(60)
    by_csv, by_json = _answers(
        model,
        rows.to_csv(header=False, index=False),
        json.loads(rows.to_json(orient="records")),
    )
    expected = clean.predict(encode(frame.head(60), list(clean.manifest.features)))
    assert by_csv["predictions"] == by_json["predictions"] == expected.labels.tolist()


def test_a_bundle_listing_padded_categories_reads_trimmed_text(clean: Model) -> None:
    """A bundle trained before text was trimmed lists its categories padded; its codes are
    found by the trimmed text every reader now gives."""
    features = [
        f.model_copy(update={"categories": [f"{c}   " for c in f.categories or []]})
        if f.is_categorical
        else f
        for f in clean.manifest.features
    ]
    manifest = clean.manifest.model_copy(update={"features": features})
    plan = next(f for f in features if f.is_categorical)
    assert plan.categories is not None
    assert category_index(plan) == {c.strip(): float(k) for k, c in enumerate(plan.categories)}

    j = clean.feature_names.index("plan")
    schema = FeatureSchema(manifest)
    for k, category in enumerate(plan.categories):
        assert schema.text_value(f" {category.strip()}", 0, j, "") == float(k)


def test_mlship_predict_reads_a_padded_export_as_the_endpoint(tmp_path: Path, clean: Model) -> None:
    """Batch scoring reads number columns as numbers, which is fast, but pyarrow matches its
    null spellings untrimmed: a padded `` NA `` makes it read the file again, each cell
    trimmed as the endpoint trims it. A cell that is no number is still refused by row."""
    frame = _table()
    padded = frame.drop(columns=TARGET).map(_pad)
    source = tmp_path / "export.csv"
    padded.to_csv(source, index=False)
    said: list[str] = []

    result = score_file(clean, str(source), str(tmp_path / "scores.csv"), chunk_rows=128,
                        progress=said.append)  # fmt: skip

    scores = pd.read_csv(tmp_path / "scores.csv")
    expected = clean.predict(encode(frame, list(clean.manifest.features)))
    assert result.rows == len(frame)
    assert scores["prediction"].tolist() == expected.labels.tolist()
    assert expected.probabilities is not None
    np.testing.assert_allclose(scores["proba_True"], expected.probabilities[:, 1], rtol=1e-12)
    assert any("padded null spellings" in line for line in said)

    padded.loc[300, "spend"] = " 12,5 "  # a decimal comma
    padded.to_csv(source, index=False)
    with pytest.raises(InvalidInput, match=r"row 300: feature 'spend' is not a number"):
        score_file(clean, str(source), str(tmp_path / "bad.csv"), chunk_rows=128)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export.csv", "scores.csv"]


def test_classes_spelled_in_two_cases_are_noted(tmp_path: Path) -> None:
    """Hand-kept labels drift in case ('Yes', 'yes'): the model learns them as two classes,
    so training says so, naming them. A padded 'yes ' is the same class as 'yes' already."""
    frame = _table()
    labels = np.where(frame[TARGET], "yes", "no").astype(object)
    labels[::7] = np.where(frame[TARGET][::7], "Yes", "no ")
    notes: list[str] = []

    model = load_model(
        train_table(tmp_path, frame.assign(churned=labels), TARGET, "logistic_regression",
                    say=notes.append)
    )  # fmt: skip

    assert model.manifest.target.classes == ["Yes", "no", "yes"]
    assert [n for n in notes if n.startswith("note:")] == [
        "note: the target column 'churned' has classes that differ only in case: 'Yes', "
        "'yes'. If they are one class, spell them alike in the data; the model learns them "
        "apart."
    ]


def test_a_large_padded_body_takes_the_fast_path_and_reads_as_the_exact_path(
    clean: Model,
) -> None:
    """A Batch Transform mini-batch of the fixed-width export: pyarrow reads the padded
    ``" NA "`` only as text, so every column is read as text and each number cell by the
    service's cell rule, in C++; a blank line in it is still refused by its number."""
    schema = FeatureSchema(clean.manifest)
    frame = pd.concat([_table()] * 20, ignore_index=True).drop(columns=TARGET)
    body = frame.map(_pad).to_csv(header=False, index=False).encode()
    assert len(body) > FAST_PATH_BYTES and b" NA ," in body

    fast = _fast_csv(body, schema)

    assert fast is not None
    lines = body.decode().splitlines()
    small = "\n".join(lines[:1000]).encode()
    assert len(small) < FAST_PATH_BYTES  # read cell by cell
    np.testing.assert_array_equal(fast[:1000], csv_to_matrix(small, schema))
    np.testing.assert_array_equal(fast, encode(frame, list(clean.manifest.features)))
    lines.insert(4321, "")
    with pytest.raises(InvalidInput, match=r"^CSV row 4321 is empty"):
        csv_to_matrix(("\n".join(lines) + "\n").encode(), schema)


def test_empty_text_in_parquet_is_a_gap_as_an_empty_csv_cell_is(
    tmp_path: Path, clean: Model
) -> None:
    """Databases export a missing text as ``""``; a Parquet file keeps it. It was learned as a
    category ``""`` while an empty CSV cell is missing: the same rows got 422 'trained
    without missing values' as CSV and an answer as JSON. Empty text is now a gap
    everywhere: in training, its baseline, CSV cells, and JSON strings."""
    from core.baseline import column_name

    frame = _table()
    frame.loc[frame.index % 5 == 0, "plan"] = ""
    frame.loc[frame.index % 7 == 0, "plan"] = "   "
    model = load_model(train_table(tmp_path, frame, TARGET, "logistic_regression", parquet=True))
    plan = next(f for f in model.manifest.features if f.name == "plan")
    assert plan.categories is not None
    assert sorted(plan.categories) == ["basic", "pro", "team"] and plan.nullable
    constraints = json.loads((model.bundle.path / "baseline" / "constraints.json").read_text())
    j = model.feature_names.index("plan")
    entry = next(f for f in constraints["features"] if f["name"] == column_name(j))
    assert entry["completeness"] < 1.0

    rows = frame.drop(columns=TARGET).head(60)
    by_csv, by_json = _answers(
        model, rows.to_csv(header=False, index=False), json.loads(rows.to_json(orient="records"))
    )
    with_gaps = rows.assign(plan=rows["plan"].where(rows["plan"].str.strip() != "", None))
    expected = model.predict(encode(with_gaps, list(model.manifest.features)))
    assert by_csv["predictions"] == by_json["predictions"] == expected.labels.tolist()
    assert np.isnan(encode(with_gaps, list(model.manifest.features))[:, j]).sum() > 0
    with pytest.raises(InvalidInput) as refused:  # the clean model had no gaps in plan
        csv_to_matrix(b"True,1,0.0,  \n", FeatureSchema(clean.manifest))
    assert str(refused.value) == (
        "feature 'plan' (row 0) is missing (null or empty), but the model was trained without "
        "missing values for it; send one of its categories."
    )
