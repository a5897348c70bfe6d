"""Prometheus metrics of one app instance (its own registry, so tests can build many apps)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
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
    values,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

# Prediction latency on this kind of service spans ~0.3 ms (one row, linear) to seconds (big
# batches of a forest): buckets from 0.5 ms to 10 s.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


# From this many text labels on, counting them by comparison beats np.unique's sort.
_COMPARE_ROWS = 1024


class Metrics:
    """The service's metrics; names are part of the alerting contract (``infra/``).

    Every figure ``/metrics`` shows is the total over all worker processes, whichever worker
    answers the scrape:

    - prometheus_client metrics (here, and the cache's and micro-batcher's counters) are kept
      in per-worker files of the multiprocess directory and summed at scrape
      (prometheus_client's multiprocess mode);
    - collectors that merge the workers' state themselves (the drift monitor) register with
      :meth:`register_merged`.

    Args:
        multiprocess_dir: Set when several worker processes serve (``serve`` sets it, with
            ``PROMETHEUS_MULTIPROC_DIR``, before starting them). Used only when
            prometheus_client is in multiprocess mode (the variable was set when it was
            imported); otherwise this process's own values are the totals.
    """

    def __init__(self, multiprocess_dir: Path | None = None) -> None:
        multiprocess = multiprocess_dir is not None and values.ValueClass._multiprocess
        self.multiprocess_dir = multiprocess_dir if multiprocess else None
        self.registry = CollectorRegistry(auto_describe=True)
        # Where components register collectors of their own prometheus_client metrics (cache,
        # micro-batcher): exposed from here in one process; with several, those values are
        # in the multiprocess files already, so this registry is never read.
        self.collectors = (
            self.registry
            if self.multiprocess_dir is None
            else CollectorRegistry(auto_describe=True)
        )
        self._merged: list[Collector] = []
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
        # Label children looked up once per label set, not per request (``labels()`` builds
        # and checks its key on every call). Bounded: route templates x parsed methods x codes.
        self._request_children: dict[tuple[str, str, int], Any] = {}
        self._latency_children: dict[str, Any] = {}

    def record_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """One answered request: its count by (route, method, status) and its latency."""
        key = (route, method, status)
        counter = self._request_children.get(key)
        if counter is None:
            counter = self._request_children[key] = self.requests.labels(route, method, str(status))
        counter.inc()
        latency = self._latency_children.get(route)
        if latency is None:
            latency = self._latency_children[route] = self.latency.labels(route)
        latency.observe(seconds)

    def capture_counters(self) -> tuple[Counter, Counter]:
        """Counters of the prediction capture: records written, records dropped by reason."""
        written = Counter(
            "mlship_capture_records",
            "Predictions written to the capture files.",
            registry=self.registry,
        )
        dropped = Counter(
            "mlship_capture_dropped",
            "Predictions not captured: the write queue was full (queue_full) or writing failed "
            "(write_error).",
            ("reason",),
            registry=self.registry,
        )
        for reason in ("queue_full", "write_error"):
            dropped.labels(reason)
        return written, dropped

    def set_model(self, name: str, version: str, task: str, classes: list[Any] | None) -> None:
        """Record the served model; pre-create the per-class children (no lookups per request)."""
        self.model_info.labels(name=name, version=version, task=task).set(1)
        if classes:
            self._class_children = {c: self.predictions.labels(str(c)) for c in classes}
        else:
            self._value_child = self.predictions.labels("value")

    def count_predictions(self, labels: np.ndarray) -> None:
        """Count the predictions of a batch per class (per value for regressors: one series)."""
        if self._value_child is not None:
            self._value_child.inc(labels.shape[0])
            return
        if labels.shape[0] == 1:
            label = labels[0]
            self._class(label.item() if isinstance(label, np.generic) else label).inc()
            return
        if labels.dtype.kind == "U" and labels.shape[0] >= _COMPARE_ROWS:
            labels = self._count_known_text(labels)
        values, counts = np.unique(labels, return_counts=True)
        for value, count in zip(values.tolist(), counts.tolist(), strict=True):
            self._class(value).inc(count)

    def _count_known_text(self, labels: np.ndarray) -> np.ndarray:
        """Count a large batch of text labels with one comparison per known class (np.unique
        sorts the strings: about 8 ms for a 150,000-row Batch Transform payload against 2 ms
        for three classes); returns the labels the manifest did not list, still to count."""
        text = [v for v in self._class_children if isinstance(v, str)]
        if len(text) > 8:  # many classes: one sort beats a pass per class
            return labels
        counted = 0
        for value in text:
            n = int(np.count_nonzero(labels == value))
            if n:
                self._class_children[value].inc(n)
                counted += n
        if counted == labels.shape[0]:
            return labels[:0]
        return labels[~np.isin(labels, text)]

    def _class(self, value: Any) -> Any:
        child = self._class_children.get(value)
        if child is None:  # a label the manifest did not list: count it rather than fail
            child = self._class_children[value] = self.predictions.labels(str(value))
        return child

    def counter_totals(self, counter: Counter) -> list[tuple[dict[str, str], float]]:
        """A counter's value per label set, summed over every worker (dead ones included), as
        ``/metrics`` shows it: from the multiprocess files with several workers."""
        (family,) = counter.describe()
        if self.multiprocess_dir is None:
            collected: Iterable[Metric] = counter.collect()
        else:
            collected = _MultiProcessFiles(self.multiprocess_dir).collect()
        total = f"{family.name}_total"
        return [
            (dict(s.labels), float(s.value))
            for m in collected
            if m.name == family.name
            for s in m.samples
            if s.name == total
        ]

    @property
    def shared_dir(self) -> Path | None:
        """Where components keep state that every worker reads at scrape (None: one process)."""
        return self.multiprocess_dir

    def register_merged(self, collector: Collector) -> None:
        """Expose a collector whose figures are already totals over all workers."""
        if self.multiprocess_dir is None:
            self.registry.register(collector)
        else:
            self._merged.append(collector)

    def exposition(self) -> tuple[bytes, str]:
        if self.multiprocess_dir is None:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        _forget_dead_workers(self.multiprocess_dir)
        merged = CollectorRegistry()
        merged.register(_MultiProcessFiles(self.multiprocess_dir))
        for collector in self._merged:
            merged.register(collector)
        return generate_latest(merged), CONTENT_TYPE_LATEST


# prometheus_client's files are <type>_<pid>.db (gauges <gauge>_<mode>_<pid>.db); other files
# of the directory (the drift monitor's) are not its to read.
_PROMETHEUS_FILE_TYPES = frozenset({"counter", "gauge", "histogram", "summary"})


class _MultiProcessFiles(Collector):
    """prometheus_client's multiprocess merge over its own files of ``directory`` only."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.multiprocess import MultiProcessCollector

        files = [
            str(p)
            for p in sorted(self.directory.glob("*.db"))
            if p.name.split("_", 1)[0] in _PROMETHEUS_FILE_TYPES
        ]
        merged: Iterable[Metric] = MultiProcessCollector.merge(files, accumulate=True)  # type: ignore[no-untyped-call]
        yield from merged


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
        if not process_alive(pid):
            multiprocess.mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists (a worker that died is gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True
