"""``/metrics``: names present and counting what happened."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.app.conftest import ClientFactory


def _value(text: str, metric: str, **labels: str) -> float:
    for line in text.splitlines():
        if not line.startswith(metric + "{") and not line.startswith(metric + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{metric} {labels} not in /metrics")


def test_metrics_count_requests_predictions_and_latency(
    make_client: ClientFactory, X: np.ndarray
) -> None:
    client = make_client()
    labels = client.app.state.service.model.predict(X[:10]).labels  # type: ignore[attr-defined]

    client.post("/v1/predict", json={"instances": X[:10].tolist()})
    client.post("/v1/predict", json={"features": [1.0]})
    text = client.get("/metrics").text

    assert _value(text, "mlship_http_requests_total", route="/v1/predict", status="200") == 1
    assert _value(text, "mlship_http_requests_total", route="/v1/predict", status="422") == 1
    assert _value(text, "mlship_http_request_duration_seconds_count", route="/v1/predict") == 2
    assert _value(text, "mlship_http_requests_in_flight") == 1  # the /metrics request itself
    for cls in (0, 1):
        assert _value(text, "mlship_predictions_total", **{"class": str(cls)}) == float(
            np.sum(labels == cls)
        )
    assert (
        _value(
            text,
            "mlship_model_info",
            name="mlship",
            version="test-logistic-0",
            task="classification",
        )
        == 1
    )
    assert _value(text, "mlship_model_load_seconds") > 0
    assert _value(text, "mlship_drift_rows_total") == 10
    assert "mlship_feature_drift_psi" in text
    assert "mlship_input_out_of_range_total" in text
    assert "mlship_input_missing_values_total" in text


def test_metrics_unknown_paths_share_one_label(make_client: ClientFactory) -> None:
    client = make_client()

    for i in range(3):
        client.get(f"/random-{i}")
    text = client.get("/metrics").text

    assert _value(text, "mlship_http_requests_total", route="unmatched", status="404") == 3
    assert "random-1" not in text


def test_metrics_drift_psi_small_on_training_like_data_and_large_on_shifted(
    make_client: ClientFactory, X: np.ndarray
) -> None:
    same = make_client()
    shifted = make_client()

    same.post("/v1/predict", json={"instances": X.tolist()})
    shifted.post("/v1/predict", json={"instances": (X * 1.5).tolist()})

    psi_same = _value(same.get("/metrics").text, "mlship_feature_drift_psi", feature="mean_area")
    psi_shift = _value(
        shifted.get("/metrics").text, "mlship_feature_drift_psi", feature="mean_area"
    )
    assert psi_same < 0.25
    assert psi_shift > 0.5


def test_metrics_psi_is_nan_until_enough_rows(make_client: ClientFactory, X: np.ndarray) -> None:
    client = make_client()

    client.post("/v1/predict", json={"instances": X[:5].tolist()})

    assert math.isnan(
        _value(client.get("/metrics").text, "mlship_feature_drift_psi", feature="mean_area")
    )


def test_metrics_out_of_range_counted(make_client: ClientFactory, X: np.ndarray) -> None:
    client = make_client()
    row = X[0].copy()
    row[3] = 1e9  # mean_area far above anything in training

    client.post("/v1/predict", json={"features": row.tolist()})
    text = client.get("/metrics").text

    assert _value(text, "mlship_input_out_of_range_total", feature="mean_area") == 1
    assert _value(text, "mlship_input_out_of_range_total", feature="mean_radius") == 0


def test_metrics_monitoring_can_be_switched_off(
    make_client: ClientFactory, client: TestClient
) -> None:
    off = make_client(monitoring=False)

    assert "mlship_feature_drift_psi" not in off.get("/metrics").text


def test_metrics_unlisted_class_is_counted_not_fatal() -> None:
    from app.metrics import Metrics

    metrics = Metrics()
    metrics.set_model("m", "1", "classification", [0, 1])

    metrics.count_predictions(np.array([2]))
    metrics.count_predictions(np.array([2, 0]))

    assert (
        _value(metrics.exposition()[0].decode(), "mlship_predictions_total", **{"class": "2"}) == 2
    )


@pytest.mark.parametrize("rows", [3, 5000])
def test_metrics_text_labels_counted_per_class(rows: int) -> None:
    """Small and large batches of text labels, with one the manifest did not list."""
    from app.metrics import Metrics

    metrics = Metrics()
    metrics.set_model("m", "1", "classification", ["Adelie", "Chinstrap", "Gentoo"])
    labels = np.array(["Adelie", "Gentoo", "Atlantis"])[np.arange(rows) % 3]
    labels[:2] = "Gentoo"

    metrics.count_predictions(labels)

    text = metrics.exposition()[0].decode()
    values, counts = np.unique(labels, return_counts=True)
    for value, count in zip(values.tolist(), counts.tolist(), strict=True):
        assert _value(text, "mlship_predictions_total", **{"class": value}) == count
    assert _value(text, "mlship_predictions_total", **{"class": "Chinstrap"}) == 0


def test_metrics_dir_without_multiprocess_mode_still_counts(
    make_client: ClientFactory, X: np.ndarray, tmp_path: Path
) -> None:
    """One process with MLSHIP_METRICS_DIR set (prometheus_client not in multiprocess mode:
    PROMETHEUS_MULTIPROC_DIR unset when it was imported): its own values are the totals."""
    client = make_client(metrics_dir=str(tmp_path))

    client.post("/v1/predict", json={"instances": X[:3].tolist()})
    text = client.get("/metrics").text

    assert _value(text, "mlship_http_requests_total", route="/v1/predict", status="200") == 1
    assert _value(text, "mlship_drift_rows_total") == 3
