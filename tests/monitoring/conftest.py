"""A bundle whose model accepts missing values (an imputer first), for data-quality tests."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from core.bundle import read_manifest, write_bundle
from core.manifest import Golden, ManifestDraft, TargetSpec
from pipelines.profile import describe_features

# Trained with a tenth of this feature missing: the manifest marks it nullable.
NULLABLE_FEATURE = "mean_texture"
IRIS = TargetSpec(name="species", classes=[0, 1, 2])


def _write(
    out: Path,
    model: Any,
    X: np.ndarray,
    X_train: np.ndarray,
    golden_X: np.ndarray,
    names: list[str],
    target: TargetSpec,
    name: str,
    version: str,
    metrics: dict[str, float] | None = None,
) -> Path:
    """The bundle ``mlship train`` would write for a fitted classifier: features and reference
    histograms from the training rows, golden rows (None for missing), the manifest."""
    features, reference = describe_features(X_train, names)
    golden = Golden(
        inputs=[[None if np.isnan(v) else float(v) for v in row] for row in golden_X],
        predictions=model.predict(golden_X).tolist(),
        probabilities=model.predict_proba(golden_X).tolist(),
    )
    manifest = ManifestDraft(
        name=name,
        version=version,
        created_at=datetime.now(UTC).isoformat(),
        git_commit=None,
        dataset_sha256=hashlib.sha256(np.nan_to_num(X).tobytes()).hexdigest(),
        task="classification",
        params={"model": "logistic"},
        metrics=metrics or {},
        features=features,
        target=target,
        reference=reference,
    )
    return write_bundle(out, model, manifest, golden)


@pytest.fixture(scope="session")
def nullable_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A logistic-regression bundle on the breast-cancer data with ``mean_texture`` nullable.

    The held-out rows and labels are saved beside it (``<name>-test_X.npy``, ``-test_y.npy``).
    """
    data = load_breast_cancer()
    names = [str(n).replace(" ", "_") for n in data.feature_names]
    X = np.asarray(data.data, dtype=np.float64)
    j = names.index(NULLABLE_FEATURE)
    X[np.random.default_rng(0).random(len(X)) < 0.1, j] = np.nan
    y = np.asarray(data.target)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    model = Pipeline(
        [
            ("impute", SimpleImputer()),
            ("scale", StandardScaler()),
            ("model", LogisticRegression(max_iter=1000)),
        ]
    ).fit(X_train, y_train)
    out = tmp_path_factory.mktemp("bundles") / "nullable"
    bundle = _write(
        out, model, X, X_train, X_test[:20], names,
        TargetSpec(name="target", classes=np.unique(y).tolist()), "mlship", "test-nullable-0",
    )  # fmt: skip
    assert read_manifest(bundle).features[j].nullable
    np.save(out.parent / "nullable-test_X.npy", X_test)
    np.save(out.parent / "nullable-test_y.npy", y_test)
    return bundle


@pytest.fixture(scope="session")
def iris_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-class logistic regression on the 4 iris features (version ``test-iris-0``): the
    model of the hand-written SageMaker capture fixture."""
    from sklearn.datasets import load_iris

    data = load_iris()
    names = [str(n).replace(" ", "_") for n in data.feature_names]
    X = np.asarray(data.data, dtype=np.float64)
    y = np.asarray(data.target)
    X_train, X_test, y_train, _ = train_test_split(X, y, test_size=0.3, random_state=0)
    model = LogisticRegression(max_iter=1000).fit(X_train, y_train)
    out = tmp_path_factory.mktemp("bundles") / "iris"
    metrics = {"accuracy": 0.97, "f1": 0.97, "roc_auc": 0.99}
    return _write(out, model, X, X_train, X_test[:10], names, IRIS, "iris", "test-iris-0", metrics)


@pytest.fixture(scope="session")
def nullable_iris_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-class logistic regression on iris (version ``test-iris-nullable-0``) with
    ``sepal_width`` missing in a tenth of the rows (an imputer first: the manifest marks it
    nullable): missing values, out-of-range values and several classes in one model."""
    from sklearn.datasets import load_iris

    data = load_iris()
    names = [str(n).replace(" (cm)", "").replace(" ", "_") for n in data.feature_names]
    X = np.asarray(data.data, dtype=np.float64)
    j = names.index("sepal_width")
    X[np.random.default_rng(0).random(len(X)) < 0.1, j] = np.nan
    y = np.asarray(data.target)
    X_train, X_test, y_train, _ = train_test_split(X, y, test_size=0.3, random_state=0)
    model = Pipeline(
        [("impute", SimpleImputer()), ("model", LogisticRegression(max_iter=1000))]
    ).fit(X_train, y_train)
    out = tmp_path_factory.mktemp("bundles") / "nullable-iris"
    bundle = _write(
        out, model, X, X_train, X_test[:10], names, IRIS, "iris", "test-iris-nullable-0"
    )
    assert read_manifest(bundle).features[j].nullable
    return bundle


@pytest.fixture(scope="session")
def penguins_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Palmer penguins trained by ``mlship train``'s pipeline: text features (island, sex with
    gaps) and text labels. The table is saved beside it as ``penguins.csv``."""
    import yaml
    from palmerpenguins import load_penguins

    from pipelines.params import load_params
    from pipelines.train import train

    tmp = tmp_path_factory.mktemp("penguins")
    load_penguins().to_csv(tmp / "penguins.csv", index=False)
    raw = {
        "name": "penguins",
        "data": {"path": str(tmp / "penguins.csv"), "target": "species", "builtin": None,
                 "expectations": None},
        "model": {"type": "logistic_regression", "hyperparameters": {}},
        "gate": {"thresholds": {}},
        "output": {"dir": str(tmp / "bundle"), "metrics": None, "onnx": False},
        "registry": {"enabled": False},
    }  # fmt: skip
    (tmp / "params.yaml").write_text(yaml.safe_dump(raw))
    return train(load_params(tmp / "params.yaml"), say=lambda _: None).bundle_dir
