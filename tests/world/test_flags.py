"""A table with yes/no columns, end to end: a True/False feature and target, a small count, and
an amount that is zero for most rows (:func:`tests.factories.flags_table`).

pandas writes a bool column as ``True``/``False`` and reads it back (in any case) as bool, so
that is how such rows reach the endpoint: the service reads them as training read them, in the
exact and in the C++ path. The target's classes stay True and False on every route and
runtime. The drift reference gives a flag and a count one bin per value, so a change in their
shares shows in the PSI.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from tritonclient.http import InferResult

from app.inputs import FAST_PATH_BYTES, _fast_csv, csv_to_matrix
from app.jsonlines import _record_jsonlines, jsonlines_to_matrix
from app.main import create_app
from app.settings import AppSettings
from core.drift import PSI_MODERATE, PSI_SIGNIFICANT, ReferenceBins
from core.errors import InvalidInput
from core.features import BOOLEAN_CELLS, FeatureSchema
from core.model import Model, load_model
from pipelines.profile import encode
from tests.factories import flags_table, train_table


@pytest.fixture(scope="module")
def model(flags_bundle: Path) -> Model:
    return load_model(flags_bundle)


@pytest.fixture(scope="module")
def client(flags_bundle: Path) -> Iterator[TestClient]:
    settings = AppSettings(model_uri=str(flags_bundle), cache_enabled=False)
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


def _matrix(frame: pd.DataFrame, model: Model) -> np.ndarray:
    """The rows as training encodes them (booleans 0/1, categories as codes)."""
    return encode(frame, list(model.manifest.features))


def test_boolean_cells_are_what_pandas_reads_as_bool(model: Model) -> None:
    """The service's spellings of a boolean cell are pandas' (training reads CSV with pandas):
    each, in any case, is read as a bool column, and by the service as that value; anything
    else is not a bool to pandas."""
    schema = FeatureSchema(model.manifest)  # feature 0: premium, True/False
    for text, value in BOOLEAN_CELLS.items():
        for spelling in (text, text.upper(), text.title(), text[0] + text[1:].upper()):
            column = pd.read_csv(io.StringIO(f"a\n{spelling}\n{spelling}\n"))["a"]
            assert column.dtype == bool and column.tolist() == [bool(value)] * 2, spelling
            assert schema.text_value(spelling, 0, 0, "") == value, spelling
    for other in ("yes", "t", "1", "on"):
        assert pd.read_csv(io.StringIO(f"a\n{other}\nFalse\n"))["a"].dtype != bool


def test_manifest_keeps_the_true_false_target_and_feature(model: Model) -> None:
    assert model.manifest.target.classes == [False, True]
    assert all(type(c) is bool for c in model.manifest.target.classes)
    dtypes = {f.name: f.dtype for f in model.manifest.features}
    assert dtypes == {"premium": "bool", "seats": "int64", "spend": "float64", "plan": "category"}


def test_csv_rows_as_pandas_writes_them_are_answered(client: TestClient, model: Model) -> None:
    """The rows of the user's own table, written by pandas (``True``/``False``), are answered
    like the model predicts them in process; a CSV answer's label is ``true``/``false``."""
    frame = flags_table(rows=12, seed=1)[model.feature_names]
    body = frame.to_csv(header=False, index=False)
    body = body.replace("True,", "TRUE,", 1).replace("False,", " false ,", 1)

    answer = client.post(
        "/invocations", content=body, headers={"Content-Type": "text/csv", "Accept": "text/csv"}
    )

    assert answer.status_code == 200, answer.text
    rows = list(csv.reader(io.StringIO(answer.text)))
    expected = model.predict(_matrix(frame, model))
    assert [r[0] for r in rows] == ["true" if v else "false" for v in expected.labels.tolist()]
    assert expected.probabilities is not None
    np.testing.assert_allclose(
        np.array([r[1:] for r in rows], dtype=float), expected.probabilities, rtol=1e-12
    )


def test_a_cell_that_is_no_boolean_is_named(client: TestClient) -> None:
    answer = client.post(
        "/invocations",
        content="False,2,0.0,pro\nyes,1,3.5,basic\n",
        headers={"Content-Type": "text/csv"},
    )

    assert answer.status_code == 422
    assert answer.json()["error"] == "CSV row 1: feature 'premium' must be true, false, 1 or 0."


