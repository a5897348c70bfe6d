"""The bundled datasets (breast_cancer, diabetes, penguins): written from installed packages,
byte-stable, with `mlship prepare`, and the penguins example params.

Training on penguins needs text features (island, sex), which the pipeline does not encode
yet; these tests cover the data, its committed suite and the example's params, not a train.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from palmerpenguins import load_penguins

from cli.main import build_parser
from cli.main import main as mlship
from core.errors import DataError
from pipelines.data import BUILTIN_SOURCES, materialise
from pipelines.params import load_params
from pipelines.validate import load_suite, validate
from tests.pipelines.conftest import REPO

EXAMPLE = REPO / "examples" / "penguins" / "params.yaml"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_penguins_materialised_from_the_package(tmp_path: Path) -> None:
    path = materialise("penguins", tmp_path / "out" / "penguins.csv")
    assert _digest(path) == _digest(materialise("penguins", tmp_path / "out" / "again.csv"))
    frame = pd.read_csv(path)
    assert frame.columns.tolist() == [
        "species",
        "island",
        "bill_length_mm",
        "bill_depth_mm",
        "flipper_length_mm",
        "body_mass_g",
        "sex",
        "year",
    ]
    assert len(frame) == 344
    assert frame["species"].value_counts().to_dict() == {
        "Adelie": 152,
        "Gentoo": 124,
        "Chinstrap": 68,
    }
    assert frame["sex"].isna().sum() == 11
    assert frame["bill_length_mm"].isna().sum() == 2
    # the package's own table, value for value (missing values as empty cells, not "NA")
    pd.testing.assert_frame_equal(frame, load_penguins(), check_dtype=False)
    assert ",,,,," in path.read_text().splitlines()[4]
    assert sorted(p.name for p in path.parent.iterdir()) == ["again.csv", "penguins.csv"], (
        "no temporary file left"
    )


def test_every_bundled_dataset_is_byte_stable(tmp_path: Path) -> None:
    for name in BUILTIN_SOURCES:
        first = materialise(name, tmp_path / "a" / f"{name}.csv")  # type: ignore[arg-type]
        second = materialise(name, tmp_path / "b" / f"{name}.csv")  # type: ignore[arg-type]
        assert _digest(first) == _digest(second), name


def test_unknown_dataset_suggests_the_closest(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        materialise("penguin", tmp_path / "x.csv")  # type: ignore[arg-type]
    assert str(info.value) == (
        "Unknown bundled dataset 'penguin'. Did you mean 'penguins'? Use one of: "
        "breast_cancer, diabetes, penguins."
    )


def test_prepare_writes_data_named_after_the_dataset(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert mlship(["prepare", "--dataset", "penguins"]) == 0
    written = tmp_path / "data" / "penguins.csv"
    assert capsys.readouterr().out == (
        "wrote the penguins data (from palmerpenguins) to data/penguins.csv\n"
    )
    assert _digest(written) == _digest(materialise("penguins", tmp_path / "check.csv"))
    assert mlship(["prepare", "--dataset", "diabetes", "--out", "x/d.csv"]) == 0
    assert (tmp_path / "x" / "d.csv").is_file()


def test_prepare_choices_are_the_bundled_datasets() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    prepare = sub.choices["prepare"]  # type: ignore[index]
    dataset = next(a for a in prepare._actions if a.dest == "dataset")
    assert list(dataset.choices or []) == list(BUILTIN_SOURCES)


def test_penguins_example_params_and_suite(tmp_path: Path) -> None:
    params = load_params(EXAMPLE)
    assert params.registered_name == "penguins"
    assert params.task == "classification"
    assert params.data.target == "species"
    assert params.data.builtin == "penguins"
    assert params.resolve(params.data.path).resolve() == REPO / "data" / "penguins.csv"
    assert params.data.expectations is not None
    suite_path = params.resolve(params.data.expectations).resolve()
    assert suite_path == REPO / "pipelines" / "expectations" / "penguins.json"
    assert params.gate.thresholds == {"accuracy": 0.95, "f1": 0.95, "roc_auc": 0.98}
    assert params.model.hyperparameters == {"C": 1.0, "max_iter": 1000}
    assert params.resolve(params.output.dir).resolve() == REPO / "models" / "penguins"
    # a forest is one override away
    forest = load_params(EXAMPLE, {"model.type": "random_forest"})
    assert forest.model.hyperparameters == {"n_estimators": 200}

    data = materialise("penguins", tmp_path / "penguins.csv")
    suite = load_suite(suite_path)
    assert suite["meta"]["mlship"]["target"] == "species"
    frame = pd.read_csv(data)
    assert validate(frame, suite) == len(suite["expectations"])
    # an unknown species or island is refused; missing sex within the reference's share is not
    odd = frame.copy()
    odd.loc[0, "species"] = "Emperor"
    odd.loc[1, "island"] = "Atlantis"
    odd.loc[2:12, "sex"] = np.nan
    with pytest.raises(DataError) as info:
        validate(odd, suite, source="odd.csv")
    message = str(info.value)
    assert message.startswith(f"odd.csv fails 2 of {len(suite['expectations'])} expectations")
    assert "expect_column_values_to_be_in_set on column 'species'" in message
    assert "expect_column_values_to_be_in_set on column 'island'" in message
