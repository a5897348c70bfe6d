"""The estimators ``model.type`` can name: their task, their metrics and their hyper-parameters.

The one catalog of model types. :mod:`pipelines.params` validates ``params.yaml`` against it
(every hyper-parameter name and value is checked before anything is read or fitted) and
:mod:`pipelines.train` builds the scikit-learn estimator from it. scikit-learn is imported only
inside functions.
"""

from __future__ import annotations

import difflib
import importlib
from functools import cache
from typing import Any, Literal

ModelType = Literal[
    "logistic_regression",
    "random_forest",
    "gradient_boosting",
    "ridge",
    "random_forest_regressor",
    "gradient_boosting_regressor",
]
Task = Literal["classification", "regression"]
TASKS: tuple[Task, ...] = ("classification", "regression")

# model type -> (task, sklearn module, class name, defaults that differ from scikit-learn's)
MODELS: dict[str, tuple[Task, str, str, dict[str, Any]]] = {
    "logistic_regression": (
        "classification",
        "sklearn.linear_model",
        "LogisticRegression",
        {"max_iter": 1000},
    ),
    "random_forest": (
        "classification",
        "sklearn.ensemble",
        "RandomForestClassifier",
        {"n_jobs": 1},
    ),
    "gradient_boosting": ("classification", "sklearn.ensemble", "GradientBoostingClassifier", {}),
    "ridge": ("regression", "sklearn.linear_model", "Ridge", {}),
    "random_forest_regressor": (
        "regression",
        "sklearn.ensemble",
        "RandomForestRegressor",
        {"n_jobs": 1},
    ),
    "gradient_boosting_regressor": (
        "regression",
        "sklearn.ensemble",
        "GradientBoostingRegressor",
        {},
    ),
}
METRICS: dict[Task, tuple[str, ...]] = {
    "classification": ("accuracy", "f1", "roc_auc"),
    "regression": ("rmse", "mae", "r2"),
}
LOWER_IS_BETTER = frozenset({"rmse", "mae"})
DEFAULT_CHAMPION_METRIC: dict[Task, str] = {"classification": "roc_auc", "regression": "rmse"}
# Set from params.yaml's `seed`, never as a hyper-parameter: one knob for all randomness.
SEEDED = "random_state"


def _estimator_class(model_type: str) -> Any:
    _, module, cls, _ = MODELS[model_type]
    return getattr(importlib.import_module(module), cls)


@cache
def estimator_param_names(model_type: str) -> frozenset[str]:
    """The hyper-parameter names the scikit-learn estimator of a model type accepts."""
    names: set[str] = set(_estimator_class(model_type)().get_params())
    return frozenset(names - {SEEDED})


def owners(name: str) -> list[str]:
    """The model types that accept a hyper-parameter ``name``, in catalog order."""
    return [t for t in MODELS if name in estimator_param_names(t)]


def hyperparameter_problems(model_type: str, values: dict[str, Any]) -> dict[str, str]:
    """Every problem with hyper-parameters meant for ``model_type``, keyed by name.

    An unknown name gets the closest name the estimator accepts, or, when it belongs to other
    model types, says so; a known name with a value scikit-learn would refuse gets
    scikit-learn's own description of the valid values. Nothing is fitted.
    """
    from sklearn.utils._param_validation import (
        InvalidParameterError,
        validate_parameter_constraints,
    )

    cls = _estimator_class(model_type)
    allowed = estimator_param_names(model_type)
    constraints: dict[str, Any] = getattr(cls, "_parameter_constraints", {})
    problems: dict[str, str] = {}
    for name, value in values.items():
        if name == SEEDED:
            problems[name] = f"{SEEDED} is set from `seed` (top level); set seed instead"
            continue
        if name not in allowed:
            elsewhere = [t for t in owners(name) if t != model_type]
            if elsewhere:
                problems[name] = (
                    f"{name} is a hyper-parameter of {', '.join(elsewhere)}, not of {model_type}"
                )
            else:
                problems[name] = f"{model_type} has no hyper-parameter {name!r}" + (
                    suggestion(name, sorted(allowed)) or _elsewhere(name, model_type)
                )
            continue
        if name in constraints:
            try:
                validate_parameter_constraints(
                    {name: constraints[name]}, {name: value}, caller_name=cls.__name__
                )
            except InvalidParameterError as e:
                problems[name] = str(e)
    return problems


def _elsewhere(name: str, model_type: str) -> str:
    """A typo of another model type's hyper-parameter: the closest name and who accepts it."""
    others = sorted({p for t in MODELS if t != model_type for p in estimator_param_names(t)})
    close = difflib.get_close_matches(name, others, n=1, cutoff=0.6)
    if not close:
        return ""
    return f" (did you mean {close[0]!r}, a hyper-parameter of {', '.join(owners(close[0]))}?)"


def suggestion(word: str, choices: list[str]) -> str:
    """`` (did you mean 'x'?)`` with the closest of ``choices``, or nothing."""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
