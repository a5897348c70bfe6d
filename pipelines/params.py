"""``params.yaml``: the typed training parameters (also DVC's params file), and overrides.

:func:`load_params` is the only reader of the file; it returns a validated :class:`Params` or
raises one :class:`~core.errors.ConfigError` listing every bad key at once, each with the
problem, the closest valid name and the fix. Relative paths in the file are resolved against
the file's directory (:meth:`Params.resolve`).

Three keys may be written per task or per model type, so that choosing another model needs no
other edit: ``gate.thresholds`` and ``gate.champion_metric`` (``{classification: ...,
regression: ...}``) and ``model.hyperparameters`` (``{logistic_regression: {C: 1.0}, ridge:
{alpha: 1.0}}``). The flat forms are still accepted, and a flat key next to the sections
applies to the chosen model (``--set model.hyperparameters.C=0.5``). After validation the
object holds only what applies to ``model.type``: ``params.model.hyperparameters`` is the
flat mapping passed to the estimator, ``params.gate.thresholds`` the flat mapping of the task.

Overrides (``mlship train --set key=value``, SageMaker hyper-parameters) are dotted paths into
the file with YAML values: :func:`parse_overrides`, :func:`apply_overrides`.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from core.errors import ConfigError
from core.manifest import Dtype
from pipelines.data import BuiltinDataset
from pipelines.estimators import (
    DEFAULT_CHAMPION_METRIC,
    LOWER_IS_BETTER,
    METRICS,
    MODELS,
    TASKS,
    ModelType,
    Task,
    estimator_param_names,
    hyperparameter_problems,
    suggestion,
)

__all__ = [
    "DEFAULT_CHAMPION_METRIC",
    "LOWER_IS_BETTER",
    "METRICS",
    "MODELS",
    "ModelType",
    "Params",
    "Task",
    "apply_overrides",
    "load_params",
    "parse_overrides",
    "parse_params",
]

# The committed suite of each bundled dataset: pipelines/expectations/<builtin>.json.
SUITES_DIR = Path(__file__).resolve().parent / "expectations"
AUTO = "auto"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataParams(_Strict):
    path: str = Field(default="data/breast_cancer.csv", description="CSV/Parquet, local or s3://")
    target: str = Field(default="target", description="Name of the label column.")
    builtin: BuiltinDataset | None = Field(
        default="breast_cancer",
        description="Bundled dataset written to `path` when that file is missing and is named "
        "`<builtin>.csv`.",
    )
    expectations: str | None = Field(
        default=AUTO,
        description="Great Expectations suite (JSON) the data must pass; `auto` is the "
        "committed suite of `builtin` when `path` is `<builtin>.csv` (else no validation); "
        "null skips validation.",
    )
    features: dict[str, Dtype] = Field(
        default_factory=dict,
        description="Feature types that override the columns' own (float64, int64, bool, "
        "category): e.g. a column of numeric codes declared category.",
    )
    exclude: list[str] = Field(
        default_factory=list,
        description="Columns that are not features: identifiers, timestamps, or anything the "
        "model must not learn from (`mlship predict --id-column` copies an identifier to the "
        "output instead).",
    )
    max_categories: int = Field(
        default=50,
        ge=2,
        description="Categories kept per categorical column, most frequent first; the rest "
        "share one 'other' bucket.",
    )


class ModelParams(_Strict):
    type: ModelType = "logistic_regression"
    hyperparameters: dict[str, Any] = Field(
        default_factory=dict, description="Passed to the estimator of `type` (resolved)."
    )


class SplitParams(_Strict):
    test_size: float = Field(default=0.2, gt=0.0, lt=1.0, description="Held-out share.")


class GateParams(_Strict):
    thresholds: dict[str, float] = Field(
        default_factory=dict,
        description="Minimum for accuracy/f1/roc_auc/r2, maximum for rmse/mae (resolved for "
        "the task of model.type).",
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
    model_name: str | None = Field(
        default=None,
        min_length=1,
        description="Registered model name; default: the top-level `name`.",
    )
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
        if self.gate.champion_metric is None:
            return DEFAULT_CHAMPION_METRIC[self.task]
        return self.gate.champion_metric

    @property
    def registered_name(self) -> str:
        """The registry's model name: ``registry.model_name``, by default ``name``."""
        if self.registry.model_name is None:
            return self.name
        return self.registry.model_name

    def resolve(self, path: str) -> Path:
        """A path from the file, relative to the params file's directory."""
        p = Path(path)
        return p if p.is_absolute() else self._base_dir / p

    @model_validator(mode="before")
    @classmethod
    def _resolve_sections(cls, data: Any, info: ValidationInfo) -> Any:
        """Pick the per-task and per-model sections of ``model.type``, checking all of them.

        Problems go to the ``problems`` list of the validation context (so that
        :func:`parse_params` reports them with the field errors, all at once); without one
        they are raised.
        """
        if not isinstance(data, Mapping):
            return data
        context = info.context if isinstance(info.context, dict) else {}
        resolved, problems = _resolve(dict(data), context.get("base_dir"))
        sink = context.get("problems")
        if isinstance(sink, list):
            sink.extend(problems)
        elif problems:
            raise ValueError("; ".join(f"{loc}: {msg}" for loc, msg in problems))
        return resolved


