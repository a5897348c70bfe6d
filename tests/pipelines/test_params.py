"""params.yaml: the committed file loads, per-task and per-model sections resolve for the chosen
model, overrides apply, and every bad value is refused at once with its key and the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from core.errors import ConfigError
from pipelines.params import Params, apply_overrides, load_params, parse_overrides
from pipelines.train import build_pipeline
from tests.pipelines.conftest import REPO, WriteParams

HEADER = (
    "{path} has {n}; fix each in params.yaml (the README's params.yaml reference lists every "
    "key):\n"
)


def _write(tmp_path: Path, raw: dict[str, Any]) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _problems(path: Path, overrides: dict[str, Any] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_params(path, overrides)
    return str(info.value)


def test_repo_params_load() -> None:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    assert "model_name" not in raw["registry"], "the registered name comes from `name`"
    params = load_params(REPO / "params.yaml")
    assert params.task == "classification"
    assert params.registered_name == params.name == "mlship"
    assert params.champion_metric == "roc_auc"
    assert params.model.hyperparameters == {"C": 1.0, "max_iter": 1000}
    assert params.gate.thresholds == {"accuracy": 0.93, "f1": 0.93, "roc_auc": 0.97}
    assert params.resolve(params.data.path) == REPO / "data" / "breast_cancer.csv"
    expectations = params.data.expectations
    assert expectations == "pipelines/expectations/breast_cancer.json"
    assert params.resolve(expectations).is_file()


def test_repo_params_switch_to_regression_with_overrides_only() -> None:
    overrides = parse_overrides(
        ["model.type=ridge", "data.builtin=diabetes", "data.path=data/diabetes.csv"]
    )
    params = load_params(REPO / "params.yaml", overrides)
    assert params.task == "regression"
    assert params.model.hyperparameters == {"alpha": 1.0}
    assert params.gate.thresholds == {"r2": 0.3}
    assert params.champion_metric == "rmse"
    assert params.data.expectations == "pipelines/expectations/diabetes.json"
    assert params.resolve(params.data.expectations).is_file()
    assert build_pipeline(params).named_steps["model"].alpha == 1.0


def test_flat_forms_still_accepted(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        {
            "model": {"type": "random_forest", "hyperparameters": {"n_estimators": 7}},
            "gate": {"thresholds": {"f1": 0.5}, "champion_metric": "f1"},
        },
    )
    params = load_params(path)
    assert params.model.hyperparameters == {"n_estimators": 7}
    assert params.gate.thresholds == {"f1": 0.5}
    assert params.champion_metric == "f1"


def test_flat_key_next_to_sections_applies_to_the_chosen_model() -> None:
    params = load_params(
        REPO / "params.yaml",
        {"model.hyperparameters.C": 0.5, "gate.thresholds.accuracy": 0.5},
    )
    assert params.model.hyperparameters == {"C": 0.5, "max_iter": 1000}
    assert params.gate.thresholds == {"accuracy": 0.5, "f1": 0.93, "roc_auc": 0.97}


def test_champion_metric_defaults_per_task(tmp_path: Path) -> None:
    assert load_params(_write(tmp_path, {})).champion_metric == "roc_auc"
    assert load_params(_write(tmp_path, {"model": {"type": "ridge"}})).champion_metric == "rmse"
    per_task = {"champion_metric": {"classification": "f1"}}
    assert load_params(_write(tmp_path, {"gate": per_task})).champion_metric == "f1"
    ridge = {"model": {"type": "ridge"}, "gate": per_task}
    assert load_params(_write(tmp_path, ridge)).champion_metric == "rmse"


def test_registered_name_defaults_to_name(tmp_path: Path) -> None:
    assert load_params(_write(tmp_path, {"name": "penguins"})).registered_name == "penguins"
    explicit = {"name": "penguins", "registry": {"model_name": "birds"}}
    assert load_params(_write(tmp_path, explicit)).registered_name == "birds"


def test_expectations_auto_only_for_the_builtin_file(tmp_path: Path) -> None:
    own = _write(tmp_path, {"data": {"path": "mine.csv"}})
    assert load_params(own).data.expectations is None, "no suite for someone else's data"
    builtin = load_params(
        _write(tmp_path, {"data": {"builtin": "penguins", "path": "penguins.csv"}})
    )
    assert builtin.data.expectations is not None
    assert builtin.resolve(builtin.data.expectations) == (
        REPO / "pipelines" / "expectations" / "penguins.json"
    )
    explicit = load_params(_write(tmp_path, {"data": {"expectations": "suite.json"}}))
    assert explicit.data.expectations == "suite.json"
    assert load_params(_write(tmp_path, {"data": {"expectations": None}})).data.expectations is None


def test_seed_reaches_the_estimator(write_params: WriteParams) -> None:
    params = load_params(
        write_params(seed=7, model={"type": "random_forest", "hyperparameters": {}})
    )
    assert build_pipeline(params).named_steps["model"].random_state == 7


@pytest.mark.parametrize(
    ("raw", "line"),
    [
        (
            {"model": {"type": "xgboost"}},
            "model.type: 'xgboost' is not a valid value; use one of logistic_regression, "
            "random_forest, gradient_boosting, ridge, random_forest_regressor, "
            "gradient_boosting_regressor",
        ),
        (
            {"model": {"type": "rigde"}},
            "model.type: 'rigde' is not a valid value (did you mean 'ridge'?); use one of "
            "logistic_regression, random_forest, gradient_boosting, ridge, "
            "random_forest_regressor, gradient_boosting_regressor",
        ),
        (
            {"data": {"builtin": "penguin"}},
            "data.builtin: 'penguin' is not a valid value (did you mean 'penguins'?); use one "
            "of breast_cancer, diabetes, penguins, null",
        ),
        ({"modle": {}}, "modle: unknown key (did you mean 'model'?)"),
        (
            {"zzz": 1},
            "zzz: unknown key; the keys here are name, seed, data, model, split, gate, output, "
            "registry",
        ),
        ({"split": {"test_size": 1.5}}, "split.test_size: Input should be less than 1"),
        (
            {"seed": "abc"},
            "seed: Input should be a valid integer, unable to parse string as an integer",
        ),
        (
            {"model": {"hyperparameters": {"max_iters": 5}}},
            "model.hyperparameters.max_iters: logistic_regression has no hyper-parameter "
            "'max_iters' (did you mean 'max_iter'?)",
        ),
        (
            {"model": {"hyperparameters": {"n_estimator": 5}}},
            "model.hyperparameters.n_estimator: logistic_regression has no hyper-parameter "
            "'n_estimator' (did you mean 'n_estimators', a hyper-parameter of random_forest, "
            "gradient_boosting, random_forest_regressor, gradient_boosting_regressor?)",
        ),
        (
            {"model": {"type": "ridge", "hyperparameters": {"ridge": {"C": 1.0}}}},
            "model.hyperparameters.ridge.C: C is a hyper-parameter of logistic_regression, "
            "not of ridge",
        ),
        (
            {"model": {"type": "ridge", "hyperparameters": {"C": 1.0}}},
            "model.hyperparameters.C: C is a hyper-parameter of logistic_regression, not of "
            "ridge; put it under model.hyperparameters.logistic_regression (one section per "
            "model type)",
        ),
        (
            {"model": {"hyperparameters": {"rigde": {"alpha": 1.0}}}},
            "model.hyperparameters.rigde: 'rigde' is neither a model type nor a "
            "hyper-parameter of logistic_regression (did you mean 'ridge'?)",
        ),
        (
            {"model": {"hyperparameters": {"random_state": 3}}},
            "model.hyperparameters.random_state: random_state is set from `seed` (top level); "
            "set seed instead",
        ),
        (
            {"model": {"hyperparameters": {"C": -1.0}}},
            "model.hyperparameters.C: The 'C' parameter of LogisticRegression must be a float "
            "in the range (0.0, inf]. Got -1.0 instead.",
        ),
        (
            {"gate": {"thresholds": {"rmse": 3.0}}},
            "gate.thresholds.rmse: rmse is a regression metric, but logistic_regression is a "
            "classification model; put it under gate.thresholds.regression",
        ),
        (
            {"gate": {"thresholds": {"regression": {"r22": 0.1}}}},
            "gate.thresholds.regression.r22: 'r22' is not a regression metric (did you mean "
            "'r2'?); the regression metrics are rmse, mae, r2",
        ),
        (
            {"gate": {"thresholds": {"clasification": {"f1": 0.9}}}},
            "gate.thresholds.clasification: 'clasification' is not a task (did you mean "
            "'classification'?); the sections are classification and regression",
        ),
        (
            {"gate": {"thresholds": {"f1": "high"}}},
            "gate.thresholds.f1: must be a number, not 'high'",
        ),
        (
            {"gate": {"champion_metric": "rmse"}},
            "gate.champion_metric: rmse is a regression metric, but logistic_regression is a "
            "classification model; name one per task (gate.champion_metric: {classification: "
            "roc_auc, regression: rmse})",
        ),
        (
            {"gate": {"champion_metric": {"regression": "rsme"}}},
            "gate.champion_metric.regression: 'rsme' is not a regression metric (did you mean "
            "'rmse'?); the regression metrics are rmse, mae, r2",
        ),
    ],
)
def test_bad_params_refused_with_exact_message(
    tmp_path: Path, raw: dict[str, Any], line: str
) -> None:
    path = _write(tmp_path, raw)
    assert _problems(path) == HEADER.format(path=path, n="1 problem") + f"  - {line}"


def test_every_problem_reported_at_once(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        {
            "modle": {},
            "model": {
                "type": "ridge",
                "hyperparameters": {
                    "alpah": 2.0,
                    "logistic_regression": {"max_iters": 3},
                    "random_forest": {"n_estimator": 5},
                },
            },
            "gate": {"thresholds": {"accuracy": 0.9, "regression": {"r22": 0.1}}},
            "split": {"test_size": 0},
        },
    )
    assert _problems(path) == HEADER.format(path=path, n="7 problems") + (
        "  - gate.thresholds.accuracy: accuracy is a classification metric, but ridge is a "
        "regression model; put it under gate.thresholds.classification\n"
        "  - gate.thresholds.regression.r22: 'r22' is not a regression metric (did you mean "
        "'r2'?); the regression metrics are rmse, mae, r2\n"
        "  - model.hyperparameters.alpah: ridge has no hyper-parameter 'alpah' (did you mean "
        "'alpha'?)\n"
        "  - model.hyperparameters.logistic_regression.max_iters: logistic_regression has no "
        "hyper-parameter 'max_iters' (did you mean 'max_iter'?)\n"
        "  - model.hyperparameters.random_forest.n_estimator: random_forest has no "
        "hyper-parameter 'n_estimator' (did you mean 'n_estimators'?)\n"
        "  - modle: unknown key (did you mean 'model'?)\n"
        "  - split.test_size: Input should be greater than 0"
    )


def test_section_problems_reported_even_when_the_model_type_is_bad(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        {
            "model": {"type": "xgb", "hyperparameters": {"ridge": {"alpah": 1.0}}},
            "gate": {"thresholds": {"regression": {"r22": 0.1}}},
        },
    )
    message = _problems(path)
    assert message.startswith(HEADER.format(path=path, n="3 problems"))
    assert "  - model.type: 'xgb' is not a valid value" in message
    assert "  - model.hyperparameters.ridge.alpah: ridge has no hyper-parameter 'alpah'" in message
    assert "  - gate.thresholds.regression.r22: 'r22' is not a regression metric" in message


def test_overrides_are_yaml_values_on_dotted_keys() -> None:
    assert parse_overrides(
        ["model.type=ridge", "seed=7", "gate.champion_tolerance=0.5", "data.expectations=null"]
    ) == {
        "model.type": "ridge",
        "seed": 7,
        "gate.champion_tolerance": 0.5,
        "data.expectations": None,
    }
    assert parse_overrides(["name=a=b"]) == {"name": "a=b"}
    merged, problems = apply_overrides({"model": {"type": "x"}}, {"model.hyperparameters.C": 2})
    assert merged == {"model": {"type": "x", "hyperparameters": {"C": 2}}}
    assert problems == []


def test_malformed_overrides_all_named() -> None:
    with pytest.raises(ConfigError) as info:
        parse_overrides(["seed", "=3", "model..type=x", "seed=1"])
    assert str(info.value) == (
        "--set takes a dotted params.yaml key and a value, e.g. --set model.type=ridge; these "
        "are not key=value: 'seed', '=3', 'model..type=x'."
    )


def test_override_through_a_value_is_reported_with_the_rest() -> None:
    message = _problems(REPO / "params.yaml", {"seed.x": 1, "split.test_size": 2})
    assert message == (
        f"{REPO / 'params.yaml'} with --set overrides has 2 problems; fix each in params.yaml "
        "or the --set overrides (the README's params.yaml reference lists every key):\n"
        "  - seed.x: seed is a value, not a section, so this --set cannot set a key inside it; "
        "use a dotted path to a leaf, e.g. model.hyperparameters.C\n"
        "  - split.test_size: Input should be less than 1"
    )


def test_params_built_in_code_are_checked_too() -> None:
    with pytest.raises(ValidationError, match="C is a hyper-parameter of logistic_regression"):
        Params.model_validate({"model": {"type": "ridge", "hyperparameters": {"C": 1.0}}})


def test_bad_hyperparameter_value_is_a_config_error_before_training(
    capsys: pytest.CaptureFixture[str], write_params: WriteParams
) -> None:
    from cli.main import main as mlship

    params = write_params(model={"hyperparameters": {"C": -1.0}})
    assert mlship(["train", "--params", str(params)]) == 1
    captured = capsys.readouterr()
    assert "model.hyperparameters.C: The 'C' parameter of LogisticRegression" in captured.err
    assert "[1/6]" not in captured.out, "refused before reading any data"


def test_train_set_and_target_reach_the_run(
    capsys: pytest.CaptureFixture[str], write_params: WriteParams
) -> None:
    from cli.main import main as mlship

    params = write_params()
    argv = ["train", "--params", str(params), "--set", "registry.enabled=false"]
    assert mlship([*argv, "--set", "model.type=ridg", "--target", "targte"]) == 1
    err = capsys.readouterr().err
    assert "with --set overrides has 1 problem" in err
    assert "model.type: 'ridg' is not a valid value (did you mean 'ridge'?)" in err
    assert mlship([*argv, "--target", "targte"]) == 1
    assert "no target column 'targte'. Did you mean 'target'?" in capsys.readouterr().err
    assert mlship([*argv, "--set", "model.hyperparameters.C=0.5"]) == 0
    assert "registry  disabled" in capsys.readouterr().out


def test_set_does_not_mix_with_sagemaker(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from cli.main import main as mlship

    assert mlship(["train", "--sagemaker", str(tmp_path), "--set", "seed=1"]) == 1
    assert "--set and --target do not apply with --sagemaker" in capsys.readouterr().err


def test_missing_params_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"does not exist\. Run from the repository root"):
        load_params(tmp_path / "params.yaml")


def test_params_file_must_be_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_params(path)
