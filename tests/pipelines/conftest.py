"""Fixtures for the training pipeline tests: data files, params files, an isolated registry."""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.data import materialise

REPO = Path(__file__).resolve().parents[2]
SUITE = REPO / "pipelines" / "expectations" / "breast_cancer.json"

WriteParams = Callable[..., Path]
REPLACED = frozenset({"hyperparameters", "thresholds"})


@pytest.fixture(scope="session")
def empty_mlflow_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow SQLite store with its schema created (the migrations take seconds per store)."""
    from mlflow.tracking import MlflowClient

    db = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    with warnings.catch_warnings():  # SQLAlchemy deprecation inside MLflow's store set-up
        warnings.simplefilter("ignore", DeprecationWarning)
        MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments()
    return db


@pytest.fixture(autouse=True)
def isolated_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, empty_mlflow_db: Path
) -> str:
    """Every test gets its own MLflow store in tmp_path and runs from tmp_path.

    Nothing may touch the repository's .mlship/ store. The store starts as a copy of an empty,
    migrated database.
    """
    (tmp_path / "mlflow").mkdir()
    shutil.copyfile(empty_mlflow_db, tmp_path / "mlflow" / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("GX_ANALYTICS_ENABLED", "false")
    monkeypatch.chdir(tmp_path)
    return uri


@pytest.fixture(scope="session")
def breast_cancer_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled breast-cancer data as mlship materialises it (read-only for tests)."""
    return materialise("breast_cancer", tmp_path_factory.mktemp("data") / "breast_cancer.csv")


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        # hyper-parameters and thresholds are replaced, not merged: they depend on the model
        if key not in REPLACED and isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


@pytest.fixture
def write_params(tmp_path: Path, breast_cancer_csv: Path) -> WriteParams:
    """Write a params.yaml in tmp_path: the repo's defaults, paths into tmp_path, overrides."""

    def write(**overrides: Any) -> Path:
        base = yaml.safe_load((REPO / "params.yaml").read_text())
        base["data"]["path"] = str(breast_cancer_csv)
        base["data"]["expectations"] = str(SUITE)
        base["output"] = {"dir": str(tmp_path / "out" / "bundle"), "metrics": None}
        path = tmp_path / "params.yaml"
        path.write_text(yaml.safe_dump(_merge(base, overrides)))
        return path

    return write