Problem = tuple[str, str]


def _plain(value: Any) -> Any:
    return value.model_dump() if isinstance(value, BaseModel) else value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _resolve(raw: dict[str, Any], base_dir: Path | None) -> tuple[dict[str, Any], list[Problem]]:
    """The raw mapping with the sections of its model type picked, and every problem found."""
    problems: list[Problem] = []
    model = _plain(raw.get("model", {}))
    model_type: str | None = "logistic_regression"
    if isinstance(model, Mapping):
        model = dict(model)
        model_type = model.get("type", model_type)
    if not isinstance(model_type, str) or model_type not in MODELS:
        model_type = None  # the field error names it; the task-free checks still run
    task = MODELS[model_type][0] if model_type is not None else None
    if isinstance(model, dict) and isinstance(model.get("hyperparameters"), Mapping):
        model["hyperparameters"] = _hyperparameters(model["hyperparameters"], model_type, problems)
        raw["model"] = model
    gate = _plain(raw.get("gate"))
    if isinstance(gate, Mapping):
        gate = dict(gate)
        if isinstance(gate.get("thresholds"), Mapping):
            gate["thresholds"] = _thresholds(gate["thresholds"], model_type, task, problems)
        if gate.get("champion_metric") is not None:
            gate["champion_metric"] = _champion_metric(
                gate["champion_metric"], model_type, task, problems
            )
        raw["gate"] = gate
    data = _plain(raw.get("data"))
    if isinstance(data, Mapping):
        raw["data"] = _expectations(dict(data), base_dir)
    elif "data" not in raw:
        raw["data"] = _expectations({}, base_dir)
    return raw, problems


def _hyperparameters(
    values: Mapping[str, Any], model_type: str | None, problems: list[Problem]
) -> dict[str, Any]:
    where = "model.hyperparameters"
    sections: dict[str, dict[str, Any]] = {}
    flat: dict[str, Any] = {}
    for key, value in values.items():
        key = str(key)
        if key in MODELS:
            if value is None:
                value = {}
            if not isinstance(value, Mapping):
                problems.append(
                    (
                        f"{where}.{key}",
                        f"must be a mapping of hyper-parameter names to values, not {value!r}",
                    )
                )
                continue
            sections[key] = {str(k): v for k, v in value.items()}
            for name, message in hyperparameter_problems(key, sections[key]).items():
                problems.append((f"{where}.{key}.{name}", message))
        elif (
            isinstance(value, Mapping)
            and model_type is not None
            and key not in estimator_param_names(model_type)
        ):
            problems.append(
                (
                    f"{where}.{key}",
                    f"{key!r} is neither a model type nor a hyper-parameter of {model_type}"
                    + suggestion(key, list(MODELS)),
                )
            )
        else:
            flat[key] = value
    if model_type is None:
        return flat
    for name, message in hyperparameter_problems(model_type, flat).items():
        owner = next((t for t in MODELS if name in estimator_param_names(t)), None)
        if owner is not None and owner != model_type and not isinstance(flat[name], Mapping):
            message += f"; put it under {where}.{owner} (one section per model type)"
        problems.append((f"{where}.{name}", message))
    return {**sections.get(model_type, {}), **flat}


def _metric_problem(metric: str, task: Task) -> str:
    """Why ``metric`` is not one of ``task``'s metrics, with the closest one."""
    metrics = METRICS[task]
    return (
        f"{metric!r} is not a {task} metric"
        + suggestion(metric, list(metrics))
        + f"; the {task} metrics are {', '.join(metrics)}"
    )


def _other_task(metric: str, task: Task) -> Task | None:
    return next((t for t in TASKS if t != task and metric in METRICS[t]), None)