def test_a_csv_header_in_another_order_is_named(client: TestClient, model: Model) -> None:
    """A header equal to the feature names is skipped; the same names in another order (a
    table exported with its columns rearranged) would be read as data by position, so it is
    refused with the order to send."""
    frame = flags_table(rows=3, seed=10)[model.feature_names]
    headers = {"Content-Type": "text/csv"}
    same = frame.to_csv(index=False)
    other = frame[["plan", "premium", "seats", "spend"]].to_csv(index=False)

    skipped = client.post("/invocations", content=same, headers=headers)
    refused = client.post("/invocations", content=other, headers=headers)

    assert skipped.status_code == 200 and len(skipped.json()["predictions"]) == 3
    assert refused.status_code == 422
    assert refused.json()["error"] == (
        "The CSV header names the model's features in another order; send the columns in the "
        "model's order (premium, seats, spend, plan): a header in that order is skipped."
    )


def test_large_csv_takes_the_fast_path_and_reads_as_the_exact_path(model: Model) -> None:
    """A Batch Transform-sized body of pandas' True/False cells (and other spellings of them,
    1 and 0 among them) is parsed in C++ and every row equals what the exact path reads, and
    what training reads."""
    schema = FeatureSchema(model.manifest)
    frame = flags_table(rows=4000, seed=2)[model.feature_names]
    lines = frame.to_csv(index=False, header=False).splitlines()
    spellings = ["TRUE", "false", " True", "FALSE ", "1", "0", "1.0", "tRuE"]
    for k, spelling in enumerate(spellings):
        cells = lines[k * 97].split(",")
        cells[0] = spelling
        lines[k * 97] = ",".join(cells)
        frame.iloc[k * 97, 0] = spelling.strip().lower() in ("true", "1", "1.0")
    body = ("\n".join(lines) + "\n").encode()

    fast = _fast_csv(body, schema)
    exact = np.vstack([csv_to_matrix(line.encode(), schema) for line in lines])

    assert fast is not None and len(body) > FAST_PATH_BYTES
    np.testing.assert_array_equal(fast, exact)
    np.testing.assert_array_equal(exact, _matrix(frame, model))
    # one cell that is no boolean: the exact path names its row
    lines[3001] = "yes," + lines[3001].split(",", 1)[1]
    with pytest.raises(InvalidInput, match="CSV row 3001: feature 'premium' must be true"):
        csv_to_matrix(("\n".join(lines) + "\n").encode(), schema)


def test_json_lines_records_keep_json_s_own_true_and_false(
    client: TestClient, model: Model
) -> None:
    """JSON Lines of records as pandas writes them (``true``/``false``) take the C++ path, and
    read as the exact path reads them; Python's ``True`` is not JSON (400)."""
    schema = FeatureSchema(model.manifest)
    frame = flags_table(rows=3000, seed=3)[model.feature_names]
    body = frame.to_json(orient="records", lines=True)
    lines = body.splitlines()
    headers = {"Content-Type": "application/jsonlines", "Accept": "application/jsonlines"}

    fast = _record_jsonlines(body.encode(), schema)
    answer = client.post("/invocations", content=body, headers=headers)
    broken = client.post("/invocations", content=body.replace("true", "True", 1), headers=headers)

    assert fast is not None and len(body) > FAST_PATH_BYTES
    exact = np.vstack([jsonlines_to_matrix(line.encode(), schema) for line in lines])
    np.testing.assert_array_equal(fast, exact)
    np.testing.assert_array_equal(exact, _matrix(frame, model))
    assert answer.status_code == 200, answer.text
    expected = model.predict(exact).labels.tolist()
    assert [json.loads(line)["predictions"][0] for line in answer.text.splitlines()] == expected
    assert broken.status_code == 400
    assert "JSON Lines row 0 is not one JSON value" in broken.json()["error"]


