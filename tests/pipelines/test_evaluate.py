"""Metrics, behavioural checks and the gate, on tiny real models and deliberately broken ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression, Ridge

from pipelines.evaluate import Champion, behavioural_checks, compute_metrics, gate


@pytest.fixture(scope="module")
def xy(breast_cancer_csv: Path) -> tuple[np.ndarray, np.ndarray]:
    frame = pd.read_csv(breast_cancer_csv)
    return frame.drop(columns="target").to_numpy(), frame["target"].to_numpy()


class _OrderDependent:
    """Predicts from the row position, not the row: shuffling the rows changes its answers."""

    classes_ = np.array([0, 1])

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.arange(len(X)) % 2

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        p = self.predict(X).astype(float)
        return np.column_stack([1 - p, p])


class _Constant(_OrderDependent):
    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.ones(len(X), dtype=int)


def test_good_classifier_passes_every_check(xy: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = xy
    model = LogisticRegression(max_iter=5000).fit(X[:400], y[:400])
    metrics = compute_metrics(model, X[400:], y[400:], "classification")
    assert set(metrics) == {"accuracy", "f1", "roc_auc"}
    assert metrics["accuracy"] > 0.9
    passed, failed = behavioural_checks(model, X[400:], y[400:], "classification", seed=0)
    assert failed == []
    assert "invariance to row order" in passed
    assert "minimum functionality" in passed


def test_order_dependent_model_fails_invariance(xy: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = xy
    _, failed = behavioural_checks(_OrderDependent(), X, y, "classification", seed=0)
    assert any(f.startswith("invariance to row order") for f in failed)


def test_constant_model_fails_minimum_functionality(xy: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = xy
    _, failed = behavioural_checks(_Constant(), X, y, "classification", seed=0)
    assert failed == [
        "minimum functionality: accuracy 0.6274 is no better than always predicting 1 (0.6274)"
    ]


def test_regression_metrics_and_baseline() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + rng.normal(scale=0.1, size=200)
    model = Ridge().fit(X, y)
    metrics = compute_metrics(model, X, y, "regression")
    assert set(metrics) == {"rmse", "mae", "r2"}
    assert metrics["r2"] > 0.99
    assert behavioural_checks(model, X, y, "regression", seed=0)[1] == []
    flat = Ridge().fit(X, np.zeros(200))
    _, failed = behavioural_checks(flat, X, y, "regression", seed=0)
    assert any("no better than always predicting the mean" in f for f in failed)


def test_gate_thresholds_respect_metric_direction() -> None:
    ok: tuple[list[str], list[str]] = (["prediction shape"], [])
    result = gate(
        {"rmse": 2.0, "r2": 0.8}, {"rmse": 3.0, "r2": 0.5}, ok, None, "rmse", 0.0, "regression"
    )
    assert result.passed
    result = gate(
        {"rmse": 4.0, "r2": 0.4}, {"rmse": 3.0, "r2": 0.5}, ok, None, "rmse", 0.0, "regression"
    )
    assert result.failures == [
        "r2 0.4000 is not >= its threshold 0.5",
        "rmse 4.0000 is not <= its threshold 3.0",
    ]


def test_gate_against_champion_with_tolerance() -> None:
    ok: tuple[list[str], list[str]] = ([], [])
    champion = Champion(version="3", metrics={"roc_auc": 0.99}, task="classification")
    assert gate({"roc_auc": 0.985}, {}, ok, champion, "roc_auc", 0.01, "classification").passed
    worse = gate({"roc_auc": 0.97}, {}, ok, champion, "roc_auc", 0.01, "classification")
    assert worse.failures == [
        "roc_auc 0.9700 is worse than champion v3 (0.9900) by more than the tolerance 0.01"
    ]
    rmse_champion = Champion(version="1", metrics={"rmse": 50.0}, task="regression")
    assert not gate({"rmse": 52.0}, {}, ok, rmse_champion, "rmse", 1.0, "regression").passed
    assert gate({"rmse": 50.5}, {}, ok, rmse_champion, "rmse", 1.0, "regression").passed


def test_gate_fails_on_behavioural_failure_alone() -> None:
    result = gate(
        {"accuracy": 0.99},
        {},
        ([], ["invariance to row order: ..."]),
        None,
        "f1",
        0.0,
        "classification",
    )
    assert not result.passed


def test_gate_never_compares_with_a_champion_of_another_task() -> None:
    ok: tuple[list[str], list[str]] = (["prediction shape"], [])
    # a classifier champion whose roc_auc this regressor could never reach
    classifier = Champion(
        version="4", metrics={"roc_auc": 0.99, "rmse": 0.0}, task="classification"
    )
    result = gate({"rmse": 55.0, "r2": 0.4}, {}, ok, classifier, "rmse", 0.01, "regression")
    assert result.passed
    assert result.notes == [
        "champion v4 is a classification model and this is a regression model: not compared"
    ]
    assert not any("champion" in p for p in result.passed_checks)
    unknown = Champion(version="2", metrics={"rmse": 1.0})
    result = gate({"rmse": 55.0}, {}, ok, unknown, "rmse", 0.01, "regression")
    assert result.passed
    assert result.notes == ["champion v2 has no recorded task: not compared"]
    assert gate({"rmse": 55.0}, {}, ok, None, "rmse", 0.0, "regression").notes == [
        "no champion registered yet: nothing to compare with"
    ]


def test_gate_notes_a_champion_trained_on_other_data() -> None:
    ok: tuple[list[str], list[str]] = ([], [])
    champion = Champion(
        version="1", metrics={"roc_auc": 0.95}, task="classification", dataset_sha256="a" * 64
    )
    same = gate({"roc_auc": 0.96}, {}, ok, champion, "roc_auc", 0.0, "classification", "a" * 64)
    assert same.notes == []
    other = gate({"roc_auc": 0.96}, {}, ok, champion, "roc_auc", 0.0, "classification", "b" * 64)
    assert other.passed
    assert other.notes == [
        "champion v1 was evaluated on other data (sha256 aaaaaaaaaaaa, this run bbbbbbbbbbbb): "
        "its roc_auc is from other held-out rows"
    ]
