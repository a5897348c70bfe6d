"""The committed Great Expectations suite: fresh, passes the reference data, refuses bad data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from cli.main import main as mlship
from core.errors import ConfigError, DataError
from core.registry import RegistrySettings
from pipelines.data import materialise
from pipelines.validate import build_suite, load_suite, validate
from tests.pipelines.conftest import REPO, SUITE, WriteParams


@pytest.fixture(scope="module")
def reference(breast_cancer_csv: Path) -> pd.DataFrame:
    return pd.read_csv(breast_cancer_csv)


EXPECTATIONS = REPO / "pipelines" / "expectations"
# bundled dataset -> its label column
TARGETS = {"breast_cancer": "target", "diabetes": "target", "penguins": "species"}


@pytest.fixture(scope="module", params=sorted(TARGETS))
def bundled(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Each bundled dataset as `mlship prepare` writes it."""
    name: str = request.param
    return materialise(name, tmp_path_factory.mktemp("bundled") / f"{name}.csv")  # type: ignore[arg-type]


def test_generated_suite_passes_on_the_data_it_was_built_from(
    bundled: Path, tmp_path: Path
) -> None:
    out = tmp_path / "suite.json"
    argv = ["expectations", "--data", str(bundled), "--target", TARGETS[bundled.stem]]
    assert mlship([*argv, "--out", str(out)]) == 0
    suite = load_suite(out)
    assert validate(pd.read_csv(bundled), suite) == len(suite["expectations"])


def test_committed_suite_is_fresh_and_passes_on_its_data(bundled: Path, tmp_path: Path) -> None:
    committed = EXPECTATIONS / f"{bundled.stem}.json"
    out = tmp_path / committed.name
    argv = ["expectations", "--data", str(bundled), "--target", TARGETS[bundled.stem]]
    assert mlship([*argv, "--out", str(out)]) == 0
    assert json.loads(out.read_text()) == json.loads(committed.read_text()), (
        f"{committed.relative_to(REPO)} is stale: regenerate it with `.venv/bin/mlship "
        f"expectations --data data/{bundled.name} --target {TARGETS[bundled.stem]}` and commit it"
    )
    suite = load_suite(committed)
    assert validate(pd.read_csv(bundled), suite) == len(suite["expectations"])


def test_expectations_out_defaults_to_the_data_file_name(
    capsys: pytest.CaptureFixture[str], breast_cancer_csv: Path, tmp_path: Path
) -> None:
    assert mlship(["expectations", "--data", str(breast_cancer_csv)]) == 0
    written = tmp_path / "pipelines" / "expectations" / "breast_cancer.json"
    assert load_suite(written)["name"] == "breast_cancer"
    assert f"to {written.relative_to(tmp_path)}" in capsys.readouterr().out


