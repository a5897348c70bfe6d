"""``mlship train``: data -> validate -> fit -> evaluate -> gate -> bundle -> register.

One code path, run locally by default (and later inside a SageMaker training job). Nothing is
written where a user would find it until the gate has passed: the bundle is built in a hidden
staging directory, registered, and only then renamed to the output directory; a failure at any
step leaves the previous bundle (if any) in place and nothing half-registered.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.bundle import MANIFEST_FILE
from core.errors import ConfigError, DataError, GateFailed
from core.manifest import FeatureSpec, ManifestDraft, TargetSpec
from pipelines.packaging import Registration, golden_rows, package
from pipelines.params import MODELS, Params

if TYPE_CHECKING:
    from pipelines.data import XY, Dataset


@dataclass(frozen=True)
class Lineage:
    """Data version and commit known to whoever started the run (None: unknown to them)."""

    data_version: str | None = None
    git_commit: str | None = None


@dataclass(frozen=True)
class TrainResult:
    """What a successful run produced."""

    bundle_dir: Path
    bundle_version: str
    metrics: dict[str, float]
    registered_version: str | None
    run_id: str | None


class _Progress:
    """Numbered step lines with the time since the start, sent to ``say``."""

    def __init__(self, steps: int, say: Callable[[str], None]) -> None:
        self.steps = steps
        self.step = 0
        self.say = say
        self.started = time.monotonic()

    def __call__(self, message: str) -> None:
        self.step += 1
        elapsed = time.monotonic() - self.started
        self.say(f"[{self.step}/{self.steps}] {message} ({elapsed:.1f}s)")

    def note(self, message: str) -> None:
        """A line inside the current step (not a step of its own)."""
        self.say(f"      {message}")


def build_pipeline(params: Params, specs: list[FeatureSpec] | None = None) -> Any:
    """The scikit-learn Pipeline of a params file, over the encoded feature matrix.

    Numbers are scaled (after a median imputer when the training data has missing values);
    categorical codes are one-hot encoded over the known categories (plus 'other' when the
    categories were capped), a missing or never-seen value encoding as all zeros. Without
    categorical features the pipeline is imputer (if needed), scaler, model, as onnxruntime
    runs it (it has no float64 imputer: a model without missing values stays exportable).

    Args:
        params: The training parameters (model type, hyper-parameters, seed).
        specs: The feature specs from :func:`pipelines.profile.profile` (None: numeric
            features without missing values).
    """
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    _, module, cls, defaults = MODELS[params.model.type]
    estimator = getattr(importlib.import_module(module), cls)()
    settings = {**defaults, **params.model.hyperparameters}
    if "random_state" in estimator.get_params():
        settings["random_state"] = params.seed
    estimator.set_params(**settings)
    specs = specs or []
    numeric = [j for j, f in enumerate(specs) if not f.is_categorical]
    categorical = [j for j, f in enumerate(specs) if f.is_categorical]

    def numbers(nullable: bool) -> list[tuple[str, Any]]:
        impute = [("impute", SimpleImputer(strategy="median"))] if nullable else []
        return [*impute, ("scale", StandardScaler())]

    if not categorical:
        return Pipeline([*numbers(any(f.nullable for f in specs)), ("model", estimator)])
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder

    known = [
        np.arange(len(specs[j].categories or []) + specs[j].other, dtype=np.float64)
        for j in categorical
    ]
    onehot = ("onehot", OneHotEncoder(categories=known, handle_unknown="ignore"))
    # A missing value (NaN) becomes -1, which no category has: all zeros, like an unseen one.
    impute = ("impute", SimpleImputer(strategy="constant", fill_value=-1.0))
    nullable = any(specs[j].nullable for j in categorical)
    encode_categories = Pipeline([impute, onehot] if nullable else [onehot])
    parts: list[tuple[str, Any, list[int]]] = [("categories", encode_categories, categorical)]
    if numeric:
        nullable = any(specs[j].nullable for j in numeric)
        parts.insert(0, ("numbers", Pipeline(numbers(nullable)), numeric))
    return Pipeline([("features", ColumnTransformer(parts)), ("model", estimator)])


def git_commit(cwd: Path) -> str | None:
    """``git rev-parse HEAD`` of the directory, or None outside a git work tree."""
    git = shutil.which("git")
    if git is None:
        return None
    try:
        out = subprocess.run(  # noqa: S603 (fixed argv, no shell)
            [git, "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def _fit(pipeline: Any, X: np.ndarray, y: np.ndarray) -> Any:
    from sklearn.utils._param_validation import InvalidParameterError

    try:
        return pipeline.fit(X, y)
    except InvalidParameterError as e:
        raise ConfigError(
            f"params.yaml model.hyperparameters: {e}. Fix the value in params.yaml."
        ) from e


def _read(params: Params, data: str | None, say: Callable[[str], None]) -> tuple[Dataset, XY, str]:
    """Read the data (materialising the bundled CSV if asked), check it and validate it."""
    from pipelines.data import materialise, read_table, split_xy

    source = data if data is not None else str(params.resolve(params.data.path))
    builtin = params.data.builtin
    # Only a file named after the dataset is materialised: a missing file of the user's own
    # (a typo in data.path) must be an error, never silently replaced by the demo data.
    if (
        data is None
        and builtin is not None
        and Path(source).name == f"{builtin}.csv"
        and not Path(source).exists()
    ):
        materialise(builtin, Path(source))
        say(f"materialised scikit-learn's {builtin} data as {source}")
    dataset = read_table(source)
    # Structural problems first (target, rows, types): their messages are the most actionable.
    xy = split_xy(
        dataset.frame,
        params.data.target,
        params.task,
        source=source,
        declared=params.data.features,
        exclude=params.data.exclude,
    )
    for same in _classes_alike(xy.classes or []):
        say(
            f"note: the target column {params.data.target!r} has classes that differ only in "
            f"case: {', '.join(map(repr, same))}. If they are one class, spell them alike in "
            "the data; the model learns them apart."
        )
    return dataset, xy, source


def _classes_alike(classes: list[Any]) -> list[list[str]]:
    """Text classes that are one text but for case (``Yes``, ``yes``), a group each."""
    groups: dict[str, list[str]] = {}
    for c in classes:
        if isinstance(c, str):
            groups.setdefault(c.casefold(), []).append(c)
    return [group for group in groups.values() if len(group) > 1]


def _split(params: Params, xy: XY, source: str) -> list[np.ndarray]:
    """Training and held-out row positions."""
    from sklearn.model_selection import train_test_split

    try:
        parts: list[np.ndarray] = train_test_split(
            np.arange(len(xy.y)),
            test_size=params.split.test_size,
            random_state=params.seed,
            stratify=xy.y if params.task == "classification" else None,
        )
    except ValueError as e:
        raise DataError(
            f"{source} cannot be split into training and held-out rows ({e}). Use more rows "
            "(at least a few per class) or change split.test_size in params.yaml."
        ) from e
    return parts


def train(
    params: Params,
    data: str | None = None,
    out: Path | None = None,
    say: Callable[[str], None] = print,
    lineage: Lineage | None = None,
) -> TrainResult:
    """Run the whole pipeline once.

    Args:
        params: Validated parameters (:func:`pipelines.params.load_params`).
        data: CSV/Parquet path or s3:// URI overriding ``data.path``.
        out: Bundle directory overriding ``output.dir``.
        say: Where the numbered progress lines go.
        lineage: What the run cannot see itself (inside a SageMaker job: the S3 version of
            the channel's file and the commit, passed by the launcher); None: read here.

    Raises:
        DataError: the data is missing, unreadable or fails validation.
        ConfigError: a parameter is invalid.
        GateFailed: the model failed a behavioural check, a threshold or the champion.
        RegistryError: the MLflow registry refused the run (nothing is left registered).
    """
    from pipelines.baseline import data_quality_baseline
    from pipelines.evaluate import behavioural_checks, compute_metrics, gate
    from pipelines.profile import encode, profile, raw_rows

    progress = _Progress(6, say)
    out_dir = out if out is not None else params.resolve(params.output.dir)
    if out_dir.exists() and not (out_dir / MANIFEST_FILE).exists():
        raise ConfigError(
            f"{out_dir} exists and is not an mlship bundle; refusing to overwrite it. Choose "
            "another --out directory (or output.dir in params.yaml) or remove it."
        )
    dataset, xy, source = _read(params, data, say)
    progress(f"read {source}: {len(dataset.frame)} rows, {dataset.frame.shape[1]} columns")
    if params.data.expectations is None:
        progress("validation skipped (data.expectations is null)")
    else:
        from pipelines.validate import load_suite, validate

        suite_path = params.resolve(params.data.expectations)
        checked = validate(dataset.frame, load_suite(suite_path), source=source)
        progress(f"validated against {suite_path.name}: {checked} expectations passed")

    train_rows, test_rows = _split(params, xy, source)
    # The schema (categories, ranges, types) comes from the training rows only.
    features, reference = profile(
        xy.features.iloc[train_rows], xy.dtypes, params.data.max_categories, progress.note
    )
    # Model Monitor's data-quality baseline of the same rows, for the scheduled batch check.
    baseline = data_quality_baseline(xy.features.iloc[train_rows], features)
    X_train, X_test = (
        encode(xy.features.iloc[train_rows], features),
        encode(xy.features.iloc[test_rows], features),
    )
    y_train, y_test = xy.y[train_rows], xy.y[test_rows]
    model = _fit(build_pipeline(params, features), X_train, y_train)
    progress(
        f"fitted {params.model.type} on {len(y_train)} rows "
        f"({len(xy.feature_names)} features, seed {params.seed})"
    )

    metrics = compute_metrics(model, X_test, y_test, params.task)
    checks = behavioural_checks(model, X_test, y_test, params.task, params.seed)
    progress(
        f"evaluated on {len(y_test)} held-out rows: "
        + " ".join(f"{k}={v:.4f}" for k, v in metrics.items())
    )

    settings = champion = None
    if params.registry.enabled:
        from core.registry import RegistrySettings
        from pipelines.registry import aliased

        settings = RegistrySettings.from_env(params.registered_name, params.registry.experiment)
        champion = aliased(settings, "champion")
    result = gate(
        metrics,
        params.gate.thresholds,
        checks,
        champion,
        params.champion_metric,
        params.gate.champion_tolerance,
        task=params.task,
        dataset_sha256=dataset.sha256,
    )
    lineage = lineage or Lineage()
    commit = lineage.git_commit or git_commit(params.resolve("."))
    data_version = lineage.data_version or dataset.version
    created = datetime.now(UTC)
    params_json = params.model_dump(mode="json")
    digest = hashlib.sha256(
        (dataset.sha256 + json.dumps(params_json, sort_keys=True)).encode()
    ).hexdigest()
    bundle_version = f"{created:%Y%m%dT%H%M%SZ}-{digest[:8]}"
    tags = {
        "mlship.bundle_version": bundle_version,
        "mlship.dataset_sha256": dataset.sha256,
        "mlship.task": params.task,
        "mlship.data_version": data_version,
        "mlship.git_commit": commit or "none",
        "mlship.data_source": source,
        "mlship.gate": "passed" if result.passed else "failed",
    }
    if not result.passed:
        if settings is not None:
            from pipelines.registry import log_failed_run

            log_failed_run(settings, params_json, metrics, tags)
        raise GateFailed(
            f"The model failed the quality gate, so nothing was registered and no bundle was "
            f"written: {'; '.join(result.failures)}. Improve the model or the data (see "
            "model.hyperparameters in params.yaml), or, if the bar itself is wrong, change "
            "gate.thresholds / gate.champion_tolerance."
        )
    progress("gate passed: " + "; ".join(result.passed_checks + result.notes))

    manifest = ManifestDraft(
        name=params.name,
        version=bundle_version,
        created_at=created.isoformat(),
        git_commit=commit,
        dataset_sha256=dataset.sha256,
        data_version=data_version,
        task=params.task,
        params=params_json,
        metrics=metrics,
        features=features,
        target=TargetSpec(name=xy.target, classes=xy.classes),
        reference=reference,
    )
    registration = (
        Registration(settings=settings, alias=params.registry.alias, tags=tags)
        if settings is not None
        else None
    )
    golden = golden_rows(
        model, X_test, raw_rows(xy.features.iloc[test_rows], features), params.task
    )
    onnx_check = X_test if params.output.onnx else None
    version, run_id = package(
        out_dir, model, manifest, golden, registration, onnx_check, progress.note, baseline
    )
    progress(f"bundle written to {out_dir}")
    if params.output.metrics is not None:
        metrics_path = params.resolve(params.output.metrics)
        metrics_path.parent.mkdir(parents=True, exist_ok=True)
        metrics_path.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return TrainResult(
        bundle_dir=out_dir,
        bundle_version=bundle_version,
        metrics=metrics,
        registered_version=version,
        run_id=run_id,
    )
