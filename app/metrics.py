"""Prometheus metrics of one app instance (its own registry, so tests can build many apps)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
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
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

# Prediction latency on this kind of service spans ~0.3 ms (one row, linear) to seconds (big
# batches of a forest): buckets from 0.5 ms to 10 s.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


class _WorkerLabelled(Collector):
    """Per-process collectors seen through one worker: each sample gets a ``worker`` label.

    With several workers a scrape reaches one of them; labelling its own counters by worker
    keeps each series monotonic (no false counter resets), and ``sum without (worker)``
    adds the workers up.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.worker = str(os.getpid())

    def collect(self) -> Iterator[Metric]:
        for family in self.registry.collect():
            labelled = Metric(family.name, family.documentation, family.type, family.unit)
            for sample in family.samples:
                labels = {**sample.labels, "worker": self.worker}
                labelled.add_sample(sample.name, labels, sample.value, sample.timestamp)
            yield labelled


class Metrics:
    """The service's metrics; names are part of the alerting contract (``infra/``).

    Args:
        multiprocess_dir: Set when several worker processes serve (``serve`` sets it, with
            ``PROMETHEUS_MULTIPROC_DIR``, before starting them): the HTTP, prediction and
            model metrics are then kept in files there and ``/metrics`` sums every worker's.
    """

    def __init__(self, multiprocess_dir: Path | None = None) -> None:
        self.multiprocess_dir = multiprocess_dir
        self.registry = CollectorRegistry(auto_describe=True)
        # Where per-process collectors (drift, cache, batching) register.
        self.collectors = (
            self.registry if multiprocess_dir is None else CollectorRegistry(auto_describe=True)
        )
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
            "mlship_http_requests_in_flight",
            "HTTP requests being served now.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.predictions = Counter(
            "mlship_predictions",
            'Predicted rows by class (regressors count under class="value").',
            ("class",),
            registry=r,
        )
        self.unseen_categories = Counter(
            "mlship_unseen_categories",
            "Categorical values outside the categories the model was trained on, by feature.",
            ("feature",),
            registry=r,
        )
        self.model_info = Gauge(
            "mlship_model_info",
            "Always 1; the labels describe the model being served.",
            ("name", "version", "task"),
            registry=r,
            multiprocess_mode="max",
        )
        self.model_load_seconds = Gauge(
            "mlship_model_load_seconds",
            "Seconds it took to resolve and load the model.",
            registry=r,
            multiprocess_mode="max",
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
            label = labels[0]
            self._class(label.item() if isinstance(label, np.generic) else label).inc()
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
        if self.multiprocess_dir is None:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        from prometheus_client.multiprocess import MultiProcessCollector

        _forget_dead_workers(self.multiprocess_dir)
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=str(self.multiprocess_dir))  # type: ignore[no-untyped-call]
        merged.register(_WorkerLabelled(self.collectors))
        return generate_latest(merged), CONTENT_TYPE_LATEST


_LIVE_FILE = re.compile(r"^gauge_live\w+_(\d+)\.db$")


def _forget_dead_workers(directory: Path) -> None:
    """Drop the live gauges (requests in flight) of worker processes that no longer exist.

    A worker killed with requests in flight (``kill -9``, out of memory) never decrements its
    gauge; prometheus_client keeps summing its file until ``mark_process_dead`` is called,
    which a supervisor may never do. Checked at each scrape, so the figure heals itself.
    """
    from prometheus_client import multiprocess

    for file in directory.glob("gauge_live*.db"):
        match = _LIVE_FILE.match(file.name)
        if match is None:
            continue
        pid = int(match.group(1))
        if not _alive(pid):
            multiprocess.mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True