@pytest.mark.parametrize("runtime", ["sklearn", "onnx"])
def test_classes_are_the_predictions_type_on_every_route(
    flags_bundle: Path, model: Model, runtime: str
) -> None:
    """Answers name the classes True and False, as their predictions are, on both runtimes;
    the Open Inference metadata's label datatype is the inference answer's (BOOL)."""
    frame = flags_table(rows=6, seed=4)[model.feature_names]
    rows = frame.to_numpy().tolist()
    expected = model.predict(_matrix(frame, model)).labels.tolist()
    settings = AppSettings(model_uri=str(flags_bundle), runtime=runtime, cache_enabled=False)
    with TestClient(create_app(settings)) as c:
        invocations = c.post("/invocations", json={"instances": rows}).json()
        rest = c.post("/v1/predict", json={"instances": rows}).json()
        metadata = c.get(f"/v2/models/{model.name}").json()
        inputs = [
            {"name": name, "datatype": "BYTES" if name == "plan" else "FP64", "shape": [6],
             "data": frame[name].astype(str if name == "plan" else float).tolist()}
            for name in model.feature_names
        ]  # fmt: skip
        infer = c.post(f"/v2/models/{model.name}/infer", json={"inputs": inputs})
    oip = infer.json()
    # as the most common OIP client reads the answer (tritonclient's own JSON parser)
    triton = InferResult.from_response_body(infer.content).as_numpy("predict")

    for answer in (invocations, rest):
        assert answer["classes"] == [False, True]
        assert answer["predictions"] == expected
        assert all(type(p) is bool for p in answer["predictions"])
    labels = next(o for o in oip["outputs"] if o["name"] == "predict")
    declared = next(o for o in metadata["outputs"] if o["name"] == "predict")
    assert labels["data"] == expected
    assert labels["datatype"] == declared["datatype"] == "BOOL"
    assert triton is not None and triton.dtype == np.bool_ and triton.tolist() == expected


@pytest.mark.parametrize("library", ["tritonclient", "kserve"])
def test_oip_clients_send_the_table_s_columns_as_the_metadata_declares(
    client: TestClient, model: Model, library: str
) -> None:
    """Each feature tensor is declared of the feature's own type, so the OIP clients take the
    DataFrame's columns as they are: tritonclient refuses a numpy bool or int column for an
    FP64 tensor (``got unexpected datatype BOOL from numpy array, expected FP64``)."""
    frame = flags_table(rows=8, seed=7)[model.feature_names]
    metadata = client.get(f"/v2/models/{model.name}").json()
    declared = {t["name"]: t["datatype"] for t in metadata["inputs"]}
    assert declared == {"premium": "BOOL", "seats": "INT64", "spend": "FP64", "plan": "BYTES"}
    columns = {
        name: frame[name].to_numpy(dtype=object if declared[name] == "BYTES" else None)
        for name in model.feature_names
    }

    if library == "tritonclient":
        import tritonclient.http as triton

        tensors = []
        for name, column in columns.items():
            tensor = triton.InferInput(name, [len(frame)], declared[name])
            tensor.set_data_from_numpy(column, binary_data=False)
            tensors.append(tensor)
        body, _ = triton.InferenceServerClient.generate_request_body(tensors)
        answer = client.post(f"/v2/models/{model.name}/infer", content=body)
    else:
        from kserve import InferInput, InferRequest

        inputs = []
        for name, column in columns.items():
            tensor = InferInput(name, [len(frame)], declared[name])
            tensor.set_data_from_numpy(column, binary_data=False)
            inputs.append(tensor)
        request, _ = InferRequest(model_name=model.name, infer_inputs=inputs).to_rest()
        answer = client.post(f"/v2/models/{model.name}/infer", json=request)

    assert answer.status_code == 200, answer.text
    labels = InferResult.from_response_body(answer.content).as_numpy("predict")
    assert labels is not None
    assert labels.tolist() == model.predict(_matrix(frame, model)).labels.tolist()


