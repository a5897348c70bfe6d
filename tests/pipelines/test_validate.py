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
from pipelines.validate import build_suite, load_suite, validate
from tests.pipelines.conftest import SUITE, WriteParams


@pytest.fixture(scope="module")
def reference(breast_cancer_csv: Path) -> pd.DataFrame:
    return pd.read_csv(breast_cancer_csv)


def test_committed_suite_matches_reference_data(breast_cancer_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "breast_cancer.json"
    assert mlship(["expectations", "--data", str(breast_cancer_csv), "--out", str(out)]) == 0
    assert json.loads(out.read_text()) == json.loads(SUITE.read_text()), (
        "pipelines/expectations/breast_cancer.json is stale: regenerate it with "
        "`mlship expectations` and commit it"
    )


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
