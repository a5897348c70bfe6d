"""Prometheus metrics of one app instance (its own registry, so tests can build many apps)."""

from __future__ import annotations

from typing import Any

import numpy as np
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

# Prediction latency on this kind of service spans ~0.3 ms (one row, linear) to seconds (big
# batches of a forest): buckets from 0.5 ms to 10 s.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


class Metrics:
    """The service's metrics; names are part of the alerting contract (``infra/``)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "mlship_http_requests",
            "HTTP requests by route template, method and status code.",
            ("route", "method", "status"),
            registry=r,
        )
        self.latency = Histogram(
            "mlship_http_request_duration_seconds",
            "HTTP request latency by route template, from first byte in to last byte out.",
            ("route",),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "mlship_http_requests_in_flight", "HTTP requests being served now.", registry=r
        )
        self.predictions = Counter(
            "mlship_predictions",
            'Predicted rows by class (regressors count under class="value").',
            ("class",),
            registry=r,
        )
        self.model_info = Gauge(
            "mlship_model_info",
            "Always 1; the labels describe the model being served.",
            ("name", "version", "task"),
            registry=r,
        )
        self.model_load_seconds = Gauge(
            "mlship_model_load_seconds",
            "Seconds it took to resolve and load the model.",
            registry=r,
        )
        self._class_children: dict[Any, Any] = {}
        self._value_child: Any = None

    def set_model(self, name: str, version: str, task: str, classes: list[Any] | None) -> None:
        """Record the served model; pre-create the per-class children (no lookups per request)."""
        self.model_info.labels(name=name, version=version, task=task).set(1)
        if classes:
            self._class_children = {c: self.predictions.labels(str(c)) for c in classes}
        else:
            self._value_child = self.predictions.labels("value")

    def count_predictions(self, labels: np.ndarray) -> None:
        if self._value_child is not None:
            self._value_child.inc(labels.shape[0])
            return
        if labels.shape[0] == 1:
            self._class(labels[0].item()).inc()
            return
        values, counts = np.unique(labels, return_counts=True)
        for value, count in zip(values.tolist(), counts.tolist(), strict=True):
            self._class(value).inc(count)

    def _class(self, value: Any) -> Any:
        child = self._class_children.get(value)
        if child is None:  # a label the manifest did not list: count it rather than fail
            child = self._class_children[value] = self.predictions.labels(str(value))
        return child

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