def test_drift_reference_gives_a_flag_and_a_count_a_bin_per_value(model: Model) -> None:
    """Quantile edges gave the premium flag one bin (its PSI was 0 whatever its share) and
    merged seat counts; a bin per value shows a change of shares, and the zero amounts keep a
    bin of their own. Rows drawn like the training rows stay below moderate drift."""
    bins = ReferenceBins(model.manifest)
    reference = model.manifest.reference
    assert reference["premium"].bin_edges == [0.0, 0.5, 1.0]
    assert reference["seats"].bin_edges == [1.0, 1.5, 2.5, 3.5, 4.0]
    spend = reference["spend"]
    assert spend.bin_edges[0] == 0.0 and 0.0 < spend.bin_edges[1] < 1e-300  # zeros alone
    assert spend.frequencies[0] == pytest.approx(0.6, abs=0.05)

    same = flags_table(rows=3000, seed=5)
    premium = same.assign(premium=np.random.default_rng(6).random(3000) < 0.9)
    big_teams = same.assign(seats=np.where(same["seats"] == 3, 4, same["seats"]))
    spenders = same.assign(spend=np.where(same["spend"] == 0, 0.01, same["spend"]))

    def psi(frame: pd.DataFrame) -> dict[str, float]:
        profile = bins.profile(_matrix(frame[model.feature_names], model))
        return dict(zip(bins.names, bins.psi(profile.counts, profile.rows).tolist(), strict=True))

    assert max(psi(same).values()) < PSI_MODERATE
    assert psi(premium)["premium"] > PSI_SIGNIFICANT
    assert psi(big_teams)["seats"] > PSI_SIGNIFICANT
    assert psi(spenders)["spend"] > PSI_SIGNIFICANT


def test_data_quality_baseline_describes_the_flag_as_the_check_reads_it(
    flags_bundle: Path, model: Model
) -> None:
    """The scheduled pipeline's QualityCheck (Model Monitor's analyzer, built on Deequ) reads
    the input CSV's text. pandas writes the flag as True/False, which Deequ's patterns type as
    text (its Boolean pattern, ``^(true|false)$``, is lower-case only; the documented types
    are Integral, Fractional, String and Unknown: "Schema for Constraints"), so the baseline
    says String with both values in the domain. It said Integral, so every run on such a file
    failed its data type check (threshold 100%)."""
    import re

    from core.baseline import BUNDLE_CONSTRAINTS, BUNDLE_STATISTICS

    stats = json.loads((flags_bundle / BUNDLE_STATISTICS).read_text())["features"][0]
    rule = json.loads((flags_bundle / BUNDLE_CONSTRAINTS).read_text())["features"][0]
    cells = {line.split(",")[0] for line in
             flags_table(rows=200, seed=8)[model.feature_names].to_csv(
                 header=False, index=False).splitlines()}  # fmt: skip
    # Deequ's StatefulDataType patterns (awslabs/deequ, analyzers/catalyst/StatefulDataType)
    deequ = {
        "Fractional": re.compile(r"^(-|\+)? ?\d*\.\d*$"),
        "Integral": re.compile(r"^(-|\+)? ?\d*$"),
        "Boolean": re.compile(r"^(true|false)$"),
    }

    assert cells == {"False", "True"}
    assert not any(p.match(c) for p in deequ.values() for c in cells)  # String to Deequ
    assert stats["inferred_type"] == rule["inferred_type"] == "String"
    assert rule["string_constraints"]["domains"] == ["False", "True"]
    buckets = stats["string_statistics"]["distribution"]["categorical"]["buckets"]
    assert {b["value"] for b in buckets} == {"False", "True"}


def test_an_identifier_column_is_noted_then_left_out_of_training_and_copied_by_batch(
    tmp_path: Path,
) -> None:
    """A customer table's id column: training notes that it looks like an identifier and says
    how to leave it out (data.exclude); left out, it is no feature, and `mlship predict`
    copies it beside the predictions of the whole file as exported (id column included)."""
    from pipelines.batch import score_file
    from pipelines.data import split_xy
    from pipelines.profile import profile

    frame = flags_table(rows=400, seed=9)
    frame.insert(0, "customer_id", np.arange(7000, 7400))
    notes: list[str] = []
    xy = split_xy(frame, "churned", "classification")
    profile(xy.features, xy.dtypes, say=notes.append)

    bundle = train_table(
        tmp_path, frame, "churned", "logistic_regression", data={"exclude": ["customer_id"]}
    )
    model = load_model(bundle)
    file = tmp_path / "export.csv"
    frame.drop(columns="churned").to_csv(file, index=False)
    score_file(model, str(file), str(tmp_path / "out.csv"), id_column="customer_id")
    out = pd.read_csv(tmp_path / "out.csv")

    assert notes == [
        "note: column 'customer_id' holds a different value in every training row, as an "
        "identifier does, which tells the model nothing about new rows; if it is one, leave "
        "it out: --set 'data.exclude=[customer_id]'"
    ]
    assert model.feature_names == ["premium", "seats", "spend", "plan"]
    assert out["customer_id"].tolist() == frame["customer_id"].tolist()
    expected = model.predict(_matrix(frame[model.feature_names], model)).labels
    assert out["prediction"].tolist() == expected.tolist()


