"""Evaluate a fitted model on the held-out split, run behavioural checks, and gate it.

The gate passes only when every behavioural check passes, every metric is on the right side of
its threshold in ``params.yaml``, and the model is not worse than the current champion by more
than the tolerance. Pure functions: the caller raises :class:`~core.errors.GateFailed`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipelines.params import LOWER_IS_BETTER, Task


@dataclass(frozen=True)
class Champion:
    """A registered version (the champion) with what the gate compares: task and metrics.

    ``task`` and ``dataset_sha256`` are the version's ``mlship.task`` and
    ``mlship.dataset_sha256`` tags; None for a version registered without them.
    """

    version: str
    metrics: dict[str, float]
    task: str | None = None
    dataset_sha256: str | None = None


@dataclass(frozen=True)
class GateResult:
    """Outcome of the gate: what passed and, if anything, what failed."""

    passed_checks: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


def compute_metrics(model: Any, X: np.ndarray, y: np.ndarray, task: Task) -> dict[str, float]:
    """Held-out metrics of a fitted model: see :func:`prediction_metrics`."""
    if task == "regression":
        return prediction_metrics(y, model.predict(X), None, None, task)
    return prediction_metrics(
        y, model.predict(X), model.predict_proba(X), list(model.classes_), task
    )


def prediction_metrics(
    y: np.ndarray,
    pred: np.ndarray,
    proba: np.ndarray | None,
    classes: list[Any] | None,
    task: Task,
) -> dict[str, float]:
    """Accuracy, F1 and ROC AUC, or RMSE, MAE and R², of predictions against labels.

    Training scores the held-out split with it, and ``mlship report`` the served predictions
    joined with labels that arrived later, so the two are comparable. Binary F1 is for the last
    class (the positive one in scikit-learn's order); with more classes, F1 is macro-averaged
    and ROC AUC one-vs-rest. ROC AUC needs ``proba`` (columns in ``classes`` order): without
    it, it is left out.
    """
    from sklearn import metrics as m

    if task == "regression":
        values = np.asarray(pred, dtype=np.float64)
        return {
            "rmse": float(np.sqrt(m.mean_squared_error(y, values))),
            "mae": float(m.mean_absolute_error(y, values)),
            "r2": float(m.r2_score(y, values)),
        }
    classes = list(classes or [])
    if len(classes) == 2:
        f1 = m.f1_score(y, pred, pos_label=classes[1])
    else:
        f1 = m.f1_score(y, pred, average="macro")
    out = {"accuracy": float(m.accuracy_score(y, pred)), "f1": float(f1)}
    if proba is not None:
        if len(classes) == 2:
            auc = m.roc_auc_score(y, proba[:, 1]) if len(np.unique(y)) == 2 else float("nan")
        else:
            auc = m.roc_auc_score(y, proba, multi_class="ovr", labels=classes)
        out["roc_auc"] = float(auc)
    return out


def behavioural_checks(
    model: Any, X: np.ndarray, y: np.ndarray, task: Task, seed: int
) -> tuple[list[str], list[str]]:
    """Prediction shape, invariance to row order, and minimum functionality.

    Minimum functionality: a classifier must beat always predicting the most frequent class
    (accuracy), a regressor must beat always predicting the mean (RMSE), on the held-out rows.

    Returns:
        The names of the passed checks and the descriptions of the failed ones.
    """
    passed: list[str] = []
    failed: list[str] = []
    n = X.shape[0]
    pred = np.asarray(model.predict(X))
    if pred.shape == (n,):
        passed.append("prediction shape")
    else:
        failed.append(f"prediction shape: expected ({n},), got {pred.shape}")
    if task == "classification":
        proba = np.asarray(model.predict_proba(X))
        k = len(model.classes_)
        if proba.shape != (n, k) or not np.allclose(proba.sum(axis=1), 1.0):
            failed.append(
                f"probabilities: expected ({n}, {k}) rows summing to 1, got {proba.shape}"
            )
        else:
            passed.append("probability shape")
    order = np.random.default_rng(seed).permutation(n)
    shuffled = np.asarray(model.predict(X[order]))
    same = (
        np.allclose(shuffled, pred[order])
        if task == "regression"
        else bool(np.array_equal(shuffled, pred[order]))
    )
    if same:
        passed.append("invariance to row order")
    else:
        failed.append("invariance to row order: predictions change when the rows are shuffled")
    if task == "classification":
        values, counts = np.unique(y, return_counts=True)
        baseline = float(counts.max() / counts.sum())
        accuracy = float(np.mean(pred == y))
        if accuracy > baseline:
            passed.append("minimum functionality")
        else:
            failed.append(
                f"minimum functionality: accuracy {accuracy:.4f} is no better than always "
                f"predicting {values[counts.argmax()].tolist()!r} ({baseline:.4f})"
            )
    else:
        rmse = float(np.sqrt(np.mean((pred.astype(np.float64) - y) ** 2)))
        baseline = float(np.sqrt(np.mean((y - y.mean()) ** 2)))
        if rmse < baseline:
            passed.append("minimum functionality")
        else:
            failed.append(
                f"minimum functionality: RMSE {rmse:.4f} is no better than always predicting "
                f"the mean ({baseline:.4f})"
            )
    return passed, failed


def _worse(metric: str, value: float, bound: float) -> bool:
    return value > bound if metric in LOWER_IS_BETTER else value < bound


def gate(
    metrics: dict[str, float],
    thresholds: dict[str, float],
    checks: tuple[list[str], list[str]],
    champion: Champion | None,
    champion_metric: str,
    tolerance: float,
    task: Task,
    dataset_sha256: str | None = None,
) -> GateResult:
    """Decide whether a model may be registered.

    The champion is compared only when it was trained for the same task: a regressor's RMSE
    says nothing against a classifier's ROC AUC. Otherwise, and when there is no champion, the
    notes say why nothing was compared.

    Args:
        metrics: Held-out metrics of the new model.
        thresholds: Minimum (or maximum for rmse/mae) per metric.
        checks: The passed and failed behavioural checks.
        champion: The current champion of the same registered name, or None.
        champion_metric: The metric compared with the champion.
        tolerance: How much worse than the champion (absolute) is still accepted.
        task: The new model's task.
        dataset_sha256: The new model's data, to note when the champion's was other data.
    """
    passed, failures = list(checks[0]), list(checks[1])
    notes: list[str] = []
    for metric, bound in sorted(thresholds.items()):
        value = metrics[metric]
        op = "<=" if metric in LOWER_IS_BETTER else ">="
        if np.isnan(value) or _worse(metric, value, bound):
            failures.append(f"{metric} {value:.4f} is not {op} its threshold {bound}")
        else:
            passed.append(f"{metric} {value:.4f} {op} {bound}")
    if champion is None:
        notes.append("no champion registered yet: nothing to compare with")
    elif champion.task is None:
        notes.append(f"champion v{champion.version} has no recorded task: not compared")
    elif champion.task != task:
        notes.append(
            f"champion v{champion.version} is a {champion.task} model and this is a {task} "
            "model: not compared"
        )
    elif champion_metric not in champion.metrics:
        notes.append(f"champion v{champion.version} has no {champion_metric}: not compared")
    else:
        theirs = champion.metrics[champion_metric]
        ours = metrics[champion_metric]
        lower = champion_metric in LOWER_IS_BETTER
        bound = theirs + tolerance if lower else theirs - tolerance
        if _worse(champion_metric, ours, bound):
            failures.append(
                f"{champion_metric} {ours:.4f} is worse than champion v{champion.version} "
                f"({theirs:.4f}) by more than the tolerance {tolerance}"
            )
        else:
            passed.append(
                f"{champion_metric} {ours:.4f} vs champion v{champion.version} {theirs:.4f} "
                f"(tolerance {tolerance})"
            )
        if (
            dataset_sha256 is not None
            and champion.dataset_sha256 is not None
            and champion.dataset_sha256 != dataset_sha256
        ):
            notes.append(
                f"champion v{champion.version} was evaluated on other data (sha256 "
                f"{champion.dataset_sha256[:12]}, this run {dataset_sha256[:12]}): its "
                f"{champion_metric} is from other held-out rows"
            )
    return GateResult(passed_checks=passed, failures=failures, notes=notes)