def test_suite_of_missing_values_text_and_bool_columns_passes_on_its_data() -> None:
    n = 40
    frame = pd.DataFrame(
        {
            "x": [np.nan if i % 10 == 0 else float(i) for i in range(n)],  # 10% missing
            "flag": [i % 2 == 0 for i in range(n)],
            "flag_holes": [np.nan if i % 8 == 0 else i % 3 == 0 for i in range(n)],
            "flag_nullable": pd.array([None if i == 3 else i > 5 for i in range(n)], "boolean"),
            "count": pd.array([None if i == 7 else i for i in range(n)], "Int64"),
            "share": pd.array([None if i == 9 else i / n for i in range(n)], "Float64"),
            "colour": [None if i % 4 == 0 else ["red", "green"][i % 2] for i in range(n)],
            "note": [f"free text {i}" for i in range(n)],
            "label": ["cat" if i % 3 else "dog" for i in range(n)],
        }
    )
    frame.loc[frame.index[::20], "note"] = None
    frame["note"] = frame["note"].astype(object)
    suite = build_suite(frame, "label", name="mixed", tolerance=0.1)
    kwargs = {(e["type"], e["kwargs"].get("column")): e["kwargs"] for e in suite["expectations"]}
    not_null = "expect_column_values_to_not_be_null"
    in_set = "expect_column_values_to_be_in_set"
    types = "expect_column_values_to_be_in_type_list"
    assert kwargs[(not_null, "x")] == {"column": "x", "mostly": 0.8}  # 90% present, less 0.1
    assert kwargs[(not_null, "flag")] == {"column": "flag"}
    assert kwargs[(not_null, "colour")]["mostly"] == 0.65
    assert kwargs[(in_set, "colour")]["value_set"] == ["green", "red"]
    assert kwargs[(in_set, "label")]["value_set"] == ["cat", "dog"]
    for column in ("flag", "flag_holes", "flag_nullable"):
        assert {"bool", "BooleanDtype"} <= set(kwargs[(types, column)]["type_list"]), column
        assert kwargs[(in_set, column)]["value_set"] == [False, True], column
        assert ("expect_column_values_to_be_between", column) not in kwargs
    assert len(kwargs[(in_set, "note")]["value_set"]) == 38  # 40 rows, 2 of them missing
    assert validate(frame, suite) == len(suite["expectations"])
    # and it still refuses what the reference never had
    worse = frame.copy()
    worse.loc[: n // 2, "x"] = np.nan
    worse.loc[1, "colour"] = "blue"
    with pytest.raises(DataError) as info:
        validate(worse, suite, source="worse.csv")
    message = str(info.value)
    assert message.startswith(f"worse.csv fails 2 of {len(suite['expectations'])} expectations")
    assert "expect_column_values_to_not_be_null on column 'x' (mostly=0.8)" in message
    assert "expect_column_values_to_be_in_set on column 'colour'" in message
    assert "'blue'" in message


def test_free_text_column_gets_no_value_set() -> None:
    frame = pd.DataFrame({"note": [f"text {i}" for i in range(60)], "y": [0, 1] * 30})
    suite = build_suite(frame, "y", name="text")
    columns = {e["kwargs"].get("column") for e in suite["expectations"] if "set" in e["type"]}
    assert "note" not in columns
    assert validate(frame, suite) == len(suite["expectations"])


def test_column_without_any_value_gets_no_not_null() -> None:
    frame = pd.DataFrame({"empty": [np.nan] * 10, "x": np.arange(10.0), "y": [0, 1] * 5})
    suite = build_suite(frame, "y", name="empty")
    assert [e for e in suite["expectations"] if e["kwargs"].get("column") == "empty"] == []
    assert validate(frame, suite) == len(suite["expectations"])


def test_reference_with_duplicate_rows_gets_no_uniqueness_check() -> None:
    frame = pd.DataFrame({"x": [1.0, 1.0, 2.0, 3.0], "y": [0, 0, 1, 1]})
    suite = build_suite(frame, "y", name="dupes")
    types = [e["type"] for e in suite["expectations"]]
    assert "expect_compound_columns_to_be_unique" not in types
    assert validate(frame, suite) == len(suite["expectations"])


def test_suite_covers_every_kind_of_check() -> None:
    types = {e["type"] for e in load_suite(SUITE)["expectations"]}
    assert types == {
        "expect_table_columns_to_match_set",
        "expect_table_row_count_to_be_between",
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_be_in_type_list",
        "expect_column_values_to_be_between",
        "expect_column_values_to_be_in_set",
        "expect_compound_columns_to_be_unique",
    }


def test_reference_data_passes(reference: pd.DataFrame) -> None:
    assert validate(reference, load_suite(SUITE)) == 96


def test_value_within_tolerance_passes(reference: pd.DataFrame) -> None:
    frame = reference.copy()
    span = frame["mean_radius"].max() - frame["mean_radius"].min()
    frame.loc[0, "mean_radius"] = frame["mean_radius"].max() + 0.05 * span
    assert validate(frame, load_suite(SUITE)) == 96


def test_failing_data_reports_each_expectation(reference: pd.DataFrame) -> None:
    frame = reference.copy()
    frame.loc[0, "mean_radius"] = 1000.0
    frame.loc[1, "worst_area"] = np.nan
    frame.loc[2, "target"] = 2
    frame = pd.concat([frame, frame.iloc[[10]]], ignore_index=True)
    with pytest.raises(DataError) as info:
        validate(frame, load_suite(SUITE), source="new.csv")
    message = str(info.value)
    assert message.startswith("new.csv fails 4 of 96 expectations")
    assert "expect_column_values_to_be_between on column 'mean_radius'" in message
    assert "1000.0" in message
    assert "expect_column_values_to_not_be_null on column 'worst_area'" in message
    assert "expect_column_values_to_be_in_set on column 'target'" in message
    assert "expect_compound_columns_to_be_unique" in message
    assert "mlship expectations" in message


def test_missing_column_fails_column_set(reference: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="expect_table_columns_to_match_set"):
        validate(reference.drop(columns=["mean_area"]), load_suite(SUITE))


def test_training_refuses_failing_data(
    capsys: pytest.CaptureFixture[str],
    write_params: WriteParams,
    reference: pd.DataFrame,
    tmp_path: Path,
) -> None:
    path = tmp_path / "dupes.csv"
    pd.concat([reference, reference.iloc[:5]]).to_csv(path, index=False)
    params = write_params()
    assert mlship(["train", "--params", str(params), "--data", str(path)]) == 1
    err = capsys.readouterr().err
    assert "fails 1 of 96 expectations" in err
    assert "expect_compound_columns_to_be_unique" in err
    assert not (tmp_path / "out").exists()
    client = MlflowClient(tracking_uri=RegistrySettings.from_env().tracking_uri)
    assert client.get_experiment_by_name("mlship") is None, "no run, nothing registered"


def test_missing_suite_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="mlship expectations --data DATA --out"):
        load_suite(tmp_path / "none.json")