def test_a_parquet_file_of_pandas_nullable_types_with_gaps_trains_and_serves(
    tmp_path: Path,
) -> None:
    """pandas' nullable types (Int64, boolean, string) keep their gaps as pd.NA, and a
    Parquet file of them reads back so. Training crashed on them ('float() argument must be
    a string or a real number, not NAType'); now each column keeps its type, its gaps are
    missing values, and the service answers rows with gaps as the model does in process."""
    frame = flags_table(rows=600, seed=11)
    frame["seats"] = frame["seats"].astype("Int64")
    frame.loc[::13, "seats"] = pd.NA
    frame["premium"] = frame["premium"].astype("boolean")
    frame.loc[::17, "premium"] = pd.NA
    frame["plan"] = frame["plan"].astype("string")
    frame.loc[::19, "plan"] = pd.NA

    bundle = train_table(tmp_path, frame, "churned", "logistic_regression", parquet=True)
    model = load_model(bundle)
    features = {f.name: (f.dtype, f.nullable) for f in model.manifest.features}
    rows = [
        [None if pd.isna(v) else v for v in row]
        for row in frame[model.feature_names].head(40).astype(object).itertuples(index=False)
    ]
    settings = AppSettings(model_uri=str(bundle), cache_enabled=False)
    with TestClient(create_app(settings)) as c:
        answer = c.post("/invocations", json={"instances": rows})

    assert features == {
        "premium": ("bool", True),
        "seats": ("int64", True),
        "spend": ("float64", False),
        "plan": ("category", True),
    }
    assert set(model.manifest.features[3].categories or []) == {"basic", "pro", "team"}
    X = FeatureSchema(model.manifest).rows_to_matrix(rows)
    assert np.isnan(X).sum() == sum(v is None for r in rows for v in r) > 0
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == model.predict(X).labels.tolist()


def test_batch_scoring_reads_a_csv_flag_as_the_endpoint_does(tmp_path: Path, model: Model) -> None:
    """`mlship predict` on a CSV file reads each True/False cell by the service's rule (it
    used pyarrow's inference, which refused 'tRUE' and ' True ' as a text column), and names
    the row of a cell the service refuses too."""
    from pipelines.batch import score_file

    frame = flags_table(rows=40, seed=13)[model.feature_names]
    lines = frame.to_csv(index=False).splitlines()
    for k, spelling in enumerate(["tRUE", " True ", "FALSE", "1", "0"], start=1):
        lines[k] = spelling + "," + lines[k].split(",", 1)[1]
    src = tmp_path / "export.csv"
    src.write_text("\n".join(lines) + "\n")
    schema = FeatureSchema(model.manifest)
    endpoint = csv_to_matrix(("\n".join(lines[1:]) + "\n").encode(), schema)

    score_file(model, str(src), str(tmp_path / "out.csv"))
    out = pd.read_csv(tmp_path / "out.csv")
    lines[7] = "yes," + lines[7].split(",", 1)[1]
    src.write_text("\n".join(lines) + "\n")
    with pytest.raises(InvalidInput, match="row 6: feature 'premium' must be true, false, 1 or 0"):
        score_file(model, str(src), str(tmp_path / "refused.csv"))

    expected = model.predict(endpoint)
    assert out["prediction"].tolist() == expected.labels.tolist()
    assert expected.probabilities is not None
    np.testing.assert_allclose(out["proba_True"], expected.probabilities[:, 1], rtol=1e-12)
    assert not (tmp_path / "refused.csv").exists()
