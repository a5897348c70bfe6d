"""``params.yaml``: the typed training parameters (also DVC's params file).

:func:`load_params` is the only reader of the file; it returns a validated :class:`Params` or
raises :class:`~core.errors.ConfigError` naming each bad key, the problem and the fix.
Relative paths in the file are resolved against the file's directory (:meth:`Params.resolve`).
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from core.errors import ConfigError
from core.manifest import Dtype

ModelType = Literal[
    "logistic_regression",
    "random_forest",
    "gradient_boosting",
    "ridge",
    "random_forest_regressor",
    "gradient_boosting_regressor",
]
Task = Literal["classification", "regression"]

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


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataParams(_Strict):
    path: str = Field(default="data/breast_cancer.csv", description="CSV/Parquet, local or s3://")
    target: str = Field(default="target", description="Name of the label column.")
    builtin: Literal["breast_cancer", "diabetes"] | None = Field(
        default="breast_cancer",
        description="Bundled scikit-learn dataset written to `path` when that file is missing "
        "and is named `<builtin>.csv`.",
    )
    expectations: str | None = Field(
        default="pipelines/expectations/breast_cancer.json",
        description="Great Expectations suite (JSON) the data must pass; null skips validation.",
    )
    features: dict[str, Dtype] = Field(
        default_factory=dict,
        description="Feature types that override the columns' own (float64, int64, bool, "
        "category): e.g. a column of numeric codes declared category.",
    )
    max_categories: int = Field(
        default=50,
        ge=2,
        description="Categories kept per categorical column, most frequent first; the rest "
        "share one 'other' bucket.",
    )


class ModelParams(_Strict):
    type: ModelType = "logistic_regression"
    hyperparameters: dict[str, Any] = Field(default_factory=dict)


class SplitParams(_Strict):
    test_size: float = Field(default=0.2, gt=0.0, lt=1.0, description="Held-out share.")


class GateParams(_Strict):
    thresholds: dict[str, float] = Field(
        default_factory=dict,
        description="Minimum for accuracy/f1/roc_auc/r2, maximum for rmse/mae.",
    )
    champion_metric: str | None = Field(
        default=None, description="Metric compared with the champion (default roc_auc / rmse)."
    )
    champion_tolerance: float = Field(
        default=0.01, ge=0.0, description="How much worse than the champion is still accepted."
    )


class OutputParams(_Strict):
    dir: str = "models/latest"
    onnx: bool = Field(
        default=True,
        description="Also export model.onnx (served by onnxruntime) when skl2onnx supports the "
        "model and its predictions match scikit-learn's on the test split.",
    )
    metrics: str | None = Field(
        default="models/metrics.json", description="Metrics JSON for `dvc metrics show`."
    )


class RegistryParams(_Strict):
    enabled: bool = True
    model_name: str = Field(default="mlship", min_length=1)
    experiment: str = Field(default="mlship", min_length=1)
    alias: str = Field(default="challenger", min_length=1)


class Params(_Strict):
    """Everything one training run needs; see the README's params.yaml reference."""

    name: str = Field(default="mlship", min_length=1)
    seed: int = Field(default=42, ge=0)
    data: DataParams = Field(default_factory=DataParams)
    model: ModelParams = Field(default_factory=ModelParams)
    split: SplitParams = Field(default_factory=SplitParams)
    gate: GateParams = Field(default_factory=GateParams)
    output: OutputParams = Field(default_factory=OutputParams)
    registry: RegistryParams = Field(default_factory=RegistryParams)
    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)

    @property
    def task(self) -> Task:
        return MODELS[self.model.type][0]

    @property
    def champion_metric(self) -> str:
        return self.gate.champion_metric or DEFAULT_CHAMPION_METRIC[self.task]

    def resolve(self, path: str) -> Path:
        """A path from the file, relative to the params file's directory."""
        p = Path(path)
        return p if p.is_absolute() else self._base_dir / p

    @model_validator(mode="after")
    def _check_against_model(self) -> Params:
        metrics = METRICS[self.task]
        for key in self.gate.thresholds:
            if key not in metrics:
                raise ValueError(
                    f"gate.thresholds has {key!r}, which is not a {self.task} metric; use "
                    f"{', '.join(metrics)}"
                )
        if self.gate.champion_metric is not None and self.gate.champion_metric not in metrics:
            raise ValueError(
                f"gate.champion_metric {self.gate.champion_metric!r} is not a {self.task} "
                f"metric; use one of {', '.join(metrics)}"
            )
        allowed = estimator_param_names(self.model.type)
        for key in self.model.hyperparameters:
            if key not in allowed:
                close = difflib.get_close_matches(key, sorted(allowed), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ValueError(
                    f"model.hyperparameters has {key!r}, which {self.model.type} does not "
                    f"accept{hint}"
                )
        return self


def estimator_param_names(model_type: str) -> set[str]:
    """The hyper-parameter names the scikit-learn estimator of a model type accepts."""
    import importlib

    _, module, cls, _ = MODELS[model_type]
    names: set[str] = set(getattr(importlib.import_module(module), cls)().get_params())
    return names - {"random_state"}


def load_params(path: Path) -> Params:
    """Read and validate a params file.

    Raises:
        ConfigError: when the file is missing, not YAML, or has a bad key or value.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"Parameters file {path} does not exist. Run from the repository root (where "
            "params.yaml lives) or pass --params PATH."
        )
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML ({e}). Fix the syntax.") from e
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must be a mapping of keys (model:, data:, ...), not a list.")
    return parse_params(raw, path)


def parse_params(raw: dict[str, Any], path: Path) -> Params:
    """Validate parameters already read from ``path`` (relative paths resolve against it).

    Raises:
        ConfigError: naming each bad key and value.
    """
    try:
        params = Params.model_validate(raw)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(x) for x in err['loc']) or 'params'}: "
            f"{err['msg'].removeprefix('Value error, ')}"
            for err in e.errors()
        )
        raise ConfigError(
            f"{path} is invalid: {problems}. Fix the value(s) in {path.name} (the README lists "
            "every key)."
        ) from e
    params._base_dir = path.resolve().parent
    return params