def test_regression_target_gets_a_range_not_a_set() -> None:
    frame = pd.DataFrame({"x": np.arange(50.0), "y": np.linspace(0.0, 1.0, 50) ** 2})
    suite = build_suite(frame, "y", name="r", tolerance=0.1)
    by_type = {(e["type"], e["kwargs"].get("column")): e["kwargs"] for e in suite["expectations"]}
    assert ("expect_column_values_to_be_in_set", "y") not in by_type
    assert by_type[("expect_column_values_to_be_between", "y")]["max_value"] == pytest.approx(1.1)
    assert by_type[("expect_column_values_to_be_between", "x")]["min_value"] == pytest.approx(-4.9)


def test_expectations_command_suggests_target(
    capsys: pytest.CaptureFixture[str], breast_cancer_csv: Path, tmp_path: Path
) -> None:
    out = tmp_path / "suite.json"
    argv = ["expectations", "--data", str(breast_cancer_csv), "--target", "targte"]
    assert mlship([*argv, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert (
        "no target column 'targte'. Did you mean 'target'? Pass the label column with --target"
        in err
    )
    assert not out.exists()


def test_an_excluded_identifier_is_checked_only_for_presence(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A customer id got the observed range, so the next export (new customers, new ids)
    failed the suite and training refused it. With --exclude (as data.exclude in training)
    it is only in the column set."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"customer_id": np.arange(1000, 1200), "x": rng.normal(size=200), "y": [0, 1] * 100}
    )
    data, out = tmp_path / "reference.csv", tmp_path / "suite.json"
    frame.to_csv(data, index=False)
    argv = ["expectations", "--data", str(data), "--target", "y", "--out", str(out)]
    later = frame.assign(customer_id=frame["customer_id"] + 5000)  # the next export

    assert mlship([*argv, "--exclude", "customer_id"]) == 0
    suite = load_suite(out)

    assert [e for e in suite["expectations"] if e["kwargs"].get("column") == "customer_id"] == []
    column_set = next(e for e in suite["expectations"] if "column_set" in e["kwargs"])
    assert "customer_id" in column_set["kwargs"]["column_set"]
    assert validate(later, suite) == len(suite["expectations"])
    with pytest.raises(DataError, match="customer_id"):
        validate(later, build_suite(frame, "y", name="all"))  # without --exclude
    with pytest.raises(DataError, match="column"):
        validate(later.drop(columns="customer_id"), suite)  # still expected to be there
    capsys.readouterr()
    assert mlship([*argv, "--exclude", "customerid"]) == 1
    assert capsys.readouterr().err.strip() == (
        f"error: --exclude 'customerid' is not a column of {data}. Did you mean "
        "'customer_id'? Fix the name or leave it out."
    )