def _thresholds(
    values: Mapping[str, Any],
    model_type: str | None,
    task: Task | None,
    problems: list[Problem],
) -> dict[str, float]:
    where = "gate.thresholds"
    sections: dict[str, dict[str, float]] = {t: {} for t in TASKS}
    flat: dict[str, float] = {}

    def number(loc: str, value: Any) -> bool:
        if not _is_number(value):
            problems.append((loc, f"must be a number, not {value!r}"))
            return False
        return True

    for key, value in values.items():
        key = str(key)
        if key in TASKS:
            section_task: Task = "classification" if key == "classification" else "regression"
            if value is None:
                continue
            if not isinstance(value, Mapping):
                problems.append((f"{where}.{key}", f"must be a mapping of metrics, not {value!r}"))
                continue
            for metric, bound in value.items():
                loc = f"{where}.{key}.{metric}"
                if str(metric) not in METRICS[section_task]:
                    problems.append((loc, _metric_problem(str(metric), section_task)))
                elif number(loc, bound):
                    sections[key][str(metric)] = float(bound)
        elif isinstance(value, Mapping):
            problems.append(
                (
                    f"{where}.{key}",
                    f"{key!r} is not a task" + suggestion(key, list(TASKS)) + "; the sections "
                    "are classification and regression",
                )
            )
        elif task is not None:
            other = _other_task(key, task)
            if other is not None:
                problems.append(
                    (
                        f"{where}.{key}",
                        f"{key} is a {other} metric, but {model_type} is a {task} model; put it "
                        f"under {where}.{other}",
                    )
                )
            elif key not in METRICS[task]:
                problems.append((f"{where}.{key}", _metric_problem(key, task)))
            elif number(f"{where}.{key}", value):
                flat[key] = float(value)
    if task is None:
        return flat
    return {**sections[task], **flat}


def _champion_metric(
    value: Any, model_type: str | None, task: Task | None, problems: list[Problem]
) -> str | None:
    where = "gate.champion_metric"
    if isinstance(value, Mapping):
        chosen: str | None = None
        for key, metric in value.items():
            key = str(key)
            if key not in TASKS:
                problems.append(
                    (
                        f"{where}.{key}",
                        f"{key!r} is not a task" + suggestion(key, list(TASKS)) + "; the "
                        "sections are classification and regression",
                    )
                )
                continue
            section_task: Task = "classification" if key == "classification" else "regression"
            if metric is None:
                continue
            if str(metric) not in METRICS[section_task]:
                problems.append((f"{where}.{key}", _metric_problem(str(metric), section_task)))
            elif key == task:
                chosen = str(metric)
        return chosen
    if not isinstance(value, str):
        problems.append((where, f"must be a metric name or one per task, not {value!r}"))
        return None
    if task is None:
        return value
    other = _other_task(value, task)
    if other is not None:
        problems.append(
            (
                where,
                f"{value} is a {other} metric, but {model_type} is a {task} model; name one "
                f"per task ({where}: {{classification: roc_auc, regression: rmse}})",
            )
        )
        return None
    if value not in METRICS[task]:
        problems.append((where, _metric_problem(value, task)))
        return None
    return value


def _expectations(data: dict[str, Any], base_dir: Path | None) -> dict[str, Any]:
    """``data.expectations: auto`` (the default) as a path, or None when nothing applies."""
    if data.get("expectations", AUTO) != AUTO:
        return data
    builtin = data.get("builtin", DataParams.model_fields["builtin"].default)
    path = data.get("path", DataParams.model_fields["path"].default)
    suite = SUITES_DIR / f"{builtin}.json"
    if (
        isinstance(builtin, str)
        and isinstance(path, str)
        and Path(path).name == f"{builtin}.csv"
        and suite.is_file()
    ):
        # relative within the checkout (a stable value in the manifest), else absolute
        root = SUITES_DIR.parents[1]
        inside = base_dir is not None and (base_dir == root or root in base_dir.parents)
        data["expectations"] = os.path.relpath(suite, base_dir) if inside else str(suite)
    else:
        data["expectations"] = None
    return data


def _field_model(loc: Sequence[int | str]) -> type[BaseModel] | None:
    """The pydantic model that holds the key at ``loc`` (for its list of valid keys)."""
    model: type[BaseModel] = Params
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def _literal_choices(loc: Sequence[int | str]) -> list[str]:
    model = _field_model(loc)
    field = model.model_fields.get(str(loc[-1])) if model is not None and loc else None
    if field is None:
        return []
    args = get_args(field.annotation)
    literal = next((a for a in args if get_origin(a) is Literal), field.annotation)
    return [str(c) for c in get_args(literal)] if get_origin(literal) is Literal else []


