"""params.yaml: the committed file loads, and bad values are refused with the key and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import ConfigError
from pipelines.params import load_params
from pipelines.train import build_pipeline
from tests.pipelines.conftest import REPO, WriteParams


def test_repo_params_load() -> None:
    params = load_params(REPO / "params.yaml")
    assert params.task == "classification"
    assert params.champion_metric == "roc_auc"
    assert params.resolve(params.data.path) == REPO / "data" / "breast_cancer.csv"
    assert params.resolve(params.data.expectations or "").is_file()


def test_seed_reaches_the_estimator(write_params: WriteParams) -> None:
    params = load_params(
        write_params(seed=7, model={"type": "random_forest", "hyperparameters": {}})
    )
    assert build_pipeline(params).named_steps["model"].random_state == 7


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"model": {"type": "xgboost"}}, r"model\.type: Input should be 'logistic_regression'"),
        (
            {"model": {"hyperparameters": {"max_iters": 5}}},
            r"'max_iters', which logistic_regression does not accept \(did you mean 'max_iter'",
        ),
        ({"split": {"test_size": 1.5}}, r"split\.test_size: Input should be less than 1"),
        ({"gate": {"thresholds": {"rmse": 3.0}}}, "'rmse', which is not a classification metric"),
        ({"modle": {}}, r"modle: Extra inputs are not permitted"),
        ({"seed": "abc"}, r"seed: Input should be a valid integer"),
    ],
)
def test_bad_params_refused(
    write_params: WriteParams, overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_params(write_params(**overrides))


def test_bad_hyperparameter_value_is_a_config_error(
    capsys: pytest.CaptureFixture[str], write_params: WriteParams
) -> None:
    from cli.main import main as mlship

    params = write_params(model={"hyperparameters": {"C": -1.0}})
    assert mlship(["train", "--params", str(params)]) == 1
    err = capsys.readouterr().err
    assert "model.hyperparameters" in err
    assert "'C' parameter" in err


def test_missing_params_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"does not exist\. Run from the repository root"):
        load_params(tmp_path / "params.yaml")


def test_params_file_must_be_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_params(path)
