"""Your own table, end to end: text features and labels, missing values, whole-number floats,
unseen and high-cardinality categories. Trained, served on every route and scored in batch,
each answer equal to the bundle's own in-process prediction.

The tables are real (Palmer penguins, shipped inside the ``palmerpenguins`` package; the
diabetes data under a renamed target) or generated with the awkward properties real exports
have.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from app.inputs import FAST_PATH_BYTES, _fast_csv, csv_to_matrix
from app.jsonlines import _record_jsonlines, jsonlines_to_matrix
from app.main import create_app
from app.settings import AppSettings
from core.errors import InvalidInput
from core.features import CSV_MISSING, FeatureSchema, category_codes, text_codes
from core.model import Model, load_model
from pipelines.batch import score_file
from pipelines.data import read_table
from tests.factories import train_table


@pytest.fixture(scope="module")
def penguin_model(penguin_bundle: Path) -> Model:
    return load_model(penguin_bundle)


@pytest.fixture(scope="module")
def client(penguin_bundle: Path) -> Iterator[TestClient]:
    settings = AppSettings(model_uri=str(penguin_bundle))
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


def _rows(penguins: pd.DataFrame, model: Model) -> list[list[Any]]:
    """Rows as a client sends them: text, numbers, null for missing (sex has gaps)."""
    frame = penguins[model.feature_names].iloc[::7].head(30)
    return [[None if pd.isna(v) else v for v in row] for row in frame.itertuples(index=False)]


def _expected(model: Model, rows: list[list[Any]]) -> list[str]:
    X = FeatureSchema(model.manifest).rows_to_matrix(rows)
    return [str(v) for v in model.predict(X).labels.tolist()]


def test_penguins_manifest_keeps_text_and_declared_types(penguin_model: Model) -> None:
    by_name = {f.name: f for f in penguin_model.manifest.features}

    assert penguin_model.manifest.target.classes == ["Adelie", "Chinstrap", "Gentoo"]
    assert by_name["island"].dtype == "category"
    assert sorted(by_name["island"].categories or []) == ["Biscoe", "Dream", "Torgersen"]
    assert by_name["sex"].dtype == "category" and by_name["sex"].nullable
    # every flipper length in the file is whole, but the column is float: it stays float
    assert by_name["flipper_length_mm"].dtype == "float64"
    assert by_name["year"].dtype == "int64"
    # the golden rows are what a client sends: text for categories
    assert any(isinstance(v, str) for v in penguin_model.bundle.golden.inputs[0])


def test_penguins_every_json_shape_answers_text_labels(
    client: TestClient, penguins: pd.DataFrame, penguin_model: Model
) -> None:
    rows = _rows(penguins, penguin_model)
    names = penguin_model.feature_names
    records = [dict(zip(names, r, strict=True)) for r in rows]
    columns = {n: [r[j] for r in rows] for j, n in enumerate(names)}
    expected = _expected(penguin_model, rows)

    for path, body in [
        ("/v1/predict", {"instances": rows}),
        ("/v1/predict", {"records": records}),
        ("/v1/predict", {"inputs": columns}),
        ("/invocations", {"instances": rows}),
        ("/invocations", records),
    ]:
        answer = client.post(path, json=body)
        assert answer.status_code == 200, (path, answer.text)
        assert answer.json()["predictions"] == expected, path
    assert set(expected) <= {"Adelie", "Chinstrap", "Gentoo"}


def test_penguins_csv_in_and_out(
    client: TestClient, penguins: pd.DataFrame, penguin_model: Model
) -> None:
    rows = _rows(penguins, penguin_model)
    body = "\n".join(",".join("" if v is None else str(v) for v in r) for r in rows)

    answer = client.post(
        "/invocations", content=body, headers={"Content-Type": "text/csv", "Accept": "text/csv"}
    )

    assert answer.status_code == 200, answer.text
    labels = [line.split(",")[0] for line in answer.text.splitlines()]
    assert labels == _expected(penguin_model, rows)


def test_penguins_text_labels_as_a_numpy_array(
    client: TestClient, penguins: pd.DataFrame, penguin_model: Model
) -> None:
    """Accept: application/x-npy (the SageMaker SDK's NumpyDeserializer) gets the text labels
    as a unicode array, which numpy loads without unpickling."""
    rows = _rows(penguins, penguin_model)
    body = "\n".join(",".join("" if v is None else str(v) for v in r) for r in rows)

    answer = client.post(
        "/invocations",
        content=body,
        headers={"Content-Type": "text/csv", "Accept": "application/x-npy"},
    )

    assert answer.status_code == 200, answer.text
    labels = np.load(io.BytesIO(answer.content), allow_pickle=False)
    assert labels.dtype.kind == "U"
    assert labels.tolist() == _expected(penguin_model, rows)


# Text cells as exports write them: padded (also with a full-width space or a control
# character that str.strip() trims), quoted, unseen, in another case, empty (quoted or not;
# sex and bill_length_mm are the nullable ones) or a null spelling, also padded or quoted.
_ODD_TEXT = {
    "island": [" Dream ", '"Biscoe"', "\u3000Torgersen\u3000", "Atlantis", "Dream\x1f"],
    "sex": ['""', "", " male ", "MALE", "NA", " NA ", '"null"', "<NA>", "None"],
    "bill_length_mm": ["NA", "nan", '"NULL"', "-1.#IND"],
}


def test_penguins_large_csv_takes_the_fast_path_and_reads_as_the_exact_path(
    penguins: pd.DataFrame, penguin_model: Model
) -> None:
    """A Batch Transform-sized body of a table with text columns and gaps is parsed in C++
    (pyarrow) and every row equals what the exact path (one small body per line) reads."""
    schema = FeatureSchema(penguin_model.manifest)
    frame = penguins[penguin_model.feature_names].sample(3000, replace=True, random_state=0)
    lines = frame.to_csv(index=False, header=False).splitlines()
    k = 0
    for feature, texts in _ODD_TEXT.items():
        j = penguin_model.feature_names.index(feature)
        for text in texts * 15:  # every odd cell, spread over the body
            cells = lines[k].split(",")
            cells[j] = text
            lines[k] = ",".join(cells)
            k += 9
    body = ("\n".join(lines) + "\n").encode()

    fast = _fast_csv(body, schema)
    exact = np.vstack([csv_to_matrix(line.encode(), schema) for line in lines])

    assert fast is not None and len(body) > FAST_PATH_BYTES
    np.testing.assert_array_equal(fast, exact)
    np.testing.assert_array_equal(csv_to_matrix(body, schema), exact)
    sex = penguin_model.feature_names.index("sex")
    assert np.isnan(exact[:, sex]).sum() >= 30  # the empty cells are missing values


@pytest.mark.parametrize("spelling", ["", "NA", "null", "None", "N/A", "NaN"])
def test_penguins_null_spellings_mean_missing_in_training_serving_and_batch(
    tmp_path: Path, penguins: pd.DataFrame, penguin_model: Model, spelling: str
) -> None:
    """An R export writes a gap as NA, a database dump as null: training reads such a cell as
    missing (pandas), and so must the endpoint (a small body, the exact path, and a large one,
    the C++ path) and `mlship predict`, for text and number features alike: the answers equal
    those of the same rows sent with JSON nulls. The endpoint used to refuse NA in a number
    feature (422) and to read it as a never-seen category in a text one."""
    names = penguin_model.feature_names
    frame = penguins[names].sample(3000, replace=True, random_state=1, ignore_index=True)
    frame = frame.astype(object)
    frame.iloc[::3, names.index("sex")] = None
    frame.iloc[1::5, names.index("bill_length_mm")] = None
    rows = [[None if pd.isna(v) else v for v in r] for r in frame.itertuples(index=False)]
    schema = FeatureSchema(penguin_model.manifest)
    nulls = schema.rows_to_matrix(rows)  # the rows as JSON sends them
    expected = penguin_model.predict(nulls)
    src = tmp_path / "in.csv"
    frame.to_csv(src, index=False, na_rep=spelling)
    body = frame.to_csv(index=False, header=False, na_rep=spelling).encode()
    lines = body.splitlines()

    training = read_table(src).frame  # how `mlship train` reads the same file
    large = _fast_csv(body, schema)
    small = np.vstack([csv_to_matrix(line, schema) for line in lines[:200]])
    score_file(penguin_model, str(src), str(tmp_path / "out.csv"))
    batch = pd.read_csv(tmp_path / "out.csv", keep_default_na=False)

    pd.testing.assert_frame_equal(training.isna(), frame.isna(), check_dtype=False)
    assert large is not None
    np.testing.assert_array_equal(large, nulls)
    np.testing.assert_array_equal(small, nulls[:200])
    assert batch["prediction"].tolist() == expected.labels.tolist()
    probabilities = batch[[f"proba_{c}" for c in penguin_model.classes or []]].to_numpy()
    assert expected.probabilities is not None
    np.testing.assert_allclose(probabilities, expected.probabilities)


def test_csv_missing_is_pandas_default_null_list() -> None:
    """The one list of null spellings is the one pandas reads by default, which training
    uses (pandas.read_csv's na_values documentation); pyarrow's default lacks two of them."""
    from pandas._libs.parsers import STR_NA_VALUES  # type: ignore[import-not-found]

    assert set(STR_NA_VALUES) == CSV_MISSING
    cells = pd.read_csv(io.StringIO("\n".join(["x", *sorted(CSV_MISSING), "NA!"])), dtype=str)
    assert cells["x"].isna().tolist() == [True] * (len(CSV_MISSING) - 1) + [False]  # "" is a line
    assert CSV_MISSING - set(pacsv.ConvertOptions().null_values) == {"<NA>", "None"}


def test_penguins_large_jsonlines_records_take_the_fast_path_and_read_as_the_exact_path(
    penguins: pd.DataFrame, penguin_model: Model
) -> None:
    """Records lines as pandas writes them (text, whole numbers, null for a gap), with odd
    text (padded, unseen: JSON text is exact), parsed by pyarrow's JSON reader: every row
    equals what the exact path reads line by line."""
    schema = FeatureSchema(penguin_model.manifest)
    frame = penguins[penguin_model.feature_names].sample(3000, replace=True, random_state=2)
    island = frame["island"].to_numpy(dtype=object, copy=True)
    island[::50], island[1::50] = " Dream ", "Atlantis"
    frame["island"] = island
    body = frame.to_json(orient="records", lines=True).encode()

    fast = _record_jsonlines(body, schema)
    exact = np.vstack([jsonlines_to_matrix(line, schema) for line in body.splitlines()])

    assert fast is not None and len(body) > FAST_PATH_BYTES
    np.testing.assert_array_equal(fast, exact)
    sex = penguin_model.feature_names.index("sex")
    assert np.isnan(exact[:, sex]).sum() >= 30  # the nulls are missing values


def test_penguins_large_csv_with_a_blank_line_names_it(
    penguins: pd.DataFrame, penguin_model: Model
) -> None:
    schema = FeatureSchema(penguin_model.manifest)
    frame = penguins[penguin_model.feature_names].sample(3000, replace=True, random_state=0)
    lines = frame.to_csv(index=False, header=False).splitlines()
    lines.insert(500, "")

    with pytest.raises(InvalidInput, match=r"^CSV row 500 is empty"):
        csv_to_matrix(("\n".join(lines) + "\n").encode(), schema)


def test_single_text_feature_large_csv_with_a_blank_line_names_it(penguin_model: Model) -> None:
    """With one text feature an empty cell is a blank line: refused by its number, as in a
    small body, never read as a missing value."""
    island = next(f for f in penguin_model.manifest.features if f.name == "island")
    schema = FeatureSchema(penguin_model.manifest.model_copy(update={"features": [island]}))
    lines = ["Dream", "Biscoe"] * 20_000
    lines.insert(777, "")

    with pytest.raises(InvalidInput, match=r"^CSV row 777 is empty"):
        csv_to_matrix(("\n".join(lines) + "\n").encode(), schema)


def test_arrow_trims_what_str_strip_trims() -> None:
    """The fast path trims category text with pyarrow, the exact path with str.strip()."""
    import pyarrow.compute as pc

    chars = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    for padded in (["x" + c for c in chars], [c + "x" for c in chars]):
        trimmed = pc.utf8_trim_whitespace(pa.array(padded)).to_pylist()
        assert trimmed == [p.strip() for p in padded]


def test_penguins_oip_bytes_tensor_per_feature(
    client: TestClient, penguins: pd.DataFrame, penguin_model: Model
) -> None:
    rows = _rows(penguins, penguin_model)
    metadata = client.get(f"/v2/models/{penguin_model.name}").json()
    types = {t["name"]: t["datatype"] for t in metadata["inputs"]}
    inputs = [
        {"name": n, "shape": [len(rows)], "datatype": types[n], "data": [r[j] for r in rows]}
        for j, n in enumerate(penguin_model.feature_names)
    ]

    answer = client.post(f"/v2/models/{penguin_model.name}/infer", json={"inputs": inputs})

    assert types["island"] == "BYTES" and types["bill_length_mm"] == "FP64"
    assert answer.status_code == 200, answer.text
    labels = next(o for o in answer.json()["outputs"] if o["name"] == "predict")
    assert labels["datatype"] == "BYTES"
    assert labels["data"] == _expected(penguin_model, rows)


def test_penguins_whole_number_float_feature_takes_fractions(
    client: TestClient, penguins: pd.DataFrame, penguin_model: Model
) -> None:
    record = dict(zip(penguin_model.feature_names, _rows(penguins, penguin_model)[0], strict=True))
    record["flipper_length_mm"] = 181.5

    assert client.post("/v1/predict", json={"features": record}).status_code == 200


def test_penguins_text_is_trimmed_and_empty_text_is_missing_in_every_body(
    penguin_bundle: Path, penguins: pd.DataFrame, penguin_model: Model
) -> None:
    """The rule the README states: a category is its text trimmed, in JSON as in CSV, and
    text that is empty once trimmed is missing, as null is (with unseen categories refused,
    neither is refused as unseen)."""
    names = penguin_model.feature_names
    row = _rows(penguins, penguin_model)[0]
    strict = AppSettings(model_uri=str(penguin_bundle), unseen_categories="refuse")

    def record(**cells: Any) -> dict[str, Any]:
        return dict(zip(names, row, strict=True)) | cells

    def csv(**cells: Any) -> str:
        values = record(**cells)
        return ",".join("" if values[n] is None else str(values[n]) for n in names)

    with TestClient(create_app(strict), raise_server_exceptions=False) as refusing:
        padded_json = refusing.post("/v1/predict", json={"features": record(island=" Dream\t")})
        empty_json = refusing.post("/v1/predict", json={"features": record(sex=" ")})
        null_json = refusing.post("/v1/predict", json={"features": record(sex=None)})
        exact_json = refusing.post("/v1/predict", json={"features": record(island="Dream")})
        headers = {"Content-Type": "text/csv", "Accept": "text/csv"}
        padded_csv = refusing.post("/invocations", content=csv(island=" Dream "), headers=headers)
        empty_csv = refusing.post("/invocations", content=csv(sex=""), headers=headers)

    assert padded_json.status_code == null_json.status_code == exact_json.status_code == 200
    assert empty_json.status_code == 200
    for key in ("predictions", "probabilities"):
        assert padded_json.json()[key] == exact_json.json()[key]
        assert empty_json.json()[key] == null_json.json()[key]
    assert padded_csv.status_code == empty_csv.status_code == 200
    assert padded_csv.text.split(",")[0] == exact_json.json()["predictions"][0]
    assert empty_csv.text.split(",")[0] == null_json.json()["predictions"][0]


def test_penguins_unseen_category_is_counted_or_refused(
    penguin_bundle: Path, client: TestClient, penguins: pd.DataFrame, penguin_model: Model
) -> None:
    record = dict(zip(penguin_model.feature_names, _rows(penguins, penguin_model)[0], strict=True))
    record["island"] = "Atlantis"
    strict = AppSettings(model_uri=str(penguin_bundle), unseen_categories="refuse")

    counted = client.post("/v1/predict", json={"features": record})
    metrics = client.get("/metrics").text
    with TestClient(create_app(strict), raise_server_exceptions=False) as refusing:
        refused = refusing.post("/v1/predict", json={"features": record})

    assert counted.status_code == 200
    assert 'mlship_unseen_categories_total{feature="island"} 1.0' in metrics
    assert refused.status_code == 422
    assert refused.json()["error"].startswith(
        "feature 'island' (row 0) is not one of the categories the model was trained on ("
    )


def test_penguins_batch_scoring_equals_in_process(
    tmp_path: Path, penguins: pd.DataFrame, penguin_model: Model
) -> None:
    frame = penguins[penguin_model.feature_names]
    src = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), src)

    score_file(penguin_model, str(src), str(tmp_path / "out.csv"))

    out = pd.read_csv(tmp_path / "out.csv")
    rows = [[None if pd.isna(v) else v for v in r] for r in frame.itertuples(index=False)]
    assert out["prediction"].astype(str).tolist() == _expected(penguin_model, rows)


def test_penguins_batch_csv_reads_text_cells_as_the_service(
    tmp_path: Path, penguins: pd.DataFrame, penguin_model: Model
) -> None:
    """`mlship predict` on a CSV file reads padded text and empty cells as the endpoint reads
    the same CSV rows: one answer per row, the same as the service's."""
    frame = penguins[penguin_model.feature_names].dropna(subset=["bill_length_mm"]).head(60)
    frame = frame.astype({"island": object, "sex": object})
    frame.loc[frame.index[::5], "island"] = " Dream "
    frame.loc[frame.index[1::5], "sex"] = "  "  # blank: missing, as an empty cell
    src = tmp_path / "in.csv"
    frame.to_csv(src, index=False)

    score_file(penguin_model, str(src), str(tmp_path / "out.csv"))

    out = pd.read_csv(tmp_path / "out.csv")
    body = frame.to_csv(index=False, header=False).encode()
    served = penguin_model.predict(csv_to_matrix(body, FeatureSchema(penguin_model.manifest)))
    probabilities = out[[f"proba_{c}" for c in penguin_model.classes or []]].to_numpy()
    assert served.probabilities is not None
    assert out["prediction"].astype(str).tolist() == [str(v) for v in served.labels.tolist()]
    np.testing.assert_allclose(probabilities, served.probabilities)


@pytest.mark.parametrize("csv_cell", [False, True])
def test_text_codes_equal_the_python_reading(penguin_model: Model, csv_cell: bool) -> None:
    """The C++ lookup gives what the service's Python readers give: category_codes for typed
    text (Parquet, JSON), FeatureSchema.text_value for a CSV cell."""
    spec = next(f for f in penguin_model.manifest.features if f.name == "island")
    values = ["Dream", " Dream ", "", "  ", None, "Atlantis", "dream", "\u3000Biscoe", "Biscoe\x1f"]
    schema = FeatureSchema(penguin_model.manifest)
    j = penguin_model.feature_names.index("island")

    got = text_codes(pa.chunked_array([pa.array(values, pa.string())]), spec, csv_cell)

    if csv_cell:
        expected = [schema.text_value(v or "", 0, j, "") for v in values]
    else:
        expected = category_codes(values, spec).tolist()
    np.testing.assert_array_equal(got, np.array(expected))


def test_diabetes_with_a_renamed_target_trains_a_regressor(tmp_path: Path) -> None:
    from sklearn.datasets import load_diabetes

    data = load_diabetes(as_frame=True).frame.rename(columns={"target": "progression"})
    bundle = train_table(tmp_path, data, "progression", "ridge")
    model = load_model(bundle)
    settings = AppSettings(model_uri=str(bundle))
    rows = data.drop(columns="progression").head(5).to_numpy().tolist()

    with TestClient(create_app(settings)) as client:
        answer = client.post("/invocations", json={"instances": rows}).json()

    assert model.manifest.task == "regression" and model.manifest.target.name == "progression"
    np.testing.assert_allclose(
        answer["predictions"], model.predict(np.asarray(rows)).labels, rtol=1e-9
    )


def test_high_cardinality_and_unseen_categories(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 1500
    city = rng.choice([f"city-{i:03d}" for i in range(120)], size=n)
    colour = rng.choice(["red", "green", "blue"], size=n)
    x = rng.normal(size=n)
    y = np.where((colour == "red") ^ (x > 0), "yes", "no")
    frame = pd.DataFrame({"city": city, "colour": colour, "x": x, "label": y})
    frame.loc[::50, "colour"] = None  # missing text values

    bundle = train_table(
        tmp_path, frame, "label", "logistic_regression", data={"max_categories": 20}
    )
    model = load_model(bundle)
    city_spec = next(f for f in model.manifest.features if f.name == "city")
    rows: list[list[Any]] = [
        ["city-999", "red", 0.5],
        ["city-000", None, -0.5],
        ["never", "purple", 1.0],
    ]
    settings = AppSettings(model_uri=str(bundle))
    with TestClient(create_app(settings)) as client:
        answer = client.post("/v1/predict", json={"instances": rows})

    assert len(city_spec.categories or []) == 20 and city_spec.other
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == _expected(model, rows)
    # drift reference: 20 kept cities, then the share of the 'other' bucket
    assert len(model.manifest.reference["city"].frequencies) == 21


def test_penguins_without_gaps_serve_from_onnx_like_scikit_learn(
    tmp_path: Path, penguins: pd.DataFrame
) -> None:
    complete = penguins.dropna()
    bundle = train_table(tmp_path, complete, "species", "logistic_regression")
    model = load_model(bundle)
    rows = _rows(complete, model)
    rows[0][model.feature_names.index("island")] = "Atlantis"  # unseen: encoded as all zeros
    answers = {}
    for runtime in ("onnx", "sklearn"):  # runtime=onnx refuses to start without model.onnx
        settings = AppSettings(model_uri=str(bundle), runtime=runtime, cache_enabled=False)
        with TestClient(create_app(settings)) as client:
            answers[runtime] = client.post("/v1/predict", json={"instances": rows}).json()

    assert model.bundle.onnx_path is not None
    assert answers["onnx"]["predictions"] == answers["sklearn"]["predictions"]
    assert answers["onnx"]["predictions"] == _expected(model, rows)
    np.testing.assert_allclose(
        answers["onnx"]["probabilities"], answers["sklearn"]["probabilities"], atol=1e-6
    )


def test_penguins_with_gaps_serve_from_onnx_like_scikit_learn(
    penguin_bundle: Path, penguin_model: Model, penguins: pd.DataFrame
) -> None:
    """The bundle of the table with gaps carries model.onnx too (its imputation runs as
    IsNaN/Where: pipelines/onnx_imputer.py), and rows with gaps get scikit-learn's answers."""
    frame = penguins[penguin_model.feature_names]
    rows = [[None if pd.isna(v) else v for v in r] for r in frame.itertuples(index=False)]
    with_gaps = [r for r in rows if any(v is None for v in r)]
    answers = {}
    for runtime in ("onnx", "sklearn"):
        settings = AppSettings(model_uri=str(penguin_bundle), runtime=runtime, cache_enabled=False)
        with TestClient(create_app(settings)) as c:
            answers[runtime] = c.post("/v1/predict", json={"instances": rows}).json()

    assert penguin_model.bundle.onnx_path is not None and with_gaps
    assert answers["onnx"]["predictions"] == answers["sklearn"]["predictions"]
    assert answers["onnx"]["predictions"] == _expected(penguin_model, rows)
    np.testing.assert_allclose(
        answers["onnx"]["probabilities"], answers["sklearn"]["probabilities"], atol=1e-6
    )