def _field_problem(err: Any) -> Problem:
    loc: tuple[int | str, ...] = tuple(err["loc"])
    where = ".".join(str(x) for x in loc) or "params"
    if err["type"] == "extra_forbidden":
        model = _field_model(loc)
        keys = list(model.model_fields) if model is not None else []
        hint = suggestion(str(loc[-1]), keys)
        return where, "unknown key" + (hint or f"; the keys here are {', '.join(keys)}")
    if err["type"] == "literal_error":
        choices = _literal_choices(loc)
        nullable = "null" if "builtin" in where else ""
        return where, (
            f"{err['input']!r} is not a valid value"
            + suggestion(str(err["input"]), choices)
            + f"; use one of {', '.join([*choices, nullable] if nullable else choices)}"
        )
    return where, str(err["msg"]).removeprefix("Value error, ")


def load_params(path: Path, overrides: Mapping[str, Any] | None = None) -> Params:
    """Read and validate a params file, with dotted-key overrides applied first.

    Args:
        path: The params.yaml file.
        overrides: ``{"model.type": "ridge", ...}`` (see :func:`parse_overrides`).

    Raises:
        ConfigError: when the file is missing or not YAML, or listing every bad key and value.
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
    return parse_params(raw, path, overrides)


def parse_params(
    raw: dict[str, Any],
    path: Path,
    overrides: Mapping[str, Any] | None = None,
    origin: str = "--set",
) -> Params:
    """Validate parameters read from ``path`` (relative paths resolve against it).

    Args:
        raw: The file's mapping.
        path: Where it was read from.
        overrides: Dotted keys set on top of ``raw`` (:func:`apply_overrides`).
        origin: How the overrides were given, for messages (``--set``, ``hyper-parameter``).

    Raises:
        ConfigError: listing every problem at once, each with its key and the fix.
    """
    problems: list[Problem] = []
    merged = raw
    if overrides:
        merged, override_problems = apply_overrides(raw, overrides, origin)
        problems.extend(override_problems)
    base_dir = path.resolve().parent
    params: Params | None = None
    try:
        params = Params.model_validate(merged, context={"problems": problems, "base_dir": base_dir})
    except ValidationError as e:
        problems.extend(_field_problem(err) for err in e.errors())
    if problems or params is None:
        where = f"{path} with {origin} overrides" if overrides else str(path)
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        lines = "\n".join(f"  - {loc}: {msg}" for loc, msg in sorted(set(problems)))
        fix = f"{path.name} or the {origin} overrides" if overrides else path.name
        raise ConfigError(
            f"{where} has {count}; fix each in {fix} (the README's params.yaml reference "
            f"lists every key):\n{lines}"
        )
    params._base_dir = base_dir
    return params


def parse_value(text: str) -> Any:
    """A value written on a command line or in SageMaker's hyperparameters.json, as YAML."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text  # not YAML (e.g. "a: b: c"): the literal text


def parse_overrides(pairs: Sequence[str], option: str = "--set") -> dict[str, Any]:
    """``["model.type=ridge", "seed=7"]`` to ``{"model.type": "ridge", "seed": 7}``.

    Values are YAML (``null``, ``true``, ``0.5``, ``ridge``).

    Raises:
        ConfigError: naming every pair that is not ``key=value``.
    """
    result: dict[str, Any] = {}
    bad: list[str] = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip() or any(not p for p in key.strip().split(".")):
            bad.append(pair)
            continue
        result[key.strip()] = parse_value(value)
    if bad:
        raise ConfigError(
            f"{option} takes a dotted params.yaml key and a value, e.g. {option} "
            f"model.type=ridge; these are not key=value: {', '.join(map(repr, bad))}."
        )
    return result


def apply_overrides(
    raw: Mapping[str, Any], overrides: Mapping[str, Any], origin: str = "--set"
) -> tuple[dict[str, Any], list[Problem]]:
    """Set dotted keys (``model.hyperparameters.C``) in a copy of a params mapping.

    Returns:
        The new mapping, and a problem for every override whose path runs through a value
        (:func:`parse_params` reports them with the file's own problems).
    """
    merged: dict[str, Any] = copy.deepcopy(dict(raw))
    problems: list[Problem] = []
    for dotted, value in overrides.items():
        parts = dotted.split(".")
        node = merged
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                problems.append(
                    (
                        dotted,
                        f"{'.'.join(parts[: i + 1])} is a value, not a section, so this "
                        f"{origin} cannot set a key inside it; use a dotted path to a leaf, "
                        "e.g. model.hyperparameters.C",
                    )
                )
                break
            node = child
        else:
            node[parts[-1]] = value
    return merged, problems
